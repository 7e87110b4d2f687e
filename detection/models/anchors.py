"""Anchors and input size fitted to the training boxes: `model.anchors: auto`, `model.auto_size`.

The MobileNetV2 detectors' default anchors (32 to 362 px, ratios 0.5 / 1 / 2) are COCO's
guess. A data set of 20-px platelets and 100-px cells is better served by anchors at the
sizes and shapes it has: sizes at evenly spaced quantiles of the boxes' scale (the square
root of their area at the model's input), one group per feature level, smallest first;
aspect ratios (height / width) at the quantiles of theirs. The result is pinned in the
run's config, so a checkpoint rebuilds the same anchors.

The input size: the fewer pixels, the more iterations a time budget holds, as long as the
small objects stay detectable. `model.auto_size` shrinks the configured size (never grows it)
until the 5th percentile of the boxes' shorter sides reaches the smallest anchor (32 px in
every Faster R-CNN and RetinaNet here: four times the finest FPN stride of 8, or more).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

SMALLEST_ANCHOR = 32  # px: the first anchor size of every Faster R-CNN and RetinaNet in builders.ARCHS
FITTED_ARCHS = {"fasterrcnn_mobilenet_v2_fpn": (4, 2), "retinanet_mobilenet_v2_fpn": (5, 3)}  # (levels, sizes a level)


def smallest_anchor(m: dict) -> int:
    """The model section's first default anchor: 16 px with `model.stride4_level`'s /4 level."""
    return SMALLEST_ANCHOR // 2 if m.get("stride4_level") else SMALLEST_ANCHOR


def fit_anchors(widths: np.ndarray, heights: np.ndarray, levels: int, per_level: int,
                n_ratios: int = 3) -> tuple[list[list[int]], list[float]]:
    """(sizes per level, aspect ratios) for boxes of these widths and heights (pixels at the input)."""
    w = np.asarray(widths, np.float64)
    h = np.asarray(heights, np.float64)
    keep = (w > 0) & (h > 0)
    w, h = w[keep], h[keep]
    if len(w) < levels * per_level:
        raise ConfigError(f"model.anchors=auto needs at least {levels * per_level} training boxes, found {len(w)}")
    scale = np.sqrt(w * h)
    n = levels * per_level
    q = (np.arange(n) + 0.5) / n
    sizes = np.exp(np.quantile(np.log(scale), q))
    sizes = np.maximum.accumulate(np.maximum(np.round(sizes), 4))  # whole pixels, never shrinking
    for i in range(1, n):  # distinct sizes: two anchors of one size would only duplicate each other
        sizes[i] = max(sizes[i], sizes[i - 1] + 1)
    grouped = [[int(v) for v in sizes[i * per_level:(i + 1) * per_level]] for i in range(levels)]
    ratios = np.exp(np.quantile(np.log(h / w), (np.arange(n_ratios) + 0.5) / n_ratios))
    return grouped, [round(float(r), 3) for r in ratios]


def check_fittable(arch: str, stride4_level: bool = False) -> tuple[int, int]:
    """(anchor levels, sizes a level) of `arch`; `model.stride4_level` adds a level."""
    if arch not in FITTED_ARCHS:
        raise ConfigError(f"model.anchors=auto is for {', '.join(FITTED_ARCHS)}; {arch} keeps its own anchors "
                          "(set model.anchors=default)")
    levels, per_level = FITTED_ARCHS[arch]
    return levels + int(stride4_level), per_level


def fitted_anchors(mcfg: dict, widths: np.ndarray, heights: np.ndarray) -> tuple[list[list[int]], list[float]]:
    """model.anchors=auto for the model section `mcfg`: (anchor_sizes, aspect_ratios) for the
    training boxes' widths and heights at the model's input."""
    levels, per_level = check_fittable(mcfg["arch"], mcfg["stride4_level"])
    return fit_anchors(widths, heights, levels, per_level)


def auto_size(short_sides: np.ndarray, min_size: int, max_size: int, smallest_anchor: int = SMALLEST_ANCHOR,
              quantile: float = 0.05, floor: int = 256) -> tuple[int, int]:
    """(min_size, max_size) for boxes whose shorter sides at (min_size, max_size) are `short_sides`:
    the smallest multiple of 32 (not below `floor`) at which their `quantile` reaches the smallest
    anchor, at most the configured size; max_size keeps the configured ratio."""
    sides = np.asarray(short_sides, np.float64)
    sides = sides[sides > 0]
    if not len(sides):
        return min_size, max_size
    scale = min(1.0, smallest_anchor / float(np.quantile(sides, quantile)))
    size = min(min_size, max(floor, math.ceil(min_size * scale / 32) * 32))
    return size, max(size, round(max_size * size / min_size))


def check_sizable(arch: str) -> None:
    if not arch.startswith(("fasterrcnn_", "retinanet_")):
        raise ConfigError(f"model.auto_size is for the Faster R-CNN and RetinaNet archs (anchors from "
                          f"{SMALLEST_ANCHOR} px); {arch} keeps model.min_size (set model.auto_size=false)")


def sized_input(mcfg: dict, short_sides: np.ndarray, min_size: int, max_size: int) -> tuple[int, int, str]:
    """model.auto_size for the model section `mcfg`: (min_size, max_size, a line for the log) for
    boxes whose shorter sides at the configured (min_size, max_size) are `short_sides`."""
    check_sizable(mcfg["arch"])
    short = np.asarray(short_sides, np.float64)
    size, new_max = auto_size(short, min_size, max_size, smallest_anchor(mcfg))
    q = float(np.quantile(short[short > 0], 0.05)) if (short > 0).any() else 0.0
    change = (f"min_size {min_size} -> {size}, max_size {max_size} -> {new_max}"
              if size != min_size else f"keeps min_size {size}, max_size {new_max}")
    why = (f"model.auto_size: {change} (5% of the {len(short)} training boxes are under {q:.0f} px on their "
           f"shorter side at {min_size}, {q * size / min_size:.0f} px at {size}; the smallest anchor is "
           f"{smallest_anchor(mcfg)} px)")
    return size, new_max, why
