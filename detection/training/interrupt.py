"""Ctrl-C during training: the first stops the loop after the step it is in (the trainer then
saves last.pt there and says how to resume); a second, or one outside the steps, stops at once."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

log = logging.getLogger("detection.training")


@contextlib.contextmanager
def on_ctrl_c(trainer):
    """The first Ctrl-C during the steps asks the loop to stop after the step it is in (last.pt is
    saved there); elsewhere, or a second time, it stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.interrupted or not trainer.in_steps:
            raise KeyboardInterrupt
        trainer.interrupted = True
        log.warning("\nCtrl-C: saving the run after this step (press again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted_hint(run) -> str:
    """What a Ctrl-C outside the steps says: where the last completed save is, and how to go on."""
    from ..commands import command

    if run is None or not run.last.is_file():
        return "interrupted before the first checkpoint: nothing to resume"
    return f"interrupted: {run.last} holds the last completed save; continue with: {command('train')} resume={run.dir}"
