"""Transfer-learning recipes on BCCD at one budget: which freezing policy wins?

    python bench/bccd_recipes.py [--epochs 3] [--out runs/bench_recipes]

Runs, with the same epochs, data, input size and seed: the default freezing from the
start (freeze_at 3), the two-stage recipe (heads on a frozen trunk, then freeze_at 2
with lr / 10 and backbone_lr_mult 0.1), feature extraction, and random initialisation.
Prints a Markdown table of COCO AP, AP50, VOC07 mAP and wall time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.config import CONFIG_DIR, load_config  # noqa: E402
from detection.training.trainer import train  # noqa: E402


def recipes(epochs: int) -> dict[str, dict]:
    half = epochs // 2
    return {
        "default freezing (freeze_at 3)": {"model": {"freeze_at": 3}},
        f"2-stage: {half} ep heads (freeze_at 5), {epochs - half} ep freeze_at 2, lr/10, backbone x0.1": {
            "train": {"stages": [{"epochs": half, "freeze_at": 5, "lr": 0.02},
                                 {"epochs": epochs - half, "freeze_at": 2, "lr": 0.002, "backbone_lr_mult": 0.1}]}},
        "feature extraction (trunk frozen)": {"model": {"mode": "feature_extraction"}},
        "random init (no pretrained weights)": {"model": {"weights": "none"}},
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default="runs/bench_recipes")
    p.add_argument("--min-size", type=int, default=416)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for i, (name, ov) in enumerate(recipes(args.epochs).items()):
        base = {"name": f"recipe{i}", "output_dir": args.out,
                "model": {"min_size": args.min_size, "max_size": args.min_size * 4 // 3, **ov.get("model", {})},
                "train": {"epochs": args.epochs, "milestones": [args.epochs], "eval_every": args.epochs,
                          **ov.get("train", {})}}
        cfg = load_config(CONFIG_DIR / "bccd_frcnn.yaml", base)
        t0 = time.perf_counter()
        run, res = train(cfg)
        rows.append((name, res["coco"]["AP"], res["coco"]["AP50"], res["voc_mAP"], time.perf_counter() - t0, run))
    print(f"\n| recipe ({args.epochs} epochs, BCCD train -> val, {args.min_size} px) | AP | AP50 | VOC07 mAP | wall |")
    print("|---|---|---|---|---|")
    for name, ap, ap50, voc, sec, _run in rows:
        print(f"| {name} | {ap:.3f} | {ap50:.3f} | {voc:.3f} | {sec / 60:.1f} min |")


if __name__ == "__main__":
    main()
