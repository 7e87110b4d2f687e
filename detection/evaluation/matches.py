"""The per-detection matches of a COCO evaluation, kept so that AP can be recomputed on any
reweighting of the images (bootstrap intervals, paired comparisons) or read at any score cut
(operating points) in seconds, without matching boxes again.

`from_coco_eval` reads pycocotools' `evalImgs` (area "all", 100 detections an image) after
`evaluate()`; `coco_ap` then gives, with unit weights, exactly what its `accumulate()` and
`summarize()` give: AP, AP50, AP75 and per-class AP. With a (B, N) matrix of image weights it
gives B values of each at once (a bootstrap resample is a weight vector: how many times each
image was drawn).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101 recall thresholds


@dataclass
class ClassMatches:
    """One class's detections on the split, best score first, and its ground truth per image."""

    image: np.ndarray  # (D,) position 0..N-1 of each detection's image
    score: np.ndarray  # (D,)
    tp: np.ndarray  # (T, D) matched a ground-truth box at IoU threshold t (and not ignored)
    fp: np.ndarray  # (T, D) matched none (and not ignored: a match to a crowd box is neither)
    npos: np.ndarray  # (N,) ground-truth boxes that count (not crowd, not ignored), per image


@dataclass
class Matches:
    class_names: list[str]
    num_images: int
    iou: np.ndarray  # (T,) IoU thresholds, 0.5 .. 0.95
    per_class: list[ClassMatches]


def subset(m: Matches, images) -> Matches:
    """The matches of some of the images (positions into `m`'s), renumbered 0..len(images)-1: a
    split's subset scored without matching again (a detection's match is decided in its image)."""
    images = np.asarray(images)
    position = np.full(m.num_images, -1)
    position[images] = np.arange(len(images))
    out = []
    for cm in m.per_class:
        keep = position[cm.image] >= 0
        out.append(ClassMatches(position[cm.image[keep]], cm.score[keep], cm.tp[:, keep], cm.fp[:, keep],
                                cm.npos[images]))
    return Matches(m.class_names, len(images), m.iou, out)


def from_coco_eval(ev, class_names: list[str], area: str = "all") -> Matches | None:
    """The matches of a pycocotools COCOeval after `evaluate()`; None when the backend keeps no
    per-image results (then intervals and comparisons are not available). `area` "small" (or
    "medium", "large"): the matches pycocotools' AP_small is made of (ground truth of other
    sizes ignored, and the detections matching it or unmatched outside the size)."""
    evals = getattr(ev, "evalImgs", None)
    if not evals:
        return None
    p = ev.params
    n_img, n_area, t_count = len(p.imgIds), len(p.areaRng), len(p.iouThrs)
    a = list(p.areaRngLbl).index(area)
    max_det = p.maxDets[-1]
    per_class = []
    for k in range(len(p.catIds)):
        images, scores, tps, fps = [], [], [], []
        npos = np.zeros(n_img)
        for i in range(n_img):
            e = evals[k * n_area * n_img + a * n_img + i]
            if e is None:
                continue
            npos[i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            s = np.asarray(e["dtScores"][:max_det], np.float64)
            if not len(s):
                continue
            matched = np.asarray(e["dtMatches"])[:, :max_det] > 0
            ignored = np.asarray(e["dtIgnore"])[:, :max_det].astype(bool)
            images.append(np.full(len(s), i))
            scores.append(s)
            tps.append(matched & ~ignored)
            fps.append(~matched & ~ignored)
        if scores:
            s = np.concatenate(scores)
            order = np.argsort(-s, kind="mergesort")  # pycocotools' own order, ties by image
            cm = ClassMatches(np.concatenate(images)[order], s[order], np.concatenate(tps, 1)[:, order],
                              np.concatenate(fps, 1)[:, order], npos)
        else:
            cm = ClassMatches(np.zeros(0, int), np.zeros(0), np.zeros((t_count, 0), bool),
                              np.zeros((t_count, 0), bool), npos)
        per_class.append(cm)
    return Matches(list(class_names), n_img, np.asarray(p.iouThrs), per_class)


def class_ap(cm: ClassMatches, weights: np.ndarray) -> np.ndarray:
    """(B, T) interpolated AP of one class under B weightings of the images (NaN where the
    weighting leaves the class no ground truth, as pycocotools leaves it out)."""
    b_count, t_count = len(weights), cm.tp.shape[0]
    out = np.full((b_count, t_count), np.nan)
    npos = weights @ cm.npos
    if not len(cm.score):
        out[npos > 0] = 0.0
        return out
    w = weights[:, cm.image]  # (B, D)
    for t in range(t_count):
        tp = np.cumsum(w * cm.tp[t], axis=1)
        fp = np.cumsum(w * cm.fp[t], axis=1)
        precision = tp / (tp + fp + np.spacing(1))
        precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # the envelope
        for b in np.flatnonzero(npos > 0):
            at = np.searchsorted(tp[b] / npos[b], RECALL_POINTS, side="left")
            reached = at < tp.shape[1]
            out[b, t] = precision[b, at[reached]].sum() / len(RECALL_POINTS)
    return out


def coco_ap(m: Matches, weights: np.ndarray | None = None, chunk: int = 100) -> dict[str, np.ndarray]:
    """AP, AP50, AP75 (each (B,)) and per-class AP ((B, K)) under B image weightings; with no
    weights, one value each (B = 1): pycocotools' numbers."""
    weights = np.ones((1, m.num_images)) if weights is None else np.asarray(weights, np.float64)
    parts = []
    for start in range(0, len(weights), chunk):  # bounded memory: a chunk holds (chunk, D) arrays
        w = weights[start:start + chunk]
        parts.append(np.stack([class_ap(cm, w) for cm in m.per_class], axis=1))  # (b, K, T)
    ap = np.concatenate(parts)
    t50, t75 = int(np.argmin(abs(m.iou - 0.5))), int(np.argmin(abs(m.iou - 0.75)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of a resample that left no class at all
        return {"AP": np.nanmean(ap.mean(axis=2), axis=1), "AP50": np.nanmean(ap[:, :, t50], axis=1),
                "AP75": np.nanmean(ap[:, :, t75], axis=1), "per_class": ap.mean(axis=2)}
