"""The user errors: mistakes a user can fix, shown by every CLI as one line, never a traceback.

Anything else (a bug, an error inside torch) keeps its traceback. Each error's message
names the file or key and the fix; the CLI adds nothing but `error: `.
"""

from __future__ import annotations

import contextlib


class DetectionError(Exception):
    """Base of every error that is the user's to fix: bad config, data, checkpoint or device."""


class ConfigError(DetectionError, ValueError):
    """A config problem, with a message that names the key and the fix."""


class DataError(DetectionError, ValueError):
    """An annotation or image problem that makes a data set unusable; names the file and field."""


class UnknownClassesError(DataError):
    """Boxes of classes outside the wanted list; `unknown` maps each such class to its box count."""

    def __init__(self, message: str, unknown: dict[str, int], wanted: list[str]):
        super().__init__(message)
        self.unknown, self.wanted = unknown, wanted


class CheckpointError(DetectionError, ValueError):
    """A checkpoint that cannot be used here: not ours, not safe, or of another arch or class list."""


class DeviceError(DetectionError, RuntimeError):
    """A device that is asked for but not present."""


class TrainingInterrupted(DetectionError):
    """Ctrl-C during training: the message says what was saved and the command that continues."""


class OutputError(DetectionError, OSError):
    """A run folder or output file that cannot be written (full disk, read-only folder)."""


@contextlib.contextmanager
def writing(path, hint: str = "free space or choose a writable output_dir"):
    """Turn an OSError while writing `path` (full disk, read-only folder) into one OutputError line."""
    try:
        yield
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; {hint}") from None
