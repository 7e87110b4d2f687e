"""Sliced inference (`--slice 640 --overlap 0.2`): small objects in large images.

A detector resizes a 4000-pixel aerial photo or microscope slide to its input size (a few
hundred pixels), and a 20-pixel object becomes 3. Sliced, the image is cut into overlapping
tiles of `size` pixels, each fed at the model's input size (so objects keep their scale or
grow), plus the whole image for the objects larger than a tile; the detections, mapped back
to the image, are merged: per class, a box is dropped when a higher-scoring one covers most of
it (intersection over the smaller box >= 0.6), which removes both the duplicates from the
overlaps and the parts of an object cut by a tile's edge. (SAHI does the same; its package
requires opencv-python, which clashes with the headless OpenCV installed here.)

The tile geometry and the merge live in `data/tiles.py`, which a tiled model's validation during
training shares; a model trained on tiles (`model.tile_size`) is sliced like this by default.
"""

from __future__ import annotations

import numpy as np

from ..data.tiles import MAX_TILES, MERGE_IOS, MIN_STEP, detect_merged, merge, step_of, tile_count, tiles
from ..errors import ConfigError

__all__ = ["MAX_TILES", "MERGE_IOS", "MIN_STEP", "check_slicing", "merge", "sliced_outputs", "step_of",
           "tile_count", "tiles"]


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


def sliced_outputs(predictor, image: np.ndarray, size: int, overlap: float, batch: int = 4, whole: bool = True):
    """(boxes in the image's pixels, scores, labels 1..K) of the tiles and, with `whole`, the whole
    image, merged. A model trained on tiles runs without the whole image: shrunk to the input, it
    would show the model objects far smaller than it learned (the mismatch tiles remove)."""
    h, w = image.shape[:2]
    windows = tiles(h, w, size, overlap)
    if len(windows) > 1 and whole:
        windows.append((0, 0, w, h))  # objects larger than a tile

    def detect(chunk):
        prepared = [predictor.preprocess(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in chunk]
        return [(np.asarray(b, np.float32).reshape(-1, 4) * back, s, lab)
                for (b, s, lab), (_, back) in zip(predictor.backend([t for t, _ in prepared]), prepared)]

    return detect_merged(windows, detect, batch)
