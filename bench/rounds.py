"""The second round from the first model (`model.init`, issue 32) against the second round from ImageNet, on BCCD.

    python bench/rounds.py                       # 5 minutes a round
    python bench/rounds.py --minutes 2 --out /tmp/rounds

Round 1 trains on a seeded half of BCCD's training images (`data.fraction=0.5`), as a first
labelling round would. Round 2 has all the training images and trains twice, side by side (both
arms at once, one core and one loader worker each): from round 1's model (`model.init`), and from
ImageNet as every round did before; both validate `train.time_validations` times on the same
validation images, so each gives a curve of AP against training minutes. Validations fall at epoch
ends, so a third arm trains from round 1 for a fifth of the time: the early part of its curve. The table says round 1's
AP, each arm's curve, and when each arm first reached round 1's AP. Rows are appended to
`<out>/rounds.md`.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

from arms import start_run, wait

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "configs" / "bccd_frcnn.yaml"
SHARED = REPO.parent / "shared" / "datasets" / "bccd_voc" / "BCCD"


def start(name: str, minutes: float, out: Path, extra: list[str], validations: int):
    return start_run(CONFIG, name, out, [f"train.time={minutes}", f"train.time_validations={validations}",
                                         "eval.bootstrap=0", *extra])


def curve(run: Path) -> list[tuple[float, float]]:
    """(training minutes, AP) of each validation of the run."""
    with open(run / "results.csv") as f:
        return [(float(r["train_end_s"]) / 60, float(r["AP"])) for r in csv.DictReader(f) if r["AP"]]


def reached(points: list[tuple[float, float]], target: float) -> str:
    hit = next((m for m, ap in points if ap >= target), None)
    return "not within the budget" if hit is None else f"{hit:.1f} min"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="train.time of each round")
    p.add_argument("--validations", type=int, default=4, help="train.time_validations of round 2 (its curve)")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_rounds"))
    args = p.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"BCCD is not at {SHARED} (see ../shared/datasets/README.md)")
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    first = start("round1", args.minutes, out, ["data.fraction=0.5"], 1)
    wait({"round1": first})
    target = curve(first[1])[-1][1]
    short = args.minutes / 5  # validations fall at epoch ends, so a short run of its own shows the early part
    arms = {"from round 1": start("round2-init", args.minutes, out, [f"model.init={first[1]}"], args.validations),
            f"from round 1, train.time={short:g}": start("round2-init-short", short, out,
                                                         [f"model.init={first[1]}"], 1),
            "from ImageNet": start("round2-imagenet", args.minutes, out, [], args.validations)}
    wait(arms)
    import torch

    lines = [f"\n{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.backends.cpu.get_cpu_capability()}, round 2's three arms at once, 1 thread each, "
             f"train.time={args.minutes:g} a round\n",
             f"Round 1 (half the training images): AP {target:.3f}\n",
             "| round 2 | AP at each validation (training minutes: AP) | reached round 1's AP | final AP |",
             "|---|---|---|---|"]
    for arm, (_, run) in arms.items():
        points = curve(run)
        lines.append(f"| {arm} | {', '.join(f'{m:.1f}: {ap:.3f}' for m, ap in points)} | {reached(points, target)} "
                     f"| {points[-1][1]:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    with open(out / "rounds.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
