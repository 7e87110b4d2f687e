"""Tiles of a training image (issue 31's tiled training): a window of the training scale drawn to
contain an object most of the time and background sometimes, and the sample cut to it with the
box-safety rules every pipeline follows (`transforms.box_params`): boxes clipped to the window,
a box that keeps under MIN_VISIBLE of its area dropped, crowd flags kept with their boxes.

Why tiles: SAHI's paper found slicing at inference alone adds 5-7 AP on VisDrone and xView, and
fine-tuning on slices at the same scale brings it to 12.7-14.5: a model should meet objects at
the size it will see them. A tile is drawn from `random.Random`, seeded per image by the
sampler, so a resumed run cuts the same tiles (exact resume).

The recipe (not yet wired: `DetectionDataset` does not call this until the recipe chooses a
tile size from the fingerprint and the budget) decides when to tile and how large.
"""

from __future__ import annotations

import random

import numpy as np

MIN_VISIBLE = 0.3  # the share of a box's area a tile must keep for the box to stay (as box_params)
OBJECT_P = 0.8  # tiles drawn around an object; the rest anywhere, so background is seen too


def tile_window(height: int, width: int, boxes: np.ndarray, tile: int, rng: random.Random,
                object_p: float = OBJECT_P) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a `tile` x `tile` window inside a `height` x `width` image (the whole
    side where the image is smaller). With probability `object_p`, and when there are boxes, the
    window holds the centre of a box chosen uniformly; else it is placed uniformly."""
    tw, th = min(tile, width), min(tile, height)
    if len(boxes) and rng.random() < object_p:
        x0b, y0b, x1b, y1b = (float(v) for v in boxes[rng.randrange(len(boxes))])
        cx, cy = (x0b + x1b) / 2, (y0b + y1b) / 2
        # every window position that keeps the centre inside, clamped to the image
        x_lo, x_hi = max(0, int(np.ceil(cx - tw))), min(width - tw, int(np.floor(cx)))
        y_lo, y_hi = max(0, int(np.ceil(cy - th))), min(height - th, int(np.floor(cy)))
        x0 = rng.randint(x_lo, max(x_lo, x_hi))
        y0 = rng.randint(y_lo, max(y_lo, y_hi))
    else:
        x0, y0 = rng.randint(0, width - tw), rng.randint(0, height - th)
    return x0, y0, x0 + tw, y0 + th


def crop_to_tile(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, iscrowd: np.ndarray,
                 window: tuple[int, int, int, int], min_visible: float = MIN_VISIBLE) -> tuple:
    """(pixels, boxes, labels, crowd flags) of the window: boxes shifted into it and clipped to
    it; those keeping under `min_visible` of their area (or under a pixel a side) dropped."""
    x0, y0, x1, y1 = window
    out = image[y0:y1, x0:x1]
    if not len(boxes):
        return out, boxes.reshape(-1, 4).astype(np.float32), labels, iscrowd
    clipped = np.stack([np.clip(boxes[:, 0], x0, x1), np.clip(boxes[:, 1], y0, y1),
                        np.clip(boxes[:, 2], x0, x1), np.clip(boxes[:, 3], y0, y1)], axis=1)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = (cw >= 1) & (ch >= 1) & (cw * ch >= min_visible * np.maximum(area, 1e-9))
    shifted = (clipped[keep] - np.array([x0, y0, x0, y0], np.float32)).astype(np.float32)
    return out, shifted, labels[keep], iscrowd[keep]
