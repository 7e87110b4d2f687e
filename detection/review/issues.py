"""Likely annotation mistakes, ranked: what a model that disagrees with the labels points at.

Four kinds, each with a score in [0, 1] where lower means more likely a mistake:
- missing: a confident detection where no box is labelled (cleanlab's overlooked score),
- wrong_class: a labelled box a confident detection of another class covers (swap score),
- bad_box: a labelled box a detection of its class overlaps but does not fit (badloc score),
- spurious: a labelled box no detection of any class comes near (its best IoU with one).
Crowd regions and VOC `difficult` boxes are never reported, and neither is a detection on one.
The ranking takes the kinds in turn (`interleave`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..evaluation.voc_ap import box_iou

KINDS = ("missing", "wrong_class", "bad_box", "spurious")
NEAR_SCORE = 0.1  # detections below this are background to the model: they vouch for no box
SPURIOUS_IOU = 0.1  # a labelled box whose best IoU with a detection is below this is spurious
REPORT_BELOW = 0.5  # issues scoring at or above this are not written


@dataclass
class Issue:
    image: int  # index into the records
    kind: str
    label: int  # the class (1..K) of the labelled box, or of the detection for `missing`
    box: tuple  # x1, y1, x2, y2 in the image's pixels
    score: float  # lower: more likely a mistake
    suggested_label: int = 0  # wrong_class: the class the detection says; else the same as label
    suggested_box: tuple | None = None  # bad_box: the detection's box


def cleanlab_rank():
    try:
        from cleanlab.object_detection import rank
    except ImportError:
        raise ConfigError("the label review needs cleanlab: pip install 'detection[review]' (or pip install "
                          "cleanlab)") from None
    return rank


def _inputs(records, predictions, num_classes: int):
    """cleanlab's labels (0-based, ignore regions left out) and per-class prediction arrays."""
    labels, preds, kept = [], [], []
    for r, (boxes, scores, cls) in zip(records, predictions):
        keep = ~(r.iscrowd | r.difficult)
        kept.append(np.flatnonzero(keep))
        labels.append({"bboxes": r.boxes[keep].astype(np.float32).reshape(-1, 4),
                       "labels": (r.labels[keep] - 1).astype(np.int64)})
        per_class = np.empty(num_classes, dtype=object)
        for k in range(num_classes):
            m = cls == k + 1
            per_class[k] = np.concatenate([boxes[m], scores[m, None]], 1).astype(np.float32).reshape(-1, 5)
        preds.append(per_class)
    return labels, preds, kept


def find_issues(records, predictions, num_classes: int, confident: float = 0.7) -> list[Issue]:
    """Issues of every kind, most likely first. `predictions[i]`: (boxes Nx4, scores N, labels
    N in 1..K) of image i, every detection the model returns; `confident`: the score from which
    a detection counts as the model being sure (cleanlab's high_probability_threshold)."""
    rank = cleanlab_rank()
    labels, preds, kept = _inputs(records, predictions, num_classes)
    kw = {"labels": labels, "predictions": preds}
    overlooked = rank.compute_overlooked_box_scores(**kw, high_probability_threshold=confident)
    swap = rank.compute_swap_box_scores(**kw, high_probability_threshold=confident)
    badloc = rank.compute_badloc_box_scores(**kw)
    issues: list[Issue] = []
    for i, r in enumerate(records):
        boxes, scores, cls = predictions[i]
        issues += _missing(i, r, preds[i], overlooked[i])
        issues += _on_labels(i, r, kept[i], swap[i], badloc[i], boxes, scores, cls)
    return interleave([x for x in issues if x.score < REPORT_BELOW])


def interleave(items: list, issue=lambda item: item) -> list:
    """Most likely first, taking the kinds in turn: the k-th issue of each kind (by its score)
    before the (k+1)-th of any. The four scores are on different scales (on BCCD, whose labels
    miss many cells, the missing scores near 0 would bury every wrong class), so a person
    reviewing from the top sees every kind early. `issue(item)` is the Issue of an item."""
    by_kind: dict[str, list] = {}
    for item in sorted(items, key=lambda t: issue(t).score):
        by_kind.setdefault(issue(item).kind, []).append(item)
    place = {id(item): k for group in by_kind.values() for k, item in enumerate(group)}
    return sorted(items, key=lambda t: (place[id(t)], issue(t).score))


def _missing(i: int, r, per_class, scores: np.ndarray) -> list[Issue]:
    """Confident detections with no labelled box (cleanlab flattens them in class order)."""
    flat = [(k + 1, row) for k in range(len(per_class)) for row in per_class[k]]
    ignore = r.boxes[r.iscrowd | r.difficult]
    out = []
    for (label, row), s in zip(flat, scores):
        if not np.isfinite(s):
            continue
        if len(ignore) and box_iou(row[None, :4], ignore).max() > 0.3:
            continue  # on a crowd region or a difficult box: not a missing label
        out.append(Issue(i, "missing", label, tuple(float(v) for v in row[:4]), float(s), label))
    return out


def _on_labels(i, r, kept, swap, badloc, boxes, scores, cls) -> list[Issue]:
    """wrong_class, bad_box and spurious, for each labelled box (one kind each: the likeliest)."""
    near = scores >= NEAR_SCORE
    ious = box_iou(r.boxes[kept].astype(np.float32), boxes[near].astype(np.float32))
    out = []
    for j, idx in enumerate(kept):
        box, label = tuple(float(v) for v in r.boxes[idx]), int(r.labels[idx])
        best_iou = float(ious[j].max()) if ious.shape[1] else 0.0
        if best_iou < SPURIOUS_IOU:
            out.append(Issue(i, "spurious", label, box, best_iou / SPURIOUS_IOU * REPORT_BELOW, label))
            continue
        others = np.flatnonzero(cls[near] != label)
        if swap[j] <= badloc[j]:
            other = int(cls[near][others[np.argmax(ious[j][others])]]) if len(others) else label
            out.append(Issue(i, "wrong_class", label, box, float(swap[j]), other))
        else:
            same = np.flatnonzero(cls[near] == label)
            fit = tuple(float(v) for v in boxes[near][same[np.argmax(ious[j][same])]]) if len(same) else None
            out.append(Issue(i, "bad_box", label, box, float(badloc[j]), label, fit))
    return out
