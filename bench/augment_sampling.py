"""Heavy augmentation and repeat-factor sampling against the default recipe, at one time budget.

    python bench/augment_sampling.py [--time 10] [--arms default,heavy,repeat_factor] [key=value ...]

Each arm is a `train.time` run of BCCD (configs/bccd_frcnn.yaml) with one change; the runs
go one after another on the same machine. Prints, per arm, COCO AP and the Platelets AP
(the rare class: 209 boxes against 2,381 red cells) with their 95% bootstrap intervals, then
each arm against the default on the same validation images (paired bootstrap: better,
worse, or no difference this split can show).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.cli import evaluate as eval_cli  # noqa: E402
from detection.config import CONFIG_DIR, load_config  # noqa: E402
from detection.training.trainer import train  # noqa: E402

ARMS = {
    "default": {},
    "light": {"data.augment": "light"},
    "heavy": {"data.augment": "heavy"},
    "repeat_factor": {"data.sampler": "repeat_factor", "data.repeat_thresh": 1.0},
}
RARE = "Platelets"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--time", type=float, default=10.0, help="train.time of each arm, minutes")
    p.add_argument("--arms", default="default,heavy,repeat_factor", help=f"of {', '.join(ARMS)}")
    p.add_argument("--out", default="runs/bench_augment")
    p.add_argument("overrides", nargs="*", help="key=value for every arm")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for arm in args.arms.split(","):
        ov = [f"name={arm}", f"output_dir={args.out}", f"train.time={args.time}", *args.overrides,
              *(f"{k}={v}" for k, v in ARMS[arm].items())]
        run, res = train(load_config(CONFIG_DIR / "bccd_frcnn.yaml", ov))
        ci = res["intervals"]
        rare = next(c for c in ci["per_class"] if c["class"] == RARE)
        rows.append((arm, ci["AP"], ci["AP50"], rare, run))
    print(f"\n| arm (train.time={args.time:g} min, BCCD val) | AP [95%] | AP50 [95%] | {RARE} AP [95%] |")
    print("|---|---|---|---|")
    for arm, ap, ap50, rare, _ in rows:
        print(f"| {arm} | " + " | ".join(f"{d['value']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"
                                          for d in (ap, ap50, rare)) + " |")
    base = next((r for r in rows if r[0] == "default"), None)
    for arm, *_, run in rows:
        if base is not None and arm != "default":
            eval_cli.main(["--compare", str(base[-1] / "weights" / "last.pt"), str(run / "weights" / "last.pt")])


if __name__ == "__main__":
    main()
