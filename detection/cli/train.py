"""python tools/train_det.py --cfg configs/voc_frcnn.yaml [key.sub=value ...]
python tools/train_det.py resume=runs/<name>      # continue a stopped run (its own config)
"""

from __future__ import annotations

import argparse

from ..config import load_config, parse_overrides, run_config_path
from ..errors import ConfigError
from .common import add_config_args, setup_logging, user_errors_as_one_line


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fine-tune a detector (see README).")
    add_config_args(p, cfg_required=False)
    args = p.parse_args(argv)
    setup_logging()
    cfg_file = args.cfg
    if cfg_file is None:
        resume = parse_overrides(args.overrides).get("resume")
        if not resume:
            raise ConfigError("give --cfg FILE, or resume=<run folder> to continue a run")
        cfg_file = run_config_path(str(resume))
        if not cfg_file.is_file():
            raise ConfigError(f"resume={resume}: no run there ({cfg_file} does not exist)")
    cfg = load_config(cfg_file, args.overrides)

    from ..trainer import train

    train(cfg)


if __name__ == "__main__":
    main()
