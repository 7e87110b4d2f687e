"""Today's default recipe against the fitted one (issue 31), on hard and easy sets, at a time budget.

    python bench/hard_sets.py                                   # HIT-UAV, DeepPCB, BCCD, synthetic at 10 min
    python bench/hard_sets.py --sets hituav --minutes 30
    python bench/hard_sets.py --sets bccd --minutes 2 --out /tmp/hs   # a quick look
    python bench/hard_sets.py --sets deeppcb --variant model.stride4_level=true   # fitted against fitted + this
    python bench/hard_sets.py --sets deeppcb --variant model.stride4_level=true --against default
    python bench/hard_sets.py --sets deeppcb --seed 1   # the same comparison with other random draws

Each set trains twice from the same shipped config, side by side (both arms at once, one core
and one loader worker each, so the machine's load falls on both alike):
- default: the recipe off (`recipe.fit=false`): the shipped config as it was before the recipe
  (VOC: 480 / 800 px shrunk by model.auto_size, 300 proposals and 128 RoIs an image);
- fitted: the shipped config as it is, the recipe choosing scale, tiles, anchors, crowding and
  sampling from the training set's fingerprint.
With `--variant KEY=VALUE ...` the arms are instead the fitted recipe and the fitted recipe with
those keys (a rule measured before it joins the recipe); `--against default` puts the recipe-off
arm against the fitted recipe with those keys (what the recipe would be if the rule joined it).
Then `eval_det.py --compare default fitted` scores both on the same validation images: the paired
bootstrap of fitted minus default for AP and AP_small (95% intervals), and the images per second
of each model's validation. The recipe's choices are read from the fitted run's config.yaml.
That interval covers the validation images, not the training's own randomness (its order,
augmentation, new heads): `--seed N` repeats a comparison with other draws, both arms alike.
Rows print as they finish and are appended to `<out>/hard_sets.md` (markdown, with the machine).
Data: `../shared/datasets` beside the checkout (HIT-UAV, DeepPCB, BCCD); the synthetic set is made.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from arms import start_run, wait

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
VOC = "configs/voc_frcnn.yaml"
SETS = {  # name: (config, overrides)
    "hituav": (VOC, [f"data.root={SHARED / 'hituav_voc/HIT-UAV'}", "data.train_split=train", "data.val_split=val",
                     "data.classes=[]"]),
    "deeppcb": (VOC, [f"data.root={SHARED / 'deeppcb_voc/DeepPCB'}", "data.train_split=train", "data.val_split=val",
                      "data.classes=[]"]),
    "bccd": ("configs/bccd_frcnn.yaml", []),
    "synthetic": ("configs/demo.yaml", []),
}
ARMS = {"default": ["recipe.fit=false"], "fitted": []}
RECIPE_SHOWN = ("min_size", "max_size", "tile_size", "anchors", "box_batch_size_per_image",
                "rpn_post_nms_top_n_train", "box_detections_per_img", "stride4_level", "freeze_at")


def train_both(name: str, minutes: float, out: Path, reuse: bool, arms: dict[str, list[str]],
               seed: int = 0) -> dict[str, Path]:
    """Both `arms` of set `name` trained at once, from `seed`; {arm: run folder}. `reuse`: runs
    already there (finished) are kept, so the table can be made again."""
    cfg, overrides = SETS[name]
    procs, runs = {}, {}
    for arm, extra in arms.items():
        run_name = f"{name}-{arm}-{minutes:g}"
        runs[arm] = out / run_name
        if reuse and (runs[arm] / "weights" / "best.pt").is_file():
            continue
        if runs[arm].exists():
            raise SystemExit(f"{runs[arm]} exists: give another --out, or --reuse")
        procs[f"{name} {arm}"] = start_run(REPO / cfg, run_name, out, [*overrides, *extra, f"train.time={minutes}",
                                                                        "eval.bootstrap=0", f"seed={seed}"])
    wait(procs)
    return runs


def compare(name: str, runs: dict[str, Path], out: Path, reuse: bool) -> dict:
    """eval_det.py --compare <first arm> <second>: the paired differences, from its compare.json."""
    first, second = runs.values()
    target = out / f"{name}-compare-{first.name}-{second.name}"
    found = sorted(out.glob(f"{target.name}*/compare.json"))
    if reuse and found:
        return json.loads(found[-1].read_text())
    cmd = [sys.executable, str(REPO / "tools/eval_det.py"), "--compare", str(first), str(second),
           "--out", str(target)]
    with open(out / f"{target.name}.log", "w") as log:
        if subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
            raise SystemExit(f"{name}: the comparison failed (see {log.name})")
    found = sorted(out.glob(f"{target.name}*/compare.json"))
    return json.loads(found[-1].read_text())


def final_row(run: Path) -> dict:
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))[-1]


def val_images(run: Path) -> int:
    text = (run.parent / f"{run.name}.log").read_text()
    marker = "COCO bbox (pycocotools, "
    return int(text[text.rindex(marker) + len(marker):].split(" ")[0])


def chosen(run: Path) -> str:
    from detection.utils.yaml_io import yaml_load

    cfg = yaml_load((run / "config.yaml").read_text())
    m, d = cfg["model"], cfg["data"]
    parts = [f"{k}={m.get(k)}" for k in RECIPE_SHOWN]  # .get: runs from before a key was added
    return ", ".join(parts + [f"sampler={d['sampler']}"])


def row(name: str, minutes: float, runs: dict[str, Path], diff: dict) -> str:
    def ips(run):
        return val_images(run) / max(float(final_row(run)["val_s"]), 1e-9)

    def wall(run):  # training and the final validation, against train.time
        with open(run / "results.csv") as f:
            rows = list(csv.DictReader(f))
        return f"{sum(float(r['epoch_s']) for r in rows) / 60:.1f}"

    def d(k):
        x = diff.get(k)
        return "n/a" if not x else f"{x['a']:.3f} / {x['b']:.3f} / {x['diff']:+.3f} [{x['low']:+.3f}, {x['high']:+.3f}]"

    first, second = runs.values()
    return (f"| {name} | {minutes:g} | {d('AP')} | {d('APs')} | {ips(first):.2f} / {ips(second):.2f} "
            f"| {wall(first)} / {wall(second)} | {chosen(second)} |")


def main() -> None:
    sys.path.insert(0, str(REPO))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="hituav,deeppcb,bccd,synthetic")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--out", default=str(REPO / "runs" / "bench_hard_sets"))
    p.add_argument("--reuse", action="store_true", help="keep the finished runs and comparisons in --out")
    p.add_argument("--seed", type=int, default=0,
                   help="both arms' seed: a second seed repeats a comparison with other draws of the training "
                        "order, augmentation and heads (the paired interval covers the validation images only)")
    p.add_argument("--variant", nargs="+", default=[], metavar="KEY=VALUE",
                   help="compare the fitted recipe with the fitted recipe and these keys instead")
    p.add_argument("--against", choices=sorted(ARMS),
                   help="with --variant: the arm it is compared with, fitted (the recipe, the default) or default "
                        "(the recipe off)")
    args = p.parse_args()
    if args.against and not args.variant:  # without a variant the arms are default and fitted already
        p.error("--against compares a --variant with an arm; add --variant KEY=VALUE, or drop --against")
    against = args.against or "fitted"
    arms = {against: ARMS[against], "variant": args.variant} if args.variant else ARMS
    a, b = arms
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    import torch

    header = (f"| set | train.time | AP: {a} / {b} / diff [95%] | AP_small: {a} / {b} / diff [95%] "
              f"| val img/s {a} / {b} | minutes with validation | {b} chose |\n" + "|---" * 7 + "|")
    machine = f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}"
    table = out / "hard_sets.md"
    with open(table, "a") as f:
        f.write(f"\n{time.strftime('%Y-%m-%d %H:%M')}, {machine}, both arms at once, 1 thread each"
                f"{', variant: ' + ' '.join(args.variant) + ' against ' + a if args.variant else ''}, seed {args.seed}"
                f"\n\n{header}\n")
    print(header, flush=True)
    for name in args.sets.split(","):
        if name not in SETS:
            raise SystemExit(f"--sets: {name} is not one of {', '.join(SETS)}")
        if name != "synthetic" and not SHARED.is_dir():
            print(f"| {name} | skipped: {SHARED} is not there |", flush=True)
            continue
        runs = train_both(name, args.minutes, out, args.reuse, arms, args.seed)
        line = row(name, args.minutes, runs, compare(name, runs, out, args.reuse))
        print(line, flush=True)
        with open(table, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
