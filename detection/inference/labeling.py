"""What infer.py gives a person who labels: its detections as a data set to correct
(`--save-labels voc|coco|yolo`, which LabelImg, CVAT and Label Studio import, and this
toolkit's readers read back), and the images to label next (`--rank N`).

The ranking measure: each image's detection scores, as the model sees them, turned into the
binary entropy H(s) = -s log2 s - (1 - s) log2 (1 - s) (1 at s = 0.5, 0 at s = 0 or 1), summed
over its detections that score at least RANK_FLOOR. An image with many boxes the model is unsure
of comes first; one whose boxes are all confident, or that shows nothing, comes last.
"""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from ..data.formats import write
from ..data.records import DatasetInfo, ImageRecord

RANK_FLOOR = 0.1  # below this a detection is background to the model, not a doubt


def uncertainty(scores) -> float:
    """Summed binary entropy of the scores at or above RANK_FLOOR (see the module's docstring)."""
    total = 0.0
    for s in scores:
        s = min(max(float(s), 1e-9), 1 - 1e-9)
        if s >= RANK_FLOOR:
            total += -s * math.log2(s) - (1 - s) * math.log2(1 - s)
    return total


def detections_record(path: str, width: int, height: int, dets: list[dict], image_id: int) -> ImageRecord:
    """An image and the detections kept on it, as a labelled record (labels 1..K)."""
    boxes = np.array([d["box"] for d in dets], np.float32).reshape(-1, 4)
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    n = len(dets)
    return ImageRecord(path, width, height, boxes, np.array([d["label"] for d in dets], np.int64),
                       np.zeros(n, bool), np.zeros(n, bool), image_id)


def write_prelabels(fmt: str, dst: str, records: list[ImageRecord], class_names: list[str]) -> None:
    """The records as a `fmt` data set under `dst` (split `train`), images linked or copied."""
    dirs = [os.path.dirname(os.path.abspath(r.path)) for r in records]
    info = DatasetInfo(list(class_names), list(range(1, len(class_names) + 1)), "infer.py --save-labels",
                       root=os.path.commonpath(dirs) if dirs else "")
    write(fmt, dst, {"train": records}, list(class_names), {"train": info})


def write_ranking(path: str, ranked: list[tuple[str, float, int]], count: int) -> None:
    """to_label.txt: the `count` least certain images, one path a line, most uncertain first;
    to_label.csv beside it: every image with its uncertainty and detections counted."""
    ranked = sorted(ranked, key=lambda r: -r[1])
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{p}\n" for p, _, _ in ranked[:count]))
    with open(os.path.splitext(path)[0] + ".csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "uncertainty", "detections_scored"])
        w.writerows([p, f"{u:.4f}", n] for p, u, n in ranked)
