"""What kind of error costs the AP: the breakdown of TIDE (Bolya et al., ECCV 2020).

Every detection that is not a true positive at IoU 0.5 is given one kind, from its best
overlap with the ground truth (t_f = 0.5, t_b = 0.1):

- background:     overlaps every box under t_b
- duplicate:      >= t_f with a box of its class that a higher-scoring detection already took
- classification: >= t_f with a box of another class
- localization:   t_b .. t_f with a box of its class
- both:           t_b .. t_f with a box of another class only
A ground-truth box that no detection found and no classification or localization error aimed
at is missed.

Each kind's cost is the AP50 it takes: fix it (a classification or localization error gets the
box's class or the box itself, unless a better detection already took that box; the other
kinds are removed; missed boxes leave the count) and score again. `alone`: each kind fixed by
itself (TIDE's numbers). `in_order`: fixed one after another in the order above, so the costs
add up to the whole gap, 1 - AP50.
"""

from __future__ import annotations

import numpy as np

from .matches import ClassMatches, class_ap
from .voc_ap import box_iou

T_FG, T_BG = 0.5, 0.1
KINDS = ("classification", "localization", "both", "duplicate", "background", "missed")
HINTS = {
    "classification": "classes confused: more examples of the confused classes, or merge classes a person "
                      "cannot tell apart either (confusion_matrix.png says which)",
    "localization": "boxes in the right place but loose: a larger input (model.min_size), anchors fitted to the "
                    "boxes (model.anchors=auto), more epochs",
    "both": "wrong class and loose box at once: usually clutter near objects; more data of those scenes",
    "duplicate": "two boxes on one object: a lower NMS IoU, or a score threshold (the operating point)",
    "background": "boxes on nothing: more images of empty background (negatives), or a higher score threshold",
    "missed": "objects not found at all: small ones want a larger input (model.min_size, model.auto_size); rare "
              "ones more labelled examples",
}


def classify(records, predictions: dict, num_classes: int, max_det: int = 100) -> list[dict]:
    """Every detection (the best `max_det` of each image): its image, its index there (`det`),
    class, score and kind ('tp' or an error kind), and the box it concerns (`target`); plus one
    entry per missed box. Detections on crowd or difficult boxes are left out."""
    out = []
    for idx, (boxes, scores, labels) in predictions.items():
        r = records[idx]
        order = np.argsort(-scores, kind="stable")[:max_det]
        boxes, scores, labels = boxes[order], scores[order], labels[order]
        ignore = r.iscrowd | r.difficult
        iou = box_iou(boxes, r.boxes) if len(r.boxes) else np.zeros((len(boxes), 0))
        taken = np.zeros(len(r.boxes), bool)
        aimed = np.zeros(len(r.boxes), bool)
        for d in range(len(boxes)):
            same = r.labels == labels[d]
            row = dict(image=idx, det=int(order[d]), label=int(labels[d]), score=float(scores[d]), target=-1)
            free = np.where(same & ~taken & ~ignore, iou[d], -1.0)
            if free.size and free.max() >= T_FG:
                g = int(np.argmax(free))
                taken[g] = True
                out.append({**row, "kind": "tp", "target": g})
                continue
            kind, g = _error_kind(iou[d], same, taken, ignore)
            if kind == "ignored":  # on a crowd or difficult box: neither right nor wrong
                continue
            if kind in ("classification", "localization"):
                aimed[g] = True
            out.append({**row, "kind": kind, "target": g})
        for g in np.flatnonzero(~taken & ~aimed & ~ignore):
            out.append(dict(image=idx, det=-1, label=int(r.labels[g]), score=0.0, target=int(g), kind="missed"))
    return out


def _error_kind(iou: np.ndarray, same: np.ndarray, taken: np.ndarray, ignore: np.ndarray) -> tuple[str, int]:
    """(kind, the ground-truth box it concerns or -1) of a detection that is not a true positive."""
    if not iou.size or iou.max() < T_BG:
        return "background", -1
    if (iou[ignore] >= T_FG).any():
        return "ignored", -1
    own = np.where(same & ~ignore, iou, -1.0)
    other = np.where(~same & ~ignore, iou, -1.0)
    if own.max() >= T_FG:  # its own class's box is there, already taken
        return "duplicate", int(np.argmax(own))
    if other.max() >= T_FG:
        return "classification", int(np.argmax(other))
    if own.max() >= T_BG:
        return "localization", int(np.argmax(own))
    return "both", int(np.argmax(other))


def ap50(entries: list[dict], gt_count: np.ndarray, fixed: set[str]) -> np.ndarray:
    """Per-class AP50 (NaN for a class without boxes) with the kinds in `fixed` fixed."""
    num_classes = len(gt_count)
    npos = gt_count.astype(float).copy()
    taken: set = set()
    per_class = [[] for _ in range(num_classes)]  # (score, is_tp)
    for e in sorted(entries, key=lambda e: -e["score"]):
        kind, key = e["kind"], (e["image"], e["target"])
        if kind == "missed":
            if kind in fixed:
                npos[e["label"] - 1] -= 1
            continue
        if kind == "tp" or (kind in ("classification", "localization") and kind in fixed):
            label = e["label"] if kind != "classification" else e["gt_label"]
            is_tp = key not in taken  # a box a better detection took already: this one is a duplicate
            taken.add(key)
            if is_tp or "duplicate" not in fixed:
                per_class[label - 1].append((e["score"], is_tp))
            continue
        if kind not in fixed:
            per_class[e["label"] - 1].append((e["score"], False))
    return np.array([_class_ap(dets, npos[k], gt_count[k]) for k, dets in enumerate(per_class)])


