"""A training set's fingerprint: the few numbers a recipe is chosen from (issue 31), in the
spirit of nnU-Net's and nnDetection's data-set fingerprints. Image sizes, box sizes at native
scale, boxes per image (crowding), class shares and the image count, all from the records the
data check and the start-up summary already read; and whether the images are grey (infrared,
X-ray, scanned boards: far from ImageNet's colour photos), from a fixed sample of GREY_SAMPLE
images decoded small (a fraction of a second, never a pass over the set).

Printed at the start of a new run, written to `<run>/fingerprint.json`, shown by
`data_check.py`. Sizes are in the images' own pixels: the recipe scales them to a candidate
input itself, which is the point (the fingerprint must not depend on the input it chooses).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import writing
from .images import ImageReadError, read_record_image
from .records import ImageRecord

PERCENTILES = (5, 25, 50, 75, 95)
RARE_SHARE = 0.01  # a class under this share of the boxes is named as rare
GREY_SAMPLE = 32  # images read, evenly spaced through the training list, to tell grey from colour
# An image is grey when 99% of its pixels have their three channels within GREY_SPREAD levels of
# each other: a single-channel file, or a grey one saved as RGB (JPEG's chroma rounding moves a
# grey pixel's channels by a few levels; a colour photo spreads them by tens, BCCD's by 70 or more).
GREY_SPREAD = 10


@dataclass(frozen=True)
class Fingerprint:
    """What a recipe reads about a training set (sizes in native pixels)."""

    images: int
    negatives: int  # images without a box
    boxes: int
    image_long: dict  # percentile -> the longer image side
    image_short: dict  # percentile -> the shorter image side
    box_side: dict  # percentile -> sqrt(w * h) of a box (its scale, as anchors count it)
    box_short: dict  # percentile -> the shorter side of a box
    box_long_ratio: dict  # percentile -> box side / the image's longer side (the scale an input size keeps)
    boxes_per_image: dict  # median, p95, max over images with boxes
    class_shares: dict  # class name -> share of the boxes, largest first
    grey_images: int = 0  # of the sampled images, those that are grey
    sampled_images: int = 0  # images sampled for grey_images (those that decoded)

    @property
    def grey_share(self) -> float:
        """The share of the sampled images that are grey (0 when none could be read)."""
        return self.grey_images / self.sampled_images if self.sampled_images else 0.0

    @property
    def rare_classes(self) -> list[str]:
        return [c for c, s in self.class_shares.items() if s < RARE_SHARE]

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The start-up and data-check lines: what a recipe will read, in a few lines."""
        if not self.boxes:
            return [f"fingerprint: {self.images} images, no boxes"]
        p = self.box_side
        classes = ", ".join(f"{c} {s:.0%}" for c, s in list(self.class_shares.items())[:6])
        more = f", +{len(self.class_shares) - 6} more" if len(self.class_shares) > 6 else ""
        rare = f"; rare (under {RARE_SHARE:.0%}): {', '.join(self.rare_classes[:6])}" if self.rare_classes else ""
        b = self.boxes_per_image
        return [f"fingerprint: {self.images} images ({self.negatives} without boxes), {self.boxes} boxes; images "
                f"{self.image_short[50]:.0f} x {self.image_long[50]:.0f} px (median short x long side)",
                f"  box scale sqrt(w*h) at native size: p5 {p[5]:.1f}, p25 {p[25]:.1f}, median {p[50]:.1f}, "
                f"p95 {p[95]:.1f} px; boxes an image: median {b['median']:g}, p95 {b['p95']:g}, max {b['max']}",
                f"  classes: {classes}{more}{rare}; grey images: {self.grey_images} of {self.sampled_images} "
                f"sampled"]

    def write(self, path: Path) -> None:
        with writing(path):
            Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")


def _percentiles(values: np.ndarray) -> dict:
    if not len(values):
        return {q: math.nan for q in PERCENTILES}
    return {q: round(float(v), 3) for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))}


def is_grey(image: np.ndarray) -> bool:
    """Whether an HxWx3 image's channels agree (within GREY_SPREAD) on 99% of its pixels."""
    spread = image.max(axis=2).astype(np.int16) - image.min(axis=2)
    return bool(np.percentile(spread, 99) <= GREY_SPREAD)


def count_grey(records: list[ImageRecord]) -> tuple[int, int]:
    """(grey, read) over GREY_SAMPLE records evenly spaced through `records`, each decoded at an
    eighth of its size when it is a JPEG (colour survives any scale). A file that does not decode
    is left out of both counts: the data check names it, the fingerprint only samples."""
    picks = sorted({int(i) for i in np.linspace(0, len(records) - 1, min(GREY_SAMPLE, len(records)))})
    grey = read = 0
    for i in picks:
        try:
            image = read_record_image(records[i], reduce=8)
        except ImageReadError:
            continue
        read += 1
        grey += is_grey(image)
    return grey, read


def fingerprint(records: list[ImageRecord], class_names: list[str]) -> Fingerprint:
    """The fingerprint of `records` (a training side, labels 1..K naming `class_names`)."""
    longs = np.array([max(r.width, r.height) for r in records], dtype=float)
    shorts = np.array([min(r.width, r.height) for r in records], dtype=float)
    with_boxes = [r for r in records if len(r.boxes)]
    if with_boxes:
        wh = np.concatenate([r.boxes[:, 2:4] - r.boxes[:, 0:2] for r in with_boxes]).astype(float)
        image_long = np.concatenate([np.full(len(r.boxes), max(r.width, r.height), float) for r in with_boxes])
        labels = np.concatenate([r.labels for r in with_boxes]).astype(int)
    else:
        wh, image_long, labels = np.zeros((0, 2)), np.zeros(0), np.zeros(0, int)
    side = np.sqrt(np.clip(wh[:, 0], 0, None) * np.clip(wh[:, 1], 0, None))
    per_image = np.array([len(r.boxes) for r in with_boxes])
    grey, read = count_grey(records)
    counts = np.bincount(labels - 1, minlength=len(class_names)) if len(labels) else np.zeros(len(class_names), int)
    shares = {class_names[i]: round(float(counts[i] / max(1, counts.sum())), 5)
              for i in np.argsort(-counts, kind="stable")}
    return Fingerprint(
        images=len(records), negatives=len(records) - len(with_boxes), boxes=int(len(side)),
        image_long=_percentiles(longs), image_short=_percentiles(shorts), box_side=_percentiles(side),
        box_short=_percentiles(wh.min(axis=1) if len(wh) else np.zeros(0)),
        box_long_ratio=_percentiles(side / np.maximum(image_long, 1)),
        boxes_per_image={"median": float(np.median(per_image)) if len(per_image) else 0.0,
                         "p95": round(float(np.percentile(per_image, 95)), 3) if len(per_image) else 0.0,
                         "max": int(per_image.max()) if len(per_image) else 0},
        class_shares=shares, grey_images=grey, sampled_images=read)
