"""python tools/eval_det.py [--ckpt runs/x/weights/best.pt] [--cfg FILE] [key.sub=value ...]

With no arguments: the newest run's best checkpoint on that run's validation split.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ..checkpoint import load_checkpoint, model_from_checkpoint, newest_run, run_checkpoint
from ..config import ConfigError, load_config
from .common import add_config_args, fail, setup_logging
from .train import USER_ERRORS

log = logging.getLogger("detection.eval")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate a checkpoint: COCO metrics and VOC per-class AP.")
    p.add_argument("--ckpt", help="checkpoint (default: newest run's best.pt)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--out", help="write the results JSON here (default: next to the checkpoint's run)")
    add_config_args(p, cfg_required=False)
    args = p.parse_args(argv)
    setup_logging()
    from ..engine import evaluate
    from ..evaluation.evaluator import format_results
    from ..trainer import select_device, validation_loader

    try:
        ckpt_path = Path(args.ckpt) if args.ckpt else run_checkpoint(newest_run(args.runs))
        ckpt = load_checkpoint(ckpt_path)
        # the run's own config, then --cfg's, then overrides: the data and eval keys may change
        cfg = load_config(args.cfg, args.overrides, base=None if args.cfg else ckpt["config"])
        device = select_device(cfg["device"])
        model = model_from_checkpoint(ckpt).to(device)
        loader, evaluator = validation_loader(cfg, ckpt["class_names"], device)
        log.info("evaluating %s on %s", ckpt_path, evaluator.info.source)
        t0 = time.perf_counter()
        res = evaluate(model, loader, evaluator, device)
        log.info("%s\n(%.1fs)", format_results(res), time.perf_counter() - t0)
        out = Path(args.out) if args.out else ckpt_path.parent.parent / "eval.json"
        out.write_text(json.dumps({"checkpoint": str(ckpt_path), **res}, indent=1, default=float))
        log.info("results written to %s", out)
    except ConfigError as e:
        fail(f"config error: {e}")
    except USER_ERRORS as e:
        fail(str(e))


if __name__ == "__main__":
    main()
