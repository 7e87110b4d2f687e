"""Adding a class to a trained model without forgetting the old ones (`model.keep_old_classes`, issue 32), on BCCD.

    python bench/add_classes.py                  # 5 minutes a run
    python bench/add_classes.py --minutes 2 --out /tmp/add_classes

BCCD's training images are cut in two halves by file name hash. The old model learns RBC and
WBC on half A (its Platelets boxes taken out of the annotations). The new images, half B, come
labelled for Platelets only, as new labels usually do. From the old model, at the same time
budget, side by side (one core and one loader worker each), three arms:
- plain: fine-tuned on the new labels as they are (the old classes' objects are background);
- keep: `model.keep_old_classes=true`: the old model's pseudo-labels for RBC and WBC on half B;
- joint: half B with all its labels, the ceiling.
Every arm validates on BCCD's whole validation split, all three classes labelled, so its own
per-class AP says what it kept and what it learned. `eval_det.py --compare` gives the paired
differences of keep against plain and against joint. The annotation copies are written under
`--out` (the images are linked, never copied: data.allow_outside_root=true follows the links);
rows are appended to `<out>/add_classes.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from arms import start_run, wait

REPO = Path(__file__).resolve().parent.parent
BCCD = REPO.parent / "shared" / "datasets" / "bccd_voc" / "BCCD"
CONFIG = REPO / "configs" / "bccd_frcnn.yaml"
OLD, NEW = ["RBC", "WBC"], ["Platelets"]


def half(image_id: str) -> str:
    return "A" if hashlib.sha1(image_id.encode()).digest()[0] < 128 else "B"


def write_voc(out: Path, train_ids: list[str], train_classes: list[str], val_classes: list[str]) -> Path:
    """A VOC folder of BCCD's images (linked) whose training annotations keep only `train_classes`
    and whose validation annotations keep `val_classes`."""
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    val_ids = (BCCD / "ImageSets/Main/val.txt").read_text().split()
    for ids, keep in ((train_ids, train_classes), (val_ids, val_classes)):
        for i in ids:
            tree = ET.parse(BCCD / "Annotations" / f"{i}.xml")
            root = tree.getroot()
            for obj in list(root.findall("object")):
                if obj.findtext("name").strip() not in keep:
                    root.remove(obj)
            tree.write(out / "Annotations" / f"{i}.xml")
            link = out / "JPEGImages" / f"{i}.jpg"
            if not link.exists():
                link.symlink_to(BCCD / "JPEGImages" / f"{i}.jpg")
    (out / "ImageSets/Main/train.txt").write_text("\n".join(train_ids) + "\n")
    (out / "ImageSets/Main/val.txt").write_text("\n".join(val_ids) + "\n")
    return out


def start(name: str, root: Path, minutes: float, out: Path, extra: list[str]):
    return start_run(CONFIG, name, out, [f"data.root={root}", "data.allow_outside_root=true",
                                         f"train.time={minutes}", "eval.bootstrap=0", *extra])


def per_class(run: Path) -> dict[str, float]:
    """COCO AP per class of the run's last validation, from its log's table."""
    text = (run.parent / f"{run.name}.log").read_text()
    table = text[text.rindex("class                 COCO AP"):]
    out = {}
    for name in OLD + NEW + ["mean"]:
        m = re.search(rf"^{name} +([0-9.]+|n/a)", table, re.M)
        out[name] = float(m.group(1)) if m and m.group(1) != "n/a" else float("nan")
    return out


def compare(a: Path, b: Path, out: Path) -> str:
    """eval_det.py --compare a b: the paired AP lines (all classes, then per class)."""
    target = out / f"compare-{b.name}-{a.name}"
    log = subprocess.run([sys.executable, str(REPO / "tools/eval_det.py"), "--compare", str(a), str(b), "--out",
                          str(target)], cwd=REPO, capture_output=True, text=True)
    if log.returncode != 0:
        raise SystemExit(f"compare {b.name} {a.name} failed:\n{log.stderr[-2000:]}")
    lines = [ln.strip() for ln in log.stdout.splitlines() + log.stderr.splitlines()
             if re.match(r"\s*(AP|RBC|WBC|Platelets)\b", ln) and "interval" in ln]
    return "\n".join(f"  {ln}" for ln in lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="train.time of every run")
    p.add_argument("--out", default=str(REPO / "runs" / "bench_add_classes"))
    args = p.parse_args()
    if not BCCD.is_dir():
        raise SystemExit(f"BCCD is not at {BCCD} (see ../shared/datasets/README.md)")
    out = Path(args.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    ids = (BCCD / "ImageSets/Main/train.txt").read_text().split()
    a, b = [i for i in ids if half(i) == "A"], [i for i in ids if half(i) == "B"]
    old_root = write_voc(out / "data_old", a, OLD, OLD)
    new_root = write_voc(out / "data_new", b, NEW, OLD + NEW)
    full_root = write_voc(out / "data_full", b, OLD + NEW, OLD + NEW)
    old = start("old", old_root, args.minutes, out, ["data.classes=[RBC, WBC]"])
    wait({"old": old})
    init = f"model.init={old[1]}"
    arms = {"plain": start("plain", new_root, args.minutes, out, [init, "data.classes=[RBC, WBC, Platelets]"]),
            "keep": start("keep", new_root, args.minutes, out, [init, "data.classes=[]",
                                                                 "model.keep_old_classes=true"]),
            "joint": start("joint", full_root, args.minutes, out, [init, "data.classes=[RBC, WBC, Platelets]"])}
    wait(arms)
    import torch

    old_ap = per_class(old[1])
    lines = [f"\n{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.backends.cpu.get_cpu_capability()}, the three arms at once, 1 thread each, "
             f"train.time={args.minutes:g} a run; halves A {len(a)} / B {len(b)} images; AP on BCCD val (87 images)\n",
             "| model | RBC AP | WBC AP | Platelets AP | mean |", "|---|---|---|---|---|",
             f"| old (half A, RBC and WBC) | {old_ap['RBC']:.3f} | {old_ap['WBC']:.3f} | - | "
             f"{old_ap['mean']:.3f} (2 classes) |"]
    for arm, (_, run) in arms.items():
        ap = per_class(run)
        lines.append(f"| {arm} | {ap['RBC']:.3f} | {ap['WBC']:.3f} | {ap['Platelets']:.3f} | {ap['mean']:.3f} |")
    forgot = json.loads((arms["keep"][1] / "forgetting.json").read_text())
    lines.append(f"\nkeep's own report, old classes on the old validation split: AP {forgot['before']['AP']:.3f} "
                 f"before, {forgot['after']['AP']:.3f} after")
    lines.append(f"\nkeep against plain (B - A):\n{compare(arms['plain'][1], arms['keep'][1], out)}")
    lines.append(f"\nkeep against joint (B - A):\n{compare(arms['joint'][1], arms['keep'][1], out)}\n")
    text = "\n".join(lines)
    print(text, flush=True)
    with open(out / "add_classes.md", "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
