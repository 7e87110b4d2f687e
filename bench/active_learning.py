"""A labelling loop, measured (issue 32): the images `infer.py --rank` picks against images picked at random.

    python bench/active_learning.py                              # BCCD: 20% labelled, 3 rounds of +10%, 3 minutes each
    python bench/active_learning.py --rounds 2 --minutes 2 --out /tmp/al
    python bench/active_learning.py --set hituav --minutes 8 --val-images 120 --candidates 270

The set's training images are the pool; their labels play the person who labels. Round 0 trains
on a seeded 20% of them. Each later round adds 10% of the pool to each arm's labelled set, chosen
by `tools/infer.py --rank N` with the arm's last model (the images it is least sure about) or at
random (seeded), and trains from the arm's last model (`model.init`) for the same minutes. The two
arms train side by side (one core and one loader worker each); the ranking, which only the ranked
arm needs, runs alone on the whole machine. Every run validates on the set's validation split
(or a seeded `--val-images` of it, for time) with its bootstrap interval; the last round's two
models are compared by the paired bootstrap (`eval_det.py --compare`). Rows are appended to
`<out>/active_learning.md`.

`--candidates K` ranks a seeded random K of the images not yet labelled instead of all of them,
the usual shortcut when the pool is large (a tiled HIT-UAV model predicts about 0.6 images a
second on 2 cores, so ranking its 720 unlabelled images would cost 20 minutes a round).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from arms import start_run, wait

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
SETS = {  # name: (data root, config, overrides); the split file picks both sides from every annotation read
    "bccd": (SHARED / "bccd_voc" / "BCCD", REPO / "configs" / "bccd_frcnn.yaml", ["data.train_split=trainval"]),
    "hituav": (SHARED / "hituav_voc" / "HIT-UAV", REPO / "configs" / "voc_frcnn.yaml",
               ["data.train_split=all", "data.classes=[]"]),
}


def ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets/Main" / f"{split}.txt").read_text().split()


def train(data: str, name: str, labelled: list[str], val: list[str], minutes: float, out: Path, init: Path | None):
    root, config, overrides = SETS[data]
    split = out / f"{name}.split.json"
    split.write_text(json.dumps({"train": [f"{i}.jpg" for i in labelled], "val": [f"{i}.jpg" for i in val]}))
    return start_run(config, name, out, [f"data.root={root}", *overrides, f"data.split_file={split}",
                                         f"train.time={minutes}", *([f"model.init={init}"] if init else [])])


def ap_line(run: Path) -> str:
    """'AP 0.512 [0.480, 0.540]' of the run's last validation (its bootstrap interval)."""
    text = (run.parent / f"{run.name}.log").read_text()
    m = re.findall(r"^AP ([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", text, re.M)
    return f"{m[-1][0]} [{m[-1][1]}, {m[-1][2]}]" if m else "n/a"


def ranked(root: Path, run: Path, pool: list[str], n: int, out: Path) -> list[str]:
    """The `n` pool images `infer.py --rank` puts first for the model of `run` (on the whole machine)."""
    folder = out / f"rank-{run.name}"
    cmd = [sys.executable, str(REPO / "tools/infer.py"), "--ckpt", str(run), "--source",
           *[str(root / "JPEGImages" / f"{i}.jpg") for i in pool], "--rank", str(n), "--no-save", "--out", str(folder)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"infer.py --rank failed:\n{done.stderr[-2000:]}")
    return [Path(p).stem for p in (folder / "to_label.txt").read_text().split("\n") if p]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=sorted(SETS), default="bccd", help="the data set (../shared/datasets)")
    p.add_argument("--rounds", type=int, default=3, help="rounds after round 0, each adding 10%% of the pool")
    p.add_argument("--minutes", type=float, default=3.0, help="train.time of every round")
    p.add_argument("--val-images", type=int, default=0, help="validate on a seeded this many (0: the whole split)")
    p.add_argument("--candidates", type=int, default=0,
                   help="rank a seeded this many of the unlabelled images (0: all of them)")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_active_learning"))
    args = p.parse_args()
    root = SETS[args.set][0]
    if not root.is_dir():
        raise SystemExit(f"{args.set} is not at {root} (see ../shared/datasets/README.md)")
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    pool, rng = ids(root, "train"), random.Random(0)
    val = ids(root, "val")
    val = sorted(random.Random(1).sample(val, args.val_images)) if 0 < args.val_images < len(val) else val
    start = rng.sample(pool, round(0.2 * len(pool)))
    step = round(0.1 * len(pool))
    first = train(args.set, "round0", start, val, args.minutes, out, None)
    wait({"round0": first})
    labelled = {"ranked": list(start), "random": list(start)}
    last = {"ranked": first[1], "random": first[1]}
    rows = [f"| 0 | {len(start)} | {ap_line(first[1])} | {ap_line(first[1])} |"]
    print(rows[-1], flush=True)
    for k in range(1, args.rounds + 1):
        for arm in labelled:
            left = [i for i in pool if i not in labelled[arm]]
            if arm == "random":
                labelled[arm] += rng.sample(left, step)
                continue
            shown = rng.sample(left, args.candidates) if step <= args.candidates < len(left) else left
            labelled[arm] += ranked(root, last[arm], shown, step, out)
        procs = {arm: train(args.set, f"round{k}-{arm}", labelled[arm], val, args.minutes, out, last[arm])
                 for arm in labelled}
        wait(procs)
        last = {arm: run for arm, (_, run) in procs.items()}
        rows.append(f"| {k} | {len(labelled['ranked'])} | {ap_line(last['ranked'])} | {ap_line(last['random'])} |")
        print(rows[-1], flush=True)
    done = subprocess.run([sys.executable, str(REPO / "tools/eval_det.py"), "--compare", str(last["random"]),
                           str(last["ranked"]), "--out", str(out / "compare-last")], cwd=REPO, capture_output=True,
                          text=True)
    paired = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip().startswith("AP:")]
    import torch

    ranking = f"ranked among a seeded {args.candidates} of the unlabelled" if args.candidates else "ranked among all"
    text = "\n".join([
        f"\n{time.strftime('%Y-%m-%d %H:%M')}, {args.set}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.backends.cpu.get_cpu_capability()}, both arms at once, 1 thread each, train.time={args.minutes:g} "
        f"a round, each round from the arm's last model, {ranking}; {len(val)} validation images, "
        "AP [95% bootstrap]\n",
        "| round | labelled images | AP, ranked (infer.py --rank) | AP, random |", "|---|---|---|---|", *rows,
        f"\nlast round, ranked against random (paired): {paired[0] if paired else 'the comparison failed'}\n"])
    print(text, flush=True)
    with open(out / "active_learning.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
