"""What every command shares: logging, and `--cfg FILE key.sub=value ...` parsing."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import ConfigError, load_config


def setup_logging(verbose: bool = False) -> None:
    """Messages without decoration; under torchrun only rank 0 logs below WARNING."""
    level = logging.DEBUG if verbose else logging.INFO
    if int(os.environ.get("RANK", "0")) > 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", force=True)
    for noisy in ("PIL", "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_config_args(p: argparse.ArgumentParser, cfg_required: bool) -> None:
    p.add_argument("--cfg", required=cfg_required, help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5 data.root=/data/voc")


def config_from_args(args) -> dict:
    try:
        return load_config(args.cfg, args.overrides)
    except ConfigError as e:
        sys.exit(f"config error: {e}")


def fail(msg: str) -> None:
    """Exit with one clear line, no traceback: for errors the user can fix."""
    sys.exit(f"error: {msg}")
