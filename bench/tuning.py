"""Does tuning pay at the same total time? The default recipe against tools/tune.py.

    python bench/tuning.py [--time 60] [--sets bccd,synthetic] [--trial-minutes M]

For each data set, in one run on one machine: the configuration as shipped trained with
`train.time=T`, then `tools/tune.py --time T` (trials on a split of the training images,
then the best configuration trained on all of them for what is left). Both final models are
scored on the same validation split: AP and AP50 with 95% bootstrap intervals, the paired
difference (better, worse, or no difference the split can show), and what the tuner picked.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.cli import evaluate as eval_cli  # noqa: E402
from detection.config import CONFIG_DIR, load_config  # noqa: E402
from detection.runs import TuneFolder  # noqa: E402
from detection.training.trainer import train  # noqa: E402
from detection.tuning.space import DEFAULT_SPACE  # noqa: E402
from detection.tuning.study import TuneOptions, tune  # noqa: E402

SETS = {"bccd": "bccd_frcnn.yaml", "synthetic": "demo.yaml"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--time", type=float, default=60.0, help="minutes for each side (default and tune)")
    p.add_argument("--sets", default="bccd,synthetic")
    p.add_argument("--trial-minutes", type=float, default=None)
    p.add_argument("--out", default="runs/bench_tuning")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lines = []
    for name in args.sets.split(","):
        cfg_file = CONFIG_DIR / SETS[name]
        run, res = train(load_config(cfg_file, [f"name={name}_default", f"output_dir={args.out}",
                                                f"train.time={args.time}"]))
        folder = tune(load_config(cfg_file, [f"output_dir={args.out}"]),
                      TuneOptions(minutes=args.time, trial_minutes=args.trial_minutes), DEFAULT_SPACE,
                      "the default space", f"{name}_tune")
        lines.append(summary(name, args.time, run, res, folder))
        eval_cli.main(["--compare", str(run / "weights" / "last.pt"), str(folder.final.last)])
    print("\n" + "\n\n".join(lines))


def summary(name: str, minutes: float, run: Path, res: dict, folder: TuneFolder) -> str:
    ci = res["intervals"]
    report = folder.report_md.read_text() if folder.report_md.is_file() else "(no report)"
    return (f"## {name}, {minutes:g} minutes each\n\ndefault recipe ({run}): AP {_ci(ci['AP'])}, "
            f"AP50 {_ci(ci['AP50'])}\n\n{report}")


def _ci(d: dict) -> str:
    return f"{d['value']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


if __name__ == "__main__":
    main()
