"""Anchors fitted to the training boxes, for `model.anchors: auto`.

The MobileNetV2 detectors' default anchors (32 to 362 px, ratios 0.5 / 1 / 2) are COCO's
guess. A data set of 20-px platelets and 100-px cells is better served by anchors at the
sizes and shapes it has: sizes at evenly spaced quantiles of the boxes' scale (the square
root of their area at the model's input), one group per feature level, smallest first;
aspect ratios (height / width) at the quantiles of theirs. The result is pinned in the
run's config, so a checkpoint rebuilds the same anchors.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

FITTED_ARCHS = {"fasterrcnn_mobilenet_v2_fpn": (4, 2), "retinanet_mobilenet_v2_fpn": (5, 3)}  # (levels, sizes a level)


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


def check_fittable(arch: str) -> tuple[int, int]:
    if arch not in FITTED_ARCHS:
        raise ConfigError(f"model.anchors=auto is for {', '.join(FITTED_ARCHS)}; {arch} keeps its own anchors "
                          "(set model.anchors=default)")
    return FITTED_ARCHS[arch]


def fitted_config(cfg: dict, records) -> dict:
    """`cfg` with model.anchor_sizes / aspect_ratios fitted to the training records' boxes."""
    from ..data.doctor import box_stats

    m = cfg["model"]
    levels, per_level = check_fittable(m["arch"])
    stats = box_stats(records, m["min_size"], m["max_size"])
    sizes, ratios = fit_anchors(stats["w"], stats["h"], levels, per_level)
    return {**cfg, "model": {**m, "anchor_sizes": sizes, "aspect_ratios": ratios}}
