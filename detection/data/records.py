"""The one record type every reader produces, and the box clean-up they share.

Readers (COCO json, Pascal VOC xml, the synthetic generator) differ only in how they
parse files; after that everything downstream sees `ImageRecord`s with boxes in xyxy
pixels and contiguous labels 1..K (0 is background, as torchvision's detectors expect).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("detection.data")


@dataclass
class ImageRecord:
    path: str  # absolute image path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32 xyxy pixels, clipped to the image
    labels: np.ndarray  # (N,) int64 in 1..K
    iscrowd: np.ndarray  # (N,) bool: COCO crowd regions (never matched, never missed)
    difficult: np.ndarray  # (N,) bool: VOC difficult flag (ignored by evaluation)
    image_id: int  # id in the source annotations (COCO image id, or running index)
    areas: np.ndarray | None = None  # (N,) COCO `area` (segment area), which the official AP sizes use


@dataclass
class DatasetInfo:
    """What a reader knows beyond the records: class names and the source category ids."""

    class_names: list[str]  # index i holds label i+1
    cat_ids: list[int]  # source category id of label i+1 (COCO ids; 1..K for VOC)
    source: str  # file or folder that was read, for messages
    skipped: dict = field(default_factory=dict)  # what was dropped and why, with counts


class SkipCounter:
    """Counts dropped boxes/images per file so one warning line can name the worst files."""

    def __init__(self, what: str):
        self.what = what
        self.per_file: Counter = Counter()

    def add(self, file: str, n: int = 1) -> None:
        self.per_file[file] += n

    @property
    def total(self) -> int:
        return sum(self.per_file.values())

    def warn(self, source: str) -> None:
        if not self.total:
            return
        worst = ", ".join(f"{f} ({n})" for f, n in self.per_file.most_common(3))
        log.warning(
            "%s: dropped %d %s in %d files; worst: %s",
            source, self.total, self.what, len(self.per_file), worst,
        )


def clean_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to the image and say which survive (positive width and height)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep


def resolve_classes(
    found: Counter, wanted: list[str], ignore_unknown: bool, source: str
) -> list[str]:
    """Class list for a data set: the config's, else every class found (sorted).

    Classes in the annotations but not in the config are an error unless the config says
    to ignore them: silently dropping a class is the bug users find three days later.
    """
    if not wanted:
        return sorted(found)
    if len(set(wanted)) != len(wanted):
        dup = [c for c, n in Counter(wanted).items() if n > 1]
        raise ValueError(f"data.classes lists {dup} more than once")
    unknown = {c: n for c, n in found.items() if c not in wanted}
    if unknown and not ignore_unknown:
        listing = ", ".join(f"{c!r} ({n} boxes)" for c, n in sorted(unknown.items()))
        raise ValueError(
            f"{source}: classes not in data.classes: {listing}. "
            "Add them to data.classes, or set data.ignore_unknown_classes=true to drop those boxes."
        )
    return list(wanted)


def summarize(records: list[ImageRecord], info: DatasetInfo) -> str:
    n_boxes = sum(len(r.boxes) for r in records)
    negatives = sum(1 for r in records if len(r.boxes) == 0)
    return (
        f"{info.source}: {len(records)} images ({negatives} without boxes), {n_boxes} boxes, "
        f"{len(info.class_names)} classes"
    )
