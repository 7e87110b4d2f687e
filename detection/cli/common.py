"""What every command shares: logging, `--cfg FILE key.sub=value ...` parsing, and one-line user errors."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys

from ..config import load_config
from ..errors import ConfigError, DetectionError, TrainingInterrupted


def setup_logging(verbose: bool = False) -> None:
    """Messages without decoration; under torchrun only rank 0 logs below WARNING."""
    level = logging.DEBUG if verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) > 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", force=True)
    for noisy in ("PIL", "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


MAX_MINUTES = 1e6  # as train.time: about two years; more overflows the clock arithmetic


def minutes_arg(text: str) -> float:
    """An argparse type for a time budget in minutes: a number above 0 and at most MAX_MINUTES
    (`nan` compared false with every bound and trained by epochs; `1e308` overflowed)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, got {text!r}") from None
    if not 0 < value <= MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= {MAX_MINUTES:g} minutes, got {text}")
    return value


def ap_drop_arg(text: str) -> float:
    """An argparse type for an AP budget (--max-drop): a number in [0, 1]. `nan` was taken, and
    no file can lose more than nan, so none was ever removed."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an AP difference such as 0.01, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (AP is a fraction; 0.01 is usual), got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type for counts that must be at least 1 (`--batch 0` once ran silently as 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def slice_arg(text: str) -> int:
    """--slice N: tiles of N pixels (32 or more), or 0 for whole images (a tiled model predicts
    sliced into its training tiles without the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if value != 0 and value < 32:
        raise argparse.ArgumentTypeError(f"must be 0 (whole images) or a tile of 32 px or more, got {value}")
    return value


def add_config_args(p: argparse.ArgumentParser, cfg_required: bool) -> None:
    p.add_argument("--cfg", required=cfg_required, help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5 data.root=/data/voc")


def config_from_args(args) -> dict:
    return load_config(args.cfg, args.overrides)


def fail(msg: str) -> None:
    """Exit with one clear line, no traceback: for errors the user can fix."""
    sys.exit(f"error: {msg}")


def user_errors_as_one_line(main):
    """Wrap a CLI's main: a DetectionError (the user's to fix) exits with its one line;
    anything else is a bug and keeps its traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except ConfigError as e:
            sys.exit(f"config error: {e}")
        except TrainingInterrupted as e:  # Ctrl-C: what was saved and how to go on; the shell's code for it
            print(str(e), file=sys.stderr)
            sys.exit(130)
        except DetectionError as e:
            fail(str(e))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
