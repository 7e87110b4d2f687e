"""A labelling loop, measured (issue 32): the images `infer.py --rank` picks against images picked at random, on BCCD.

    python bench/active_learning.py                              # 20% labelled, 3 rounds of +10%, 3 minutes each
    python bench/active_learning.py --rounds 2 --minutes 2 --out /tmp/al

BCCD's training images are the pool; their labels play the person who labels. Round 0 trains on
a seeded 20% of them. Each later round adds 10% of the pool to each arm's labelled set, chosen by
`tools/infer.py --rank N` with the arm's last model (the images it is least sure about) or at
random (seeded), and trains from the arm's last model (`model.init`) for the same minutes. The two
arms run side by side (one core and one loader worker each). Every run validates on BCCD's whole
validation split with its bootstrap interval; the last round's two models are compared by the
paired bootstrap (`eval_det.py --compare`). Rows are appended to `<out>/active_learning.md`.
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

from arms import ONE_CORE, start_run, wait

REPO = Path(__file__).resolve().parent.parent
BCCD = REPO.parent / "shared" / "datasets" / "bccd_voc" / "BCCD"
CONFIG = REPO / "configs" / "bccd_frcnn.yaml"


def ids(split: str) -> list[str]:
    return (BCCD / "ImageSets/Main" / f"{split}.txt").read_text().split()


def train(name: str, labelled: list[str], minutes: float, out: Path, init: Path | None):
    split = out / f"{name}.split.json"
    split.write_text(json.dumps({"train": [f"{i}.jpg" for i in labelled], "val": [f"{i}.jpg" for i in ids("val")]}))
    return start_run(CONFIG, name, out, ["data.train_split=trainval", f"data.split_file={split}",
                                         f"train.time={minutes}", *([f"model.init={init}"] if init else [])])


def ap_line(run: Path) -> str:
    """'AP 0.512 [0.480, 0.540]' of the run's last validation (its bootstrap interval)."""
    text = (run.parent / f"{run.name}.log").read_text()
    m = re.findall(r"^AP ([0-9.]+) \[([0-9.]+), ([0-9.]+)\]", text, re.M)
    return f"{m[-1][0]} [{m[-1][1]}, {m[-1][2]}]" if m else "n/a"


def ranked(run: Path, pool: list[str], n: int, out: Path) -> list[str]:
    """The `n` pool images `infer.py --rank` puts first for the model of `run`."""
    folder = out / f"rank-{run.name}"
    cmd = [sys.executable, str(REPO / "tools/infer.py"), "--ckpt", str(run), "--source",
           *[str(BCCD / "JPEGImages" / f"{i}.jpg") for i in pool], "--rank", str(n), "--no-save", "--out", str(folder)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **ONE_CORE})
    if done.returncode != 0:
        raise SystemExit(f"infer.py --rank failed:\n{done.stderr[-2000:]}")
    return [Path(p).stem for p in (folder / "to_label.txt").read_text().split("\n") if p]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds after round 0, each adding 10%% of the pool")
    p.add_argument("--minutes", type=float, default=3.0, help="train.time of every round")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_active_learning"))
    args = p.parse_args()
    if not BCCD.is_dir():
        raise SystemExit(f"BCCD is not at {BCCD} (see ../shared/datasets/README.md)")
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    pool = ids("train")
    rng = random.Random(0)
    start = rng.sample(pool, round(0.2 * len(pool)))
    step = round(0.1 * len(pool))
    first = train("round0", start, args.minutes, out, None)
    wait({"round0": first})
    labelled = {"ranked": list(start), "random": list(start)}
    last = {"ranked": first[1], "random": first[1]}
    rows = [f"| 0 | {len(start)} | {ap_line(first[1])} | {ap_line(first[1])} |"]
    for k in range(1, args.rounds + 1):
        for arm in labelled:
            left = [i for i in pool if i not in labelled[arm]]
            labelled[arm] += ranked(last[arm], left, step, out) if arm == "ranked" else rng.sample(left, step)
        procs = {arm: train(f"round{k}-{arm}", labelled[arm], args.minutes, out, last[arm]) for arm in labelled}
        wait(procs)
        last = {arm: run for arm, (_, run) in procs.items()}
        rows.append(f"| {k} | {len(labelled['ranked'])} | {ap_line(last['ranked'])} | {ap_line(last['random'])} |")
        print(rows[-1], flush=True)
    done = subprocess.run([sys.executable, str(REPO / "tools/eval_det.py"), "--compare", str(last["random"]),
                           str(last["ranked"]), "--out", str(out / "compare-last")], cwd=REPO, capture_output=True,
                          text=True)
    paired = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip().startswith("AP:")]
    import torch

    text = "\n".join([
        f"\n{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.backends.cpu.get_cpu_capability()}, both arms at once, 1 thread each, train.time={args.minutes:g} "
        f"a round, each round from the arm's last model; BCCD val (87 images), AP [95% bootstrap]\n",
        "| round | labelled images | AP, ranked (infer.py --rank) | AP, random |", "|---|---|---|---|", *rows,
        f"\nlast round, ranked against random (paired): {paired[0] if paired else 'the comparison failed'}\n"])
    print(text, flush=True)
    with open(out / "active_learning.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
