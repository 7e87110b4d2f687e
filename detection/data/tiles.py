"""Tiles of a training image (issue 31's tiled training): a window of the training scale drawn to
contain an object most of the time and background sometimes, and the sample cut to it with the
box-safety rules every pipeline follows (`transforms.box_params`): boxes clipped to the window,
a box that keeps under MIN_VISIBLE of its area dropped, crowd flags kept with their boxes.

Why tiles: SAHI's paper found slicing at inference alone adds 5-7 AP on VisDrone and xView, and
fine-tuning on slices at the same scale brings it to 12.7-14.5: a model should meet objects at
the size it will see them. A tile is drawn from `random.Random`, seeded per image by the
sampler, so a resumed run cuts the same tiles (exact resume).

`model.tile_size` (chosen by the recipe, `training/recipe.py`) turns it on: the training dataset
cuts a tile of that many native pixels from each image and the detector's transform scales it to
min_size = max_size. The same module holds the tiles that cover an image and their merge, used
by sliced inference and by a tiled model's validation, so training, evaluation and inference
cut images alike.
"""

from __future__ import annotations

import random

import numpy as np

from ..errors import DataError

MIN_VISIBLE = 0.3  # the share of a box's area a tile must keep for the box to stay (as box_params)
OBJECT_P = 0.8  # tiles drawn around an object; the rest anywhere, so background is seen too


# --- the tiles that cover an image (sliced inference and a tiled model's validation) ----------

MERGE_IOS = 0.6  # intersection over the smaller box above which the lower-scoring box goes
MIN_STEP = 8  # pixels between neighbouring tiles: 32-px tiles at overlap 0.99 step 1 px, 370,000 tiles at 640 px
MAX_TILES = 2048  # per image: a 20,000-px aerial photo in 640-px tiles at overlap 0.2 makes 1,600
OVERLAP = 0.2  # a tiled model's slices overlap by this (at validation, and at inference unless --overlap)


def step_of(size: int, overlap: float) -> int:
    return max(1, int(size * (1 - overlap)))


def tile_count(height: int, width: int, size: int, overlap: float) -> int:
    return len(_starts(height, size, overlap)) * len(_starts(width, size, overlap))


def _starts(n: int, size: int, overlap: float) -> list[int]:
    if n <= size:
        return [0]
    out = list(range(0, n - size + 1, step_of(size, overlap)))
    return out + [n - size] if out[-1] != n - size else out


def tiles(height: int, width: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of tiles of `size` covering the image, neighbours overlapping by `overlap`;
    an image that would need more than MAX_TILES is one line, before any tile is run."""
    n = tile_count(height, width, size, overlap)
    if n > MAX_TILES:
        raise DataError(f"--slice {size} --overlap {overlap:g}: a {width}x{height} image would make {n:,} tiles "
                        f"(at most {MAX_TILES:,}); give larger tiles or a lower --overlap")
    return [(x, y, min(x + size, width), min(y + size, height)) for y in _starts(height, size, overlap)
            for x in _starts(width, size, overlap)]


def merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, ios: float = MERGE_IOS) -> np.ndarray:
    """Indices kept, best first: per class, greedy, a box covered (intersection over the smaller
    box >= `ios`) by a better one of its class is dropped."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    for c in np.unique(labels):
        idx = order[labels[order] == c]
        alive = np.ones(len(idx), bool)
        for a in range(len(idx)):
            if not alive[a]:
                continue
            keep.append(idx[a])
            rest = idx[a + 1:][alive[a + 1:]]
            if not len(rest):
                continue
            lt = np.maximum(boxes[idx[a], :2], boxes[rest, :2])
            rb = np.minimum(boxes[idx[a], 2:], boxes[rest, 2:])
            inter = (rb - lt).clip(0).prod(1)
            covered = inter / np.maximum(np.minimum(area[idx[a]], area[rest]), 1e-9) >= ios
            alive[a + 1:][np.flatnonzero(alive[a + 1:])[covered]] = False
    keep = np.array(keep, int)
    return keep[np.argsort(-scores[keep], kind="stable")] if len(keep) else keep


def detect_merged(windows: list[tuple[int, int, int, int]], detect, batch: int = 4):
    """(boxes, scores, labels) of `detect` over `windows` (x0, y0, x1, y1) of one image, each
    window's boxes moved into the image's pixels and all of them merged: the one sliced pass that
    sliced inference (numpy images) and a tiled model's validation (tensors) share. `detect`
    takes up to `batch` windows and returns, for each, (boxes in the window's pixels, scores,
    labels) as arrays."""
    parts = []
    for start in range(0, len(windows), batch):
        chunk = windows[start:start + batch]
        for (x0, y0, _, _), (b, s, lab) in zip(chunk, detect(chunk)):
            parts.append((np.asarray(b, np.float32).reshape(-1, 4) + np.array([x0, y0, x0, y0], np.float32),
                          np.asarray(s, np.float32).reshape(-1), np.asarray(lab, np.int64).reshape(-1)))
    boxes, scores, labels = (np.concatenate(p) for p in zip(*parts))
    keep = merge(boxes, scores, labels)
    return boxes[keep], scores[keep], labels[keep]


# --- a training tile ---------------------------------------------------------------------------


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
