"""Mosaic and mixup (`data.augment: heavy`): one training image made from several.

A small data set shows each object in few contexts. Mosaic (YOLOv4) tiles four images, so a
batch holds more objects, scales and backgrounds; mixup blends two. Both run in the loader
workers on pixels at the training size: mosaic before the per-image augmentation, mixup
after it. The partners and every draw follow the item's augmentation seed, so a resumed run
sees the same images. Boxes keep the box safety of transforms.box_params().
"""

from __future__ import annotations

import random

import albumentations as A
import cv2
import numpy as np

from .transforms import box_params

MOSAIC_P, MIXUP_P = 0.5, 0.1  # of the training items, under data.augment=heavy
FILL = 114  # the grey of the padding, as the affine zoom's

Sample = tuple  # (HxWx3 uint8 image, Nx4 float32 xyxy boxes, N int64 labels, N bool iscrowd)


def mosaic(primary: Sample, partners: list[Sample], seed: int) -> Sample:
    """Four images on a 2x2 grid of cells the primary's size, cut to the primary's size around
    a random centre: objects keep their scale, those cut to < 30% are dropped."""
    h, w = primary[0].shape[:2]
    tf = A.Compose([A.Mosaic(grid_yx=(2, 2), target_size=(h, w), cell_shape=(h, w), fit_mode="contain",
                             fill=FILL, p=1.0)], bbox_params=box_params(), seed=seed)
    meta = [{"image": im, "bboxes": b, "labels": lab, "iscrowd": c} for im, b, lab, c in partners]
    out = tf(image=primary[0], bboxes=primary[1], labels=primary[2], iscrowd=primary[3], mosaic_metadata=meta)
    return (out["image"], np.asarray(out["bboxes"], np.float32).reshape(-1, 4),
            np.asarray(out["labels"], np.int64), np.asarray(out["iscrowd"], bool))


def mixup(a: Sample, b: Sample, rng: random.Random) -> Sample:
    """`a` blended with `b` at a weight near 0.5 (Beta(32, 32), as YOLOv5); `b` is fitted into
    `a`'s canvas at its own aspect ratio, and the boxes of both are kept."""
    lam = rng.betavariate(32.0, 32.0)
    h, w = a[0].shape[:2]
    bh, bw = b[0].shape[:2]
    s = min(h / bh, w / bw)
    nh, nw = max(1, round(bh * s)), max(1, round(bw * s))
    canvas = np.full_like(a[0], FILL)
    canvas[:nh, :nw] = cv2.resize(b[0], (nw, nh), interpolation=cv2.INTER_LINEAR)
    image = (a[0].astype(np.float32) * lam + canvas.astype(np.float32) * (1.0 - lam)).round().astype(np.uint8)
    boxes = b[1].reshape(-1, 4) * np.array([nw / bw, nh / bh, nw / bw, nh / bh], np.float32)
    boxes = np.minimum(boxes, np.array([nw, nh, nw, nh], np.float32))
    keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
    return (image, np.concatenate([a[1].reshape(-1, 4), boxes[keep]]).astype(np.float32),
            np.concatenate([a[2], b[2][keep]]).astype(np.int64), np.concatenate([a[3], b[3][keep]]).astype(bool))
