"""Pascal VOC average precision, following the official devkit's rules.

Per class, detections of all images are ranked by score; each is matched to the
ground-truth box of highest IoU, which must be strictly above the threshold. A match to a `difficult` box
counts as neither true nor false positive; a second detection of a box is a false
positive. Boxes are 0-based continuous xyxy (VOC's 1-based inclusive pixels shifted by
one on x1/y1), so areas need no devkit "+1".
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import ops


def average_precision(recall: np.ndarray, precision: np.ndarray, method: str = "voc07") -> float:
    """voc07: mean of max precision at recall 0, 0.1, ..., 1. voc12: area under the envelope."""
    if method == "voc07":
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):  # the devkit's thresholds, float quirks included
            p = precision[recall >= t]
            ap += (p.max() if p.size else 0.0) / 11
        return float(ap)
    if method == "voc12":
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
        i = np.where(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    raise ValueError(f"eval.voc_metric must be voc07 or voc12, got {method!r}")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes (torchvision.ops.box_iou, in float64; 0 where both are empty)."""
    iou = ops.box_iou(torch.from_numpy(np.asarray(a, np.float64).reshape(-1, 4)),
                      torch.from_numpy(np.asarray(b, np.float64).reshape(-1, 4)))
    return torch.nan_to_num(iou, nan=0.0).numpy()


def voc_class_ap(
    gts: dict[int, tuple[np.ndarray, np.ndarray]],
    dets: list[tuple[int, float, np.ndarray]],
    iou_thresh: float = 0.5,
    method: str = "voc07",
) -> tuple[float, int]:
    """AP of one class and its number of non-difficult boxes (AP is nan when it has none).

    gts: image -> (boxes (N, 4), difficult (N,)); dets: (image, score, box).
    """
    npos = int(sum((~d).sum() for _, d in gts.values()))
    if npos == 0:
        return float("nan"), 0
    dets = sorted(dets, key=lambda d: -d[1])
    used = {img: np.zeros(len(b), bool) for img, (b, _) in gts.items()}
    tp = np.zeros(len(dets))
    fp = np.zeros(len(dets))
    ious_of = _ious_per_detection(gts, dets)
    for i, (img, _, _box) in enumerate(dets):
        if img not in gts or len(gts[img][0]) == 0:
            fp[i] = 1
            continue
        difficult = gts[img][1]
        ious = ious_of[i]
        j = int(ious.argmax())
        if ious[j] <= iou_thresh:  # the devkit needs IoU strictly above the threshold
            fp[i] = 1
        elif difficult[j]:
            continue  # neither
        elif not used[img][j]:
            tp[i] = 1
            used[img][j] = True
        else:
            fp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return average_precision(recall, precision, method), npos


def _ious_per_detection(gts: dict, dets: list) -> list:
    """For each detection, its IoU with every ground-truth box of its image (one matrix per image)."""
    by_image: dict = {}
    for i, (img, _, box) in enumerate(dets):
        by_image.setdefault(img, []).append((i, box))
    out = [None] * len(dets)
    for img, items in by_image.items():
        if img not in gts or len(gts[img][0]) == 0:
            continue
        m = box_iou(np.array([b for _, b in items], np.float64), gts[img][0])
        for row, (i, _) in zip(m, items):
            out[i] = row
    return out
