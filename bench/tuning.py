"""Does tuning pay at the same total time? The default recipe against tools/tune.py.

    python bench/tuning.py [--time 60] [--sets bccd,synthetic] [--trial-minutes M] [--one-at-a-time]

For each data set, in one run on one machine: the configuration as shipped trained with
`train.time=T`, and `tools/tune.py --time T` (trials on a split of the training images, then
the best configuration trained on all of them for what is left). The two arms run at the same
time, each in its own process on half the cores, so machine noise hits both alike and a set
takes T minutes, not 2T (`--one-at-a-time` runs them in turn on all cores). Both final models
are scored on the same validation split: AP and AP50 with 95% bootstrap intervals, the paired
difference (better, worse, or no difference the split can show), and what the tuner picked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.cli import evaluate as eval_cli  # noqa: E402
from detection.config import CONFIG_DIR, load_config  # noqa: E402
from detection.training.trainer import train  # noqa: E402
from detection.tuning.space import DEFAULT_SPACE  # noqa: E402
from detection.tuning.study import TuneOptions, tune  # noqa: E402
from detection.utils.runs import TuneFolder  # noqa: E402

SETS = {"bccd": "bccd_frcnn.yaml", "synthetic": "demo.yaml"}


def run_arm(arm: str, name: str, args) -> None:
    """One side of one set, in this process; the default side leaves its run and AP intervals
    in `<out>/<name>_default.json` for the parent."""
    cfg_file = CONFIG_DIR / SETS[name]
    if arm == "default":
        run, res = train(load_config(cfg_file, [f"name={name}_default", f"output_dir={args.out}",
                                                f"train.time={args.time}"]))
        Path(args.out, f"{name}_default.json").write_text(json.dumps({"run": str(run),
                                                                      "intervals": res["intervals"]}))
    else:
        tune(load_config(cfg_file, [f"output_dir={args.out}"]),
             TuneOptions(minutes=args.time, trial_minutes=args.trial_minutes), DEFAULT_SPACE,
             "the default space", f"{name}_tune")


def run_set(name: str, args) -> str:
    """Both arms of one set (side by side, or in turn), then their paired comparison."""
    arms = ("default", "tune")
    if args.one_at_a_time:
        for arm in arms:
            run_arm(arm, name, args)
    else:
        threads = str(max(1, (os.cpu_count() or 2) // 2))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        argv = [sys.executable, __file__, f"--time={args.time}", f"--out={args.out}", f"--sets={name}"]
        if args.trial_minutes:
            argv.append(f"--trial-minutes={args.trial_minutes}")
        procs = [subprocess.Popen([*argv, f"--arm={arm}"], env=env) for arm in arms]
        if any(p.wait() for p in procs):
            raise SystemExit(f"bench/tuning: an arm of {name} failed")
    default = json.loads(Path(args.out, f"{name}_default.json").read_text())
    folder = TuneFolder(Path(args.out) / "tune" / f"{name}_tune")
    eval_cli.main(["--compare", str(Path(default["run"]) / "weights" / "last.pt"), str(folder.final.last)])
    return summary(name, args.time, Path(default["run"]), default["intervals"], folder)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--time", type=float, default=60.0, help="minutes for each side (default and tune)")
    p.add_argument("--sets", default="bccd,synthetic")
    p.add_argument("--trial-minutes", type=float, default=None)
    p.add_argument("--out", default="runs/bench_tuning")
    p.add_argument("--one-at-a-time", action="store_true", help="the arms in turn, each on all cores")
    p.add_argument("--arm", choices=("default", "tune"), help=argparse.SUPPRESS)  # a child process's side
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.arm:
        return run_arm(args.arm, args.sets, args)
    lines = [run_set(name, args) for name in args.sets.split(",")]
    print("\n" + "\n\n".join(lines))


def summary(name: str, minutes: float, run: Path, ci: dict, folder: TuneFolder) -> str:
    report = folder.report_md.read_text() if folder.report_md.is_file() else "(no report)"
    return (f"## {name}, {minutes:g} minutes each\n\ndefault recipe ({run}): AP {_ci(ci['AP'])}, "
            f"AP50 {_ci(ci['AP50'])}\n\n{report}")


def _ci(d: dict) -> str:
    return f"{d['value']:.3f} [{d['low']:.3f}, {d['high']:.3f}]"


if __name__ == "__main__":
    main()
