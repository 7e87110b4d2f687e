"""What a split holds, in numbers: boxes per class and box sizes at the model's input, and the
few lines `train_det.py` prints at start. Shared by the dataset (the start-up summary), the
data check and model.auto_size / anchors=auto, so it sits below all of them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..utils.commands import command
from .pixels import target_size
from .records import DatasetInfo, ImageRecord

SMALL, MEDIUM = 32 ** 2, 96 ** 2  # COCO's area limits
SHOWN = 10  # classes named in a summary line
TINY = 8  # pixels: a box this thin at the model's input is hardly seen by a stride-8+ detector
# pixels: when most boxes are smaller than this at the input, the model needs a larger input. Not
# slicing alone: on HIT-UAV (98% of boxes under 32 px) a model trained on whole images scored AP
# 0.299 whole and 0.214 with --slice 160 (20x slower): sliced, it meets objects 3x the size it learned
SMALL_AT_INPUT = 16


def box_stats(records: list[ImageRecord], min_size: int, max_size: int, tile: int = 0) -> dict:
    """Widths and heights of every box at the model's input, with COCO size classes and tiny ones.
    `tile` (model.tile_size): the model sees tiles of that many native pixels at min_size, so
    every image is scaled by min_size / tile."""
    ws, hs = [], []
    for r in records:
        if not len(r.boxes):
            continue
        if tile:
            sx = sy = min_size / tile
        else:
            new_w, new_h = target_size(r.width, r.height, min_size, max_size)
            sx, sy = new_w / r.width, new_h / r.height
        ws.append((r.boxes[:, 2] - r.boxes[:, 0]) * sx)
        hs.append((r.boxes[:, 3] - r.boxes[:, 1]) * sy)
    w = np.concatenate(ws) if ws else np.zeros(0)
    h = np.concatenate(hs) if hs else np.zeros(0)
    area = w * h
    ratio = w / np.maximum(h, 1e-6)
    return {"w": w, "h": h, "small": int((area < SMALL).sum()),
            "medium": int(((area >= SMALL) & (area < MEDIUM)).sum()),
            "large": int((area >= MEDIUM).sum()), "tiny": int((np.minimum(w, h) < TINY).sum()),
            "ratio_quantiles": np.quantile(ratio, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist() if len(ratio) else []}


def class_counts(records: list[ImageRecord], names: list[str]) -> Counter:
    counts: Counter = Counter({n: 0 for n in names})
    for r in records:
        counts.update(names[int(label) - 1] for label in r.labels)
    return counts


def short_summary(records: list[ImageRecord], info: DatasetInfo, min_size: int, max_size: int,
                  tile: int = 0) -> str:
    """The lines train_det.py prints per split: counts, classes, small boxes, defects."""
    boxes = sum(len(r.boxes) for r in records)
    negatives = sum(1 for r in records if not len(r.boxes))
    s = box_stats(records, min_size, max_size, tile)
    counts = class_counts(records, info.class_names).most_common()
    per_class = ", ".join(f"{c} {n}" for c, n in counts[:SHOWN] if n) + (", ..." if len(counts) > SHOWN else "")
    lines = [f"{info.source}: {len(records)} images ({negatives} without boxes), {boxes} boxes: {per_class}",
             f"  at the model's input: {s['small']} small / {s['medium']} medium / {s['large']} large boxes"
             + (f", {s['tiny']} under {TINY} px (hard to detect)" if s["tiny"] else "")]
    if len(s["w"]) and np.median(np.maximum(s["w"], s["h"])) < SMALL_AT_INPUT:
        lines.append(f"  most boxes are under {SMALL_AT_INPUT} px at the model's input: let the recipe choose the "
                     "scale and tiles (recipe.fit=true, and leave model.min_size / max_size / tile_size unset), "
                     "or train on tiles yourself (model.tile_size); slicing a model trained on whole images "
                     "alone shows it objects larger than it learned (on HIT-UAV it lowered AP 0.299 -> 0.214)")
    empty = [c for c, n in counts if n == 0]
    if empty:
        lines.append(f"  {len(empty)} classes without a box here: {', '.join(empty[:SHOWN])}"
                     + (", ..." if len(empty) > SHOWN else ""))
    if any(info.skipped.values()):
        lines.append("  notes: " + ", ".join(f"{k} {n}" for k, n in info.skipped.items() if n)
                     + f" ({command('data_check')} names every file)")
    return "\n".join(lines)
