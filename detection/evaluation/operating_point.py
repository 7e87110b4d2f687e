"""The score threshold to ship, per class, chosen on the validation split.

mAP averages over every threshold; a deployed detector keeps the boxes above one. From the
kept matches (IoU 0.5, as AP50 counts them) each class's precision, recall and F1 are known at
every score cut, so `eval.threshold` picks one per class: `f1` (the best F1), `precision=0.9`
(the most recall with at least that precision) or `recall=0.9` (the most precision with at
least that recall). The thresholds go into the checkpoint and the exported files; inference
uses them when no --score is given.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .matches import ClassMatches, Matches

DEFAULT_SCORE = 0.25  # a class the split cannot decide for (no boxes of it, or no detections) keeps this


def parse_rule(text: str) -> tuple[str, float]:
    """`f1` | `precision=0.9` | `recall=0.9` -> (kind, target); ConfigError naming eval.threshold."""
    text = str(text).strip()
    if text == "f1":
        return "f1", 0.0
    kind, _, value = text.partition("=")
    try:
        target = float(value)
    except ValueError:
        target = -1.0
    if kind not in ("precision", "recall") or not 0 < target <= 1:
        raise ConfigError(f"config key `eval.threshold` must be f1, precision=P or recall=R (P, R in (0, 1]), got "
                          f"{text!r}")
    return kind, target


def class_curve(cm: ClassMatches) -> dict[str, np.ndarray]:
    """Precision, recall and F1 (IoU 0.5) when keeping the detections scoring at least each
    distinct score, highest score first."""
    tp = np.cumsum(cm.tp[0])
    fp = np.cumsum(cm.fp[0])
    last_of_ties = np.r_[cm.score[1:] != cm.score[:-1], True] if len(cm.score) else np.zeros(0, bool)
    tp, fp, score = tp[last_of_ties], fp[last_of_ties], cm.score[last_of_ties]
    npos = cm.npos.sum()
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / npos if npos else np.zeros_like(precision)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {"score": score, "precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp}


def _pick(curve: dict, kind: str, target: float) -> tuple[int, bool]:
    """(index of the chosen cut, whether the rule's target was reached)."""
    if kind == "f1":
        return int(np.argmax(curve["f1"])), True  # the first maximum: the higher threshold on a tie
    if kind == "precision":
        ok = np.flatnonzero(curve["precision"] >= target)
        return (int(ok[-1]), True) if len(ok) else (int(np.argmax(curve["precision"])), False)
    ok = np.flatnonzero(curve["recall"] >= target)
    return (int(ok[0]), True) if len(ok) else (len(curve["score"]) - 1, False)


def between(scores: np.ndarray, i: int) -> float:
    """The threshold of the cut that keeps scores[:i + 1] (distinct, falling): halfway to the next
    lower score, so the float noise of another run (channels_last, another batch size) does not
    flip the detection the cut was chosen at."""
    low = scores[i + 1] if i + 1 < len(scores) else scores[i] * 0.99
    return float((scores[i] + low) / 2)


def choose(m: Matches, rule: str = "f1") -> dict:
    """Per-class thresholds by `rule` on this split, with precision, recall and F1 at each."""
    kind, target = parse_rule(rule)
    thresholds, reached = {}, {}
    for name, cm in zip(m.class_names, m.per_class):
        curve = class_curve(cm)
        if not len(curve["score"]) or not cm.npos.sum():
            thresholds[name] = None
            continue
        i, reached[name] = _pick(curve, kind, target)
        thresholds[name] = between(curve["score"], i)
    out = at_thresholds(m, thresholds)
    out["rule"] = rule
    for row in out["per_class"]:
        row["target_reached"] = reached.get(row["class"], True)
    return out


def at_thresholds(m: Matches, thresholds: dict) -> dict:
    """Precision, recall and F1 (IoU 0.5) per class and over all boxes when each class keeps
    the detections scoring at least its threshold (None: DEFAULT_SCORE)."""
    rows, tp_all, fp_all, gt_all = [], 0, 0, 0
    for name, cm in zip(m.class_names, m.per_class):
        thr = thresholds.get(name)
        keep = cm.score >= (DEFAULT_SCORE if thr is None else thr)
        tp, fp, gt = int(cm.tp[0][keep].sum()), int(cm.fp[0][keep].sum()), int(cm.npos.sum())
        tp_all, fp_all, gt_all = tp_all + tp, fp_all + fp, gt_all + gt
        rows.append({"class": name, "threshold": thr, "tp": tp, "fp": fp, "gt": gt, **_prf(tp, fp, gt)})
    return {"iou": 0.5, "per_class": rows, "overall": {"tp": tp_all, "fp": fp_all, "gt": gt_all,
                                                        **_prf(tp_all, fp_all, gt_all)}}


def _prf(tp: int, fp: int, gt: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / gt if gt else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def format_operating_point(op: dict, title: str) -> str:
    lines = [f"{title}: precision {op['overall']['precision']:.3f}, recall {op['overall']['recall']:.3f}, "
             f"F1 {op['overall']['f1']:.3f} (IoU 0.5, {op['overall']['tp']} of {op['overall']['gt']} boxes found, "
             f"{op['overall']['fp']} false)"]
    for r in op["per_class"]:
        thr = "default " + f"{DEFAULT_SCORE:g}" if r["threshold"] is None else f"{r['threshold']:.3f}"
        missed = "" if r.get("target_reached", True) else "  (target not reached)"
        lines.append(f"  {r['class']:<18} score >= {thr:<8} precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
                     f"F1 {r['f1']:.3f}{missed}")
    return "\n".join(lines)


def thresholds_of(op: dict) -> dict:
    """{class name: threshold (or None)} of an operating point's per-class rows."""
    return {r["class"]: r["threshold"] for r in op["per_class"]}


def stored(op: dict, source: str, temperature: float | None = None, coco: dict | None = None) -> dict:
    """What a checkpoint and an exported file keep: the rule, the split, a threshold per class
    (on the model's own scores), the calibration temperature (None: none fitted) and the AP and
    AP50 of that validation (`coco`), so a model that scored nothing is said to be weak where it
    is used (`inference.loading.warn_if_weak`)."""
    out = {"rule": op.get("rule", "given"), "split": source,
           "per_class": thresholds_of(op), "temperature": temperature}
    if coco is not None:
        out.update(AP=float(coco["AP"]), AP50=float(coco["AP50"]))
    return out


def curves_figure(m: Matches, op: dict, max_classes: int = 12):
    """Precision, recall and F1 against the score threshold, one panel per class, the chosen
    threshold marked."""
    from ..utils.plotting import pyplot

    plt = pyplot()
    shown = list(zip(m.class_names, m.per_class))[:max_classes]
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    chosen = thresholds_of(op)
    for ax, (name, cm) in zip(axes.flat, shown):
        c = class_curve(cm)
        for key in ("precision", "recall", "f1"):
            ax.plot(c["score"], c[key], label=key)
        if chosen.get(name) is not None:
            ax.axvline(chosen[name], color="k", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{name}  (>= {chosen[name]:.2f})" if chosen.get(name) is not None else name, fontsize=9)
        ax.set_xlabel("score threshold", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
