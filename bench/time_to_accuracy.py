"""What AP does each recipe reach in a fixed training time? Every run uses `train.time`.

    python bench/time_to_accuracy.py                                   # BCCD and synthetic, 2.5 / 5 / 10 minutes
    python bench/time_to_accuracy.py --data bccd --minutes 2.5,5 --recipes defaults,new

Recipes, on top of the data set's config (`configs/bccd_frcnn.yaml` or `configs/demo.yaml`):
- defaults: the config as it is (since 2026-11-24 BCCD's is `lean`, below).
- before: the defaults before then (full input size, 500 proposals, 256 RoIs an image; warmup
  100 iterations, multistep at the epochs' shares). Every recipe below starts from it.
- new: warmup over 5% of the run, cosine down to 5% of the lr.
- tutorial: torchvision's detection tutorial: MobileNetV2 features as one 1280-channel map,
  800 px, SGD lr 0.005 / weight decay 0.0005, everything trainable, batch 2, steps at 30/60/90%.
- staged: the classic transfer recipe: new heads on a frozen trunk (a third of the budget),
  then freeze_at 2 at a tenth of the lr.
- features: feature extraction (the whole trunk frozen).
- anchors: `new` with anchors fitted to the training boxes (model.anchors=auto).
- sampling: fewer proposals and sampled RoIs for small data sets (300 after the RPN's NMS
  instead of 500, 128 RoIs an image instead of 256): the box head costs about as much as the trunk.
- size: the input size from the boxes (model.auto_size: shrink while 95% of the boxes keep a
  shorter side of at least the smallest anchor, 32 px): on BCCD 384 px instead of its native 480.
- lean: sampling and size together.
- lean_amp: lean with train.amp=auto (bf16 where this CPU has it natively and measures faster).
One run after the other, in this process; the table rows print as they finish (COCO AP and
AP50 on the validation split, the iterations the budget allowed, training and validation s).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import detection  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = {"bccd": "configs/bccd_frcnn.yaml", "synthetic": "configs/demo.yaml"}
BEFORE = {"model.auto_size": False, "model.rpn_post_nms_top_n_train": 500, "model.box_batch_size_per_image": 256}
ON_BEFORE = {  # each recipe's overrides of `before`
    "before": {},
    "new": {"train.warmup_fraction": 0.05, "train.scheduler": "cosine", "train.min_lr_ratio": 0.05},
    "tutorial": {"model.arch": "fasterrcnn_mobilenet_v2_c5", "model.min_size": 800, "model.max_size": 1333,
                 "model.freeze_at": 0, "model.freeze_bn": "frozen_stages", "train.lr": 0.005,
                 "train.weight_decay": 0.0005, "train.batch_size": 2, "train.milestones": [0.3, 0.6, 0.9],
                 "train.channels_last": False},
    "staged": {"train.stages": [{"epochs": 1, "freeze_at": 5, "lr": 0.02},
                                {"epochs": 2, "freeze_at": 2, "lr": 0.002}], "train.milestones": [0.8]},
    "features": {"model.mode": "feature_extraction"},
    "anchors": {"model.anchors": "auto", "train.warmup_fraction": 0.05, "train.scheduler": "cosine",
                "train.min_lr_ratio": 0.05},
    "sampling": {"model.rpn_post_nms_top_n_train": 300, "model.box_batch_size_per_image": 128},
    "size": {"model.auto_size": True},
    "lean": {"model.rpn_post_nms_top_n_train": 300, "model.box_batch_size_per_image": 128, "model.auto_size": True},
    "lean_amp": {"model.rpn_post_nms_top_n_train": 300, "model.box_batch_size_per_image": 128,
                 "model.auto_size": True, "train.amp": "auto"},
}
RECIPES = {"defaults": {}, **{name: {**BEFORE, **overrides} for name, overrides in ON_BEFORE.items()}}


def run(data: str, recipe: str, minutes: float, out: str) -> dict:
    overrides = {**RECIPES[recipe], "train.time": minutes, "output_dir": out, "name": f"{data}_{recipe}_{minutes}"}
    t0 = time.perf_counter()
    run_dir, results = detection.train(str(REPO / DATA[data]), **overrides)
    total = time.perf_counter() - t0
    import csv

    with open(Path(run_dir) / "results.csv") as f:
        last = list(csv.DictReader(f))[-1]
    return {"AP": results["coco"]["AP"], "AP50": results["coco"]["AP50"], "iters": int(float(last["step"])),
            "val_s": float(last.get("val_s") or 0), "train_s": total - float(last.get("val_s") or 0)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="bccd,synthetic")
    p.add_argument("--minutes", default="2.5,5,10")
    p.add_argument("--recipes", default=",".join(RECIPES))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads\n")
    print("| data | recipe | minutes | COCO AP | AP50 | iterations (last stage) | training s | validation s |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for data in args.data.split(","):
            for minutes in (float(m) for m in args.minutes.split(",")):
                for recipe in args.recipes.split(","):
                    r = run(data, recipe, minutes, out)
                    print(f"| {data} | {recipe} | {minutes:g} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['iters']} | "
                          f"{r['train_s']:.0f} | {r['val_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
