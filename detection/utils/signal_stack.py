"""The main thread's alternate signal stack, kept valid around OpenVINO.

Why this exists: on Linux, each OpenVINO CPU plugin instance (one per `openvino.Core` that compiles
a model) maps a signal stack of its own for the main thread (`sigaltstack`, room for AMX state)
and, when it is destroyed, unmaps it and puts back the stack it found only if its own is still
the current one. Two instances destroyed in the order they were made leave the thread on an
unmapped stack: the next signal delivered there (Ctrl-C, Python's faulthandler on a crash) kills
the process with a segmentation fault instead of a KeyboardInterrupt or a traceback. NNCF's
quantizers make and drop such instances by the dozen. So this package compiles its own OpenVINO
models on one Core for the whole process (`inference.predictor.openvino_core`), and puts the
stack back after NNCF (`kept`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys


class _Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc():
    return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def current() -> tuple[int, int, int] | None:
    """The calling thread's signal stack as (address, size, flags); None off Linux."""
    libc = _libc()
    if libc is None:
        return None
    stack = _Stack()
    if libc.sigaltstack(None, ctypes.byref(stack)) != 0:
        return None
    return stack.ss_sp or 0, stack.ss_size, stack.ss_flags


def is_mapped(address: int) -> bool:
    """Whether `address` lies in a mapping of this process (Linux's /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        for line in f:
            start, end = (int(x, 16) for x in line.split(maxsplit=1)[0].split("-"))
            if start <= address < end:
                return True
    return False


def _set(stack: tuple[int, int, int]) -> None:
    libc = _libc()
    address, size, flags = stack
    libc.sigaltstack(ctypes.byref(_Stack(address or None, flags, size)), None)


@contextlib.contextmanager
def kept():
    """The calling thread's signal stack as it was on entry, put back on exit when what ran inside
    (OpenVINO's plugin instances) changed it. A plugin instance made inside and destroyed later
    then finds its own stack not current and leaves the thread's alone."""
    before = current()
    try:
        yield
    finally:
        if before is not None and current() != before:
            _set(before)
