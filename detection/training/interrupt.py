"""Ctrl-C during training: the first stops the loop after the step it is in (the trainer then
saves last.pt there and says how to resume); a second, or one outside the steps, stops at once.
The request is a `StopRequest`, written only by its own signal handler (and, under DDP, set to
rank 0's answer); the trainer reads it."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

log = logging.getLogger("detection.training")


class StopRequest:
    """Whether Ctrl-C asked the loop to stop after the step it is in."""

    def __init__(self):
        self.requested = False
        self._in_steps = False  # a Ctrl-C outside the steps (set-up, validation) stops at once

    @contextlib.contextmanager
    def installed(self):
        """Its handler on SIGINT while the run trains (the main thread only: signals go there)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def during_steps(self):
        """An epoch's steps: a first Ctrl-C in them waits for the step to end."""
        self._in_steps = True
        try:
            yield
        finally:
            self._in_steps = False

    def follow(self, requested: bool) -> None:
        """Under DDP: rank 0's request, broadcast after the step, so every rank stops together."""
        self.requested = requested

    def _handler(self, signum, frame):
        if self.requested or not self._in_steps:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("\nCtrl-C: saving the run after this step (press again to stop at once)")


def interrupted_hint(run) -> str:
    """What a Ctrl-C outside the steps says: where the last completed save is, and how to go on."""
    from ..utils.commands import command

    if run is None or not run.last.is_file():
        return "interrupted before the first checkpoint: nothing to resume"
    return f"interrupted: {run.last} holds the last completed save; continue with: {command('train')} resume={run.dir}"
