"""python tools/train_det.py --cfg configs/voc_frcnn.yaml [key.sub=value ...]"""

from __future__ import annotations

import argparse

from ..data.coco import COCOFormatError
from ..data.voc import VOCFormatError
from ..engine import NonFiniteLossError
from ..models.weights import WeightsUnavailableError
from ..trainer import TrainingOOMError
from .common import add_config_args, config_from_args, fail, setup_logging

USER_ERRORS = (FileNotFoundError, FileExistsError, VOCFormatError, COCOFormatError, WeightsUnavailableError,
               NonFiniteLossError, TrainingOOMError, ValueError)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Fine-tune a detector (see README).")
    add_config_args(p, cfg_required=True)
    args = p.parse_args(argv)
    setup_logging()
    cfg = config_from_args(args)

    from ..trainer import train

    try:
        train(cfg)
    except USER_ERRORS as e:
        fail(str(e))


if __name__ == "__main__":
    main()
