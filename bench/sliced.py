"""Sliced inference against plain on large images with small objects (made from the synthetic set).

    python bench/sliced.py [--size 160] [--grid 8] [--ckpt RUN] [--train-minutes 3]

The synthetic shapes set at `size` pixels (shapes of size/10 to size/3: at 160, half of them
under 32 pixels, COCO's "small") trains a detector at that input size (or `--ckpt` gives one).
Its validation images are tiled `grid` x `grid` into large images (1280 pixels for 160 x 8),
so every shape keeps its size in pixels while the image grows: scored plainly, the model
shrinks each large image to its input size and the shapes with it; sliced (`--slice size`),
each tile is seen at the scale the model trained on. Prints COCO AP, AP50, AP_small and
AP_medium of both on the same large images.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.api import evaluate  # noqa: E402
from detection.config import CONFIG_DIR, load_config  # noqa: E402
from detection.data.synthetic import generate  # noqa: E402


def tile_set(src: Path, dst: Path, grid: int) -> None:
    """COCO set `dst` (split val) of images made of `grid` x `grid` images of `src`'s val split."""
    coco = json.loads((src / "coco" / "annotations" / "instances_val.json").read_text())
    by_image: dict[int, list] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images, anns = [], []
    (dst / "val").mkdir(parents=True, exist_ok=True)
    (dst / "annotations").mkdir(parents=True, exist_ok=True)
    per = grid * grid
    for n in range(len(coco["images"]) // per):
        group = coco["images"][n * per:(n + 1) * per]
        h, w = group[0]["height"], group[0]["width"]
        canvas = np.zeros((h * grid, w * grid, 3), np.uint8)
        for k, im in enumerate(group):
            y0, x0 = (k // grid) * h, (k % grid) * w
            canvas[y0:y0 + h, x0:x0 + w] = cv2.imread(str(src / "coco" / "val" / im["file_name"]))
            for a in by_image.get(im["id"], []):
                x, y, bw, bh = a["bbox"]
                anns.append({**a, "id": len(anns) + 1, "image_id": n + 1, "bbox": [x + x0, y + y0, bw, bh]})
        name = f"large_{n:03d}.jpg"
        cv2.imwrite(str(dst / "val" / name), canvas)
        images.append({"id": n + 1, "file_name": name, "width": w * grid, "height": h * grid})
    (dst / "annotations" / "instances_val.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": coco["categories"]}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", help="a model trained on the synthetic set at --size (default: train one)")
    p.add_argument("--size", type=int, default=160, help="synthetic image size = the model's input size")
    p.add_argument("--grid", type=int, default=8)
    p.add_argument("--train-minutes", type=float, default=3.0)
    p.add_argument("--out", default="runs/bench_sliced")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = Path(args.out)
    src = out / "synthetic"
    generate(str(src), num_train=160, num_val=16 * args.grid * args.grid, image_size=args.size, seed=1)
    ckpt = args.ckpt
    if ckpt is None:
        from detection.training.trainer import train

        cfg = load_config(CONFIG_DIR / "demo.yaml", [f"output_dir={out}", "name=model",
                                                   f"train.time={args.train_minutes}", "data.format=coco",
                                                   f"data.root={src / 'coco'}", f"model.min_size={args.size}",
                                                   f"model.max_size={args.size}"])
        ckpt = str(train(cfg)[0])
    large = out / "large"
    tile_set(src, large, args.grid)
    cfg = {"data": {"format": "coco", "root": str(large), "train_split": "val", "val_split": "val"}}
    rows = []
    for name, slice_size in (("plain", None), (f"sliced {args.size}", args.size)):
        res = evaluate(ckpt, cfg, slice=slice_size)
        rows.append((name, res["coco"]))
    count, side = len(os.listdir(large / "val")), args.size * args.grid
    print(f"\n{count} images of {side} px, each {args.grid}x{args.grid} synthetic validation images (shapes kept at "
          f"their size); model {ckpt}\n")
    print("| inference | AP | AP50 | AP_small | AP_medium |\n|---|---|---|---|---|")
    for name, c in rows:
        print(f"| {name} | {c['AP']:.3f} | {c['AP50']:.3f} | {c['APs']:.3f} | {c['APm']:.3f} |")


if __name__ == "__main__":
    main()
