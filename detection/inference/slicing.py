"""Sliced inference (`--slice 640 --overlap 0.2`): small objects in large images.

A detector resizes a 4000-pixel aerial photo or microscope slide to its input size (a few
hundred pixels), and a 20-pixel object becomes 3. Sliced, the image is cut into overlapping
tiles of `size` pixels, each fed at the model's input size (so objects keep their scale or
grow), plus the whole image for the objects larger than a tile; the detections, mapped back
to the image, are merged: per class, a box is dropped when a higher-scoring one covers most of
it (intersection over the smaller box >= 0.6), which removes both the duplicates from the
overlaps and the parts of an object cut by a tile's edge. (SAHI does the same; its package
requires opencv-python, which clashes with the headless OpenCV installed here.)
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError

MERGE_IOS = 0.6  # intersection over the smaller box above which the lower-scoring box goes
MIN_STEP = 8  # pixels between neighbouring tiles: 32-px tiles at overlap 0.99 step 1 px, 370,000 tiles at 640 px
MAX_TILES = 2048  # per image: a 20,000-px aerial photo in 640-px tiles at overlap 0.2 makes 1,600


def step_of(size: int, overlap: float) -> int:
    return max(1, int(size * (1 - overlap)))


def tile_count(height: int, width: int, size: int, overlap: float) -> int:
    return len(_starts(height, size, overlap)) * len(_starts(width, size, overlap))


def check_slicing(size: int, overlap: float) -> None:
    """Refuse, before any image, settings that cannot be right: a tile under 32 px, an overlap
    outside [0, 1), or one so close to 1 that neighbouring tiles step under MIN_STEP pixels."""
    if size < 32 or not 0 <= overlap < 1:
        raise ConfigError(f"slicing needs a tile of at least 32 pixels and an overlap in [0, 1), got {size} "
                          f"and {overlap}")
    if step_of(size, overlap) < MIN_STEP:
        raise ConfigError(f"--slice {size} --overlap {overlap:g}: neighbouring tiles would be "
                          f"{step_of(size, overlap)} px apart, {tile_count(640, 640, size, overlap):,} tiles for a "
                          f"640-px image; keep the step at {MIN_STEP} px or more (a lower --overlap, e.g. 0.2)")


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


def sliced_outputs(predictor, image: np.ndarray, size: int, overlap: float, batch: int = 4):
    """(boxes in the image's pixels, scores, labels 1..K) of the tiles and the whole image, merged."""
    h, w = image.shape[:2]
    crops = [(x0, y0, image[y0:y1, x0:x1]) for x0, y0, x1, y1 in tiles(h, w, size, overlap)]
    if len(crops) > 1:
        crops.append((0, 0, image))  # objects larger than a tile
    boxes, scores, labels = [], [], []
    for start in range(0, len(crops), batch):
        chunk = crops[start:start + batch]
        prepared = [predictor.preprocess(c) for _, _, c in chunk]
        for (x0, y0, _), (b, s, lab), (_, back) in zip(chunk, predictor.backend([t for t, _ in prepared]), prepared):
            boxes.append(np.asarray(b, np.float32).reshape(-1, 4) * back + np.array([x0, y0, x0, y0], np.float32))
            scores.append(np.asarray(s, np.float32).reshape(-1))
            labels.append(np.asarray(lab, np.int64).reshape(-1))
    boxes, scores, labels = np.concatenate(boxes), np.concatenate(scores), np.concatenate(labels)
    keep = merge(boxes, scores, labels)
    return boxes[keep], scores[keep], labels[keep]