def _class_ap(dets: list[tuple[float, bool]], npos: float, had: int) -> float:
    if not had:
        return float("nan")
    if npos <= 0:  # every box of the class was missed and left the count: what is left is right or gone
        return 1.0 if not any(not tp for _, tp in dets) else 0.0
    hit = np.array([t for _, t in dets], bool)[None]  # already best first: the one interpolation of AP
    cm = ClassMatches(np.zeros(len(dets), int), np.array([s for s, _ in dets]), hit, ~hit, np.array([npos]))
    return float(class_ap(cm, np.ones((1, 1)))[0, 0])


def breakdown(records, predictions: dict, class_names: list[str], max_det: int = 100,
              count_at: dict | None = None, count_rule: str = "") -> dict:
    """AP50, the count of each kind of error, and the AP50 each costs (alone and in order),
    overall and per class.

    The dAP columns are TIDE's, over every detection down to score 0. The counts are those a
    user meets: with `count_at` ({class name: score}, the operating point, `count_rule` saying
    which), the detections at or above their class's threshold, classified anew (a box then
    missed is one no kept detection finds). Counted down to score 0, the demo model (AP50 1.000)
    had 352 'classification' and 60 'localization' errors that cost nothing."""
    entries = classify(records, predictions, len(class_names), max_det)
    counts_all = {k: sum(e["kind"] == k for e in entries) for k in KINDS}
    counts, counted_from = counts_all, "every detection (score > 0)"
    if count_at is not None:
        cut = np.array([float(count_at.get(n) or 0.0) for n in class_names])
        kept = {i: (b[s >= cut[lab - 1]], s[s >= cut[lab - 1]], lab[s >= cut[lab - 1]])
                for i, (b, s, lab) in predictions.items()}
        at = classify(records, kept, len(class_names), max_det)
        counts, counted_from = {k: sum(e["kind"] == k for e in at) for k in KINDS}, count_rule or "the thresholds"
    for e in entries:  # a classification error is fixed into the class of the box it hit
        if e["kind"] == "classification":
            e["gt_label"] = int(records[e["image"]].labels[e["target"]])
    gt = np.zeros(len(class_names), int)
    for r in records:
        np.add.at(gt, r.labels[~(r.iscrowd | r.difficult)] - 1, 1)
    base = ap50(entries, gt, set())
    alone = {k: ap50(entries, gt, {k}) - base for k in KINDS}
    in_order, done, before = {}, set(), base
    for k in KINDS:
        done.add(k)
        after = ap50(entries, gt, done)
        in_order[k], before = after - before, after
    return {
        "AP50": float(np.nanmean(base)), "counts": counts, "counts_all": counts_all, "counted_from": counted_from,
        "alone": {k: float(np.nanmean(v)) for k, v in alone.items()},
        "in_order": {k: float(np.nanmean(v)) for k, v in in_order.items()},
        "per_class": [{"class": n, "AP50": float(base[i]), "in_order": {k: float(in_order[k][i]) for k in KINDS},
                       "alone": {k: float(alone[k][i]) for k in KINDS}} for i, n in enumerate(class_names)],
        "hints": HINTS, "thresholds": {"foreground": T_FG, "background": T_BG},
    }


def format_breakdown(b: dict) -> str:
    """The table printed by eval_det: each kind's count and cost, the largest first, with its hint."""
    lines = [f"Error breakdown (TIDE, AP50 {b['AP50']:.3f}; the costs in order add up to the gap "
             f"{1 - b['AP50']:.3f}; counts at {b.get('counted_from', 'every detection')}, dAP over every score):",
             f"  {'kind':<15}{'count':>7}{'dAP alone':>11}{'dAP in order':>14}"]
    for k in sorted(KINDS, key=lambda k: -b["in_order"][k]):
        lines.append(f"  {k:<15}{b['counts'][k]:>7}{b['alone'][k]:>11.3f}{b['in_order'][k]:>14.3f}")
    top = max(KINDS, key=lambda k: b["alone"][k])
    if b["alone"][top] > 0:
        lines.append(f"  most costly alone: {top}: {HINTS[top]}")
    return "\n".join(lines)


def breakdown_figure(b: dict):
    """Bars of each kind's cost (in order, adding up to 1 - AP50), overall."""
    from ..utils.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    values = [b["in_order"][k] for k in KINDS]
    ax.barh(list(KINDS)[::-1], values[::-1], color="#c0504d")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlabel(f"AP50 lost (in order; they add up to {1 - b['AP50']:.3f})", fontsize=8)
    ax.set_title(f"Errors by kind (TIDE), AP50 {b['AP50']:.3f}", fontsize=9)
    ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig
