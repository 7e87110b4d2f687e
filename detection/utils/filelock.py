"""One process prepares, the others wait: a lock file around work that writes shared files
(the generated synthetic set, downloaded weights), for torchrun ranks and for two runs
started at once in one folder alike."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def exclusive(lock_path: str):
    """Hold an exclusive lock on `lock_path` (created if missing) for the block's duration."""
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), exist_ok=True)
    with open(lock_path, "a") as f:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the atomic renames still protect readers
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
