"""Whether a score of 0.8 means right 80% of the time: detection calibration.

D-ECE (Kuppers et al., CVPR-W 2020), confidence only: the detections scoring at least
MIN_SCORE are put in equal-width score bins; each bin's precision (the share that is a hit at
IoU 0.5) is set against its mean score, and the gaps are averaged, weighted by the bins'
sizes. `eval.calibrate: temperature` fits one temperature T on the validation detections
(the binary log-loss of "is a hit"), and scores become sigmoid(logit(s) / T): a monotone map,
so the ranking, every AP and the boxes kept at a threshold stay what they were; only what
the numbers say changes. T is stored with the thresholds and applied by inference.
"""

from __future__ import annotations

import numpy as np

from .matches import Matches

MIN_SCORE = 0.3  # the detections D-ECE is taken over, as Kuppers et al. did
BINS = 10


def hits(m: Matches, min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """(scores, is a hit at IoU 0.5) of every detection scoring at least `min_score` (crowd and
    ignored matches left out)."""
    scores, hit = [], []
    for cm in m.per_class:
        counted = (cm.tp[0] | cm.fp[0]) & (cm.score >= min_score)
        scores.append(cm.score[counted])
        hit.append(cm.tp[0][counted])
    return np.concatenate(scores) if scores else np.zeros(0), np.concatenate(hit) if hit else np.zeros(0, bool)


def apply_temperature(scores, temperature: float | None):
    """sigmoid(logit(s) / T); T None or 1: the scores as they are."""
    scores = np.asarray(scores, np.float64)
    if not temperature or temperature == 1:
        return scores
    s = np.clip(scores, 1e-7, 1 - 1e-7)
    return 1.0 / (1.0 + np.exp(-np.log(s / (1 - s)) / temperature))


def d_ece(scores: np.ndarray, hit: np.ndarray, bins: int = BINS) -> tuple[float, list[dict]]:
    """(D-ECE, the bins: count, mean score, precision) of detections with these scores."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    table, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        row = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": n,
               "score": float(scores[inside].mean()) if n else float("nan"),
               "precision": float(hit[inside].mean()) if n else float("nan")}
        if n:
            gap += n * abs(row["precision"] - row["score"])
        table.append(row)
    return (gap / len(scores) if len(scores) else float("nan")), table


def fit_temperature(scores: np.ndarray, hit: np.ndarray) -> float:
    """The T minimising the log-loss of sigmoid(logit(s) / T) against `hit` (a grid over 0.05..20,
    then a finer one around its best)."""
    if len(scores) < 2 or hit.all() or not hit.any():
        return 1.0

    def loss(t: float) -> float:
        p = np.clip(apply_temperature(scores, t), 1e-7, 1 - 1e-7)
        return float(-(hit * np.log(p) + (~hit) * np.log(1 - p)).mean())

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 200))
    best = grid[int(np.argmin([loss(t) for t in grid]))]
    fine = np.linspace(best / 1.05, best * 1.05, 41)
    return float(fine[int(np.argmin([loss(t) for t in fine]))])


def calibration(m: Matches, fit: bool) -> dict:
    """D-ECE of the scores as they are, and (with `fit`) the fitted temperature and the D-ECE after it."""
    scores, hit = hits(m)
    ece, table = d_ece(scores, hit)
    out = {"min_score": MIN_SCORE, "detections": int(len(scores)), "d_ece": ece, "bins": table}
    if fit:
        t = fit_temperature(scores, hit)
        after, table_after = d_ece(apply_temperature(scores, t), hit)  # the same detections, rescored
        out.update(temperature=t, d_ece_after=after, bins_after=table_after)
    return out


def format_calibration(c: dict) -> str:
    if not c["detections"] or not np.isfinite(c["d_ece"]):
        return f"Calibration: no detection scores >= {c['min_score']:g}, so there is nothing to calibrate"
    line = (f"Calibration: D-ECE {c['d_ece']:.3f} over {c['detections']} detections scoring >= {c['min_score']:g} "
            "(0: a score of 0.8 is a hit 80% of the time)")
    if "temperature" in c:
        line += f"; temperature {c['temperature']:.3f} brings it to {c['d_ece_after']:.3f}"
    return line


def reliability_figure(c: dict):
    """Precision against mean score per bin (the diagonal is calibrated), before and after T."""
    from ..utils.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
    for key, label in (("bins", f"scores (D-ECE {c['d_ece']:.3f})"),
                       ("bins_after", f"T={c.get('temperature', 1):.2f} (D-ECE {c.get('d_ece_after', 0):.3f})")):
        if key in c:
            rows = [r for r in c[key] if r["count"]]
            ax.plot([r["score"] for r in rows], [r["precision"] for r in rows], marker="o", label=label)
    ax.set_xlabel("mean score in the bin", fontsize=8)
    ax.set_ylabel("precision (hits at IoU 0.5)", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("Reliability", fontsize=9)
    fig.tight_layout()
    return fig
