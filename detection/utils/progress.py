"""Progress output: a tqdm bar on a terminal, a plain line with ETA every N iterations elsewhere.

Under nohup, in CI or in a log file a bar prints nothing useful until the epoch ends;
there a line every `every` iterations, and at least every `every_s` seconds, says where the
run is and when the epoch ends.
Only rank 0 reports, so a DDP run shows one bar, not one per process.
"""

from __future__ import annotations

import logging
import sys
import time

import torch
from tqdm import tqdm

from . import distributed as dist

log = logging.getLogger("detection.utils.progress")


class Progress:
    """Wraps an iterable; `update(**fields)` after each item shows them on the bar or the line."""

    def __init__(self, iterable, desc: str, every: int = 20, stream=None, every_s: float = 30.0, time_left=None):
        """`time_left()`: seconds until a deadline that ends the loop early (train.time), or None;
        the ETA is never past it (an epoch's ETA of 18:54 inside a 3-minute budget misleads)."""
        self.iterable, self.desc, self.every, self.every_s = iterable, desc, every, every_s
        self.time_left = time_left
        stream = stream if stream is not None else sys.stderr
        self.enabled = dist.is_main()
        self.tty = self.enabled and hasattr(stream, "isatty") and stream.isatty()
        self.bar = tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, file=stream) if self.tty else None
        self.total = len(iterable) if hasattr(iterable, "__len__") else None
        self.done, self.t0 = 0, time.perf_counter()
        self.last_line = self.t0

    def __iter__(self):
        return iter(self.bar if self.bar is not None else self.iterable)

    def update(self, **fields) -> None:
        self.done += 1
        if self.bar is not None:
            left = self.time_left() if self.time_left is not None else None
            self.bar.set_postfix(**fields, **({"time_left": format_seconds(left)} if left is not None else {}))
        elif self.enabled and self.due():
            self.last_line = time.perf_counter()
            log.info(self.line(fields))

    def due(self) -> bool:
        """A line every `every` items, at the last one, and at least every `every_s` seconds (slow steps)."""
        by_count = bool(self.every) and self.done % self.every == 0
        by_time = bool(self.every_s) and time.perf_counter() - self.last_line >= self.every_s
        return by_count or by_time or self.done == self.total

    def line(self, fields: dict) -> str:
        elapsed = time.perf_counter() - self.t0
        where = f"{self.done}/{self.total}" if self.total else str(self.done)
        eta = ""
        left = self.time_left() if self.time_left is not None else None
        if self.total:
            epoch_left = elapsed / self.done * (self.total - self.done)
            eta = f"  ETA {format_seconds(epoch_left if left is None else min(epoch_left, left))}"
        elif left is not None:
            eta = f"  ETA {format_seconds(left)}"
        return f"{self.desc} {where}  " + "  ".join(f"{k} {v}" for k, v in fields.items()) + eta

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def memory_in_use(device: torch.device) -> str:
    """Peak CUDA memory, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}G"
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f}G"  # KiB on Linux
