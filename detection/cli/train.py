"""python tools/train_det.py --cfg configs/voc_frcnn.yaml [key.sub=value ...]
python tools/train_det.py resume=runs/<name>      # continue a stopped run (its own config)
python tools/train_det.py resume=runs/<name> train.epochs=20   # extend a run (train.time=N for a timed one)
"""

from __future__ import annotations

import argparse
import logging
import os

from ..config import load_config, parse_overrides
from ..errors import ConfigError
from ..utils.runs import resume_checkpoint
from .common import add_config_args, setup_logging, user_errors_as_one_line


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fine-tune a detector (see README).")
    add_config_args(p, cfg_required=False)
    args = p.parse_args(argv)
    setup_logging()
    cfg_file = args.cfg
    resume = parse_overrides(args.overrides).get("resume")
    if resume:  # the run's own config; the overrides say what changes (train.epochs=N extends it)
        if not os.path.exists(str(resume)):
            raise ConfigError(f"resume={resume} does not exist: give a run folder (runs/<name>) or its weights/last.pt")
        cfg_file = resume_checkpoint(str(resume))[1].config
        if not cfg_file.is_file():
            raise ConfigError(f"resume={resume}: no run there ({cfg_file} does not exist)")
        if args.cfg:
            logging.getLogger("detection.training").warning("resume=%s uses the run's own config, not --cfg %s",
                                                         resume, args.cfg)
    elif cfg_file is None:
        raise ConfigError("give --cfg FILE, or resume=<run folder> to continue a run")
    cfg = load_config(cfg_file, args.overrides)

    from ..training.trainer import train

    train(cfg)


if __name__ == "__main__":
    main()
