"""How sure an AP is, and whether one model is really better than another, from the split itself.

A validation split of 40 images is one draw of 40 images; another draw would give another AP.
The bootstrap redraws the split's images with replacement (seeded, `eval.bootstrap` times,
1000 by default) and recomputes AP on each redraw from the kept matches (`matches.coco_ap`):
the spread of those APs around the split's own AP, reflected about it (the basic, or pivotal,
bootstrap interval: the percentile one under-covers on small splits, 87% where 95% was asked
at 20 images in the simulation tests), is the interval. Two models scored on the same images are
compared on the same redraws (a paired bootstrap), so what the images have in common (hard
ones, easy ones) cancels and only the difference between the models is left.
"""

from __future__ import annotations

import numpy as np

from ..utils.commands import command
from .matches import Matches, coco_ap

LEVEL = 0.95
METRICS = ("AP", "AP50", "AP75")
SMALL_SPLIT = 100  # images: under it, the interval's width is said in words


WORK = 5e7  # redraws x detections: about a minute of numpy on a CPU


def redraw_count(m: Matches, requested: int) -> int:
    """`requested`, or fewer (200 at least) on a split so large that each redraw costs seconds
    (COCO's 5000 validation images hold 500k detections): its interval is narrow anyway."""
    detections = sum(len(cm.score) for cm in m.per_class) * len(m.iou)
    return int(min(requested, max(200, WORK // max(detections, 1))))


def redraws(num_images: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(resamples, num_images) weights: how many times each image was drawn in each redraw."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(num_images, np.full(num_images, 1.0 / num_images), size=resamples).astype(np.float64)


def _interval(estimate: float, drawn: np.ndarray, bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """The basic bootstrap interval: the redraws' spread around `estimate`, reflected about it
    (where the redraws run high, the split's value likely runs high of the truth), clipped to
    `bounds`."""
    finite = drawn[np.isfinite(drawn)]
    if not len(finite) or not np.isfinite(estimate):
        return float("nan"), float("nan")
    q_low, q_high = np.percentile(finite, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(np.clip(2 * estimate - q_high, *bounds)), float(np.clip(2 * estimate - q_low, *bounds))


def intervals(m: Matches, resamples: int = 1000, seed: int = 0) -> dict:
    """95% bootstrap intervals of AP, AP50, AP75 and each class's AP on this split."""
    resamples = redraw_count(m, resamples)
    full = coco_ap(m)
    drawn = coco_ap(m, redraws(m.num_images, resamples, seed))
    out = {"level": LEVEL, "resamples": resamples, "images": m.num_images}
    for k in METRICS:
        value = float(full[k][0])
        out[k] = {"value": value, **dict(zip(("low", "high"), _interval(value, drawn[k])))}
    out["per_class"] = []
    for i, name in enumerate(m.class_names):
        value = float(full["per_class"][0, i])
        out["per_class"].append({"class": name, "value": value,
                                 **dict(zip(("low", "high"), _interval(value, drawn["per_class"][:, i])))})
    return out


def compare(a: Matches, b: Matches, resamples: int = 1000, seed: int = 0) -> dict:
    """Model B minus model A on the same images and the same redraws, per metric and per class,
    with a verdict each: better, worse, or no difference this split can show."""
    if a.num_images != b.num_images:
        raise ValueError("compare: the two evaluations must cover the same images")
    resamples = min(redraw_count(a, resamples), redraw_count(b, resamples))
    weights = redraws(a.num_images, resamples, seed)
    full_a, full_b = coco_ap(a), coco_ap(b)
    drawn_a, drawn_b = coco_ap(a, weights), coco_ap(b, weights)
    out = {"level": LEVEL, "resamples": resamples, "images": a.num_images}
    for k in METRICS:
        out[k] = _difference(float(full_a[k][0]), float(full_b[k][0]), drawn_b[k] - drawn_a[k])
    index_b = {name: i for i, name in enumerate(b.class_names)}
    out["per_class"] = []
    for i, name in enumerate(a.class_names):
        j = index_b[name]
        out["per_class"].append({"class": name, **_difference(
            float(full_a["per_class"][0, i]), float(full_b["per_class"][0, j]),
            drawn_b["per_class"][:, j] - drawn_a["per_class"][:, i])})
    return out


def _difference(a: float, b: float, drawn: np.ndarray) -> dict:
    low, high = _interval(b - a, drawn, (-1.0, 1.0))
    verdict = "better" if low > 0 else "worse" if high < 0 else "no difference"
    return {"a": a, "b": b, "diff": b - a, "low": low, "high": high, "verdict": verdict}


def verdict_line(metric: str, d: dict, name_a: str = "A", name_b: str = "B") -> str:
    """`B is better by 0.040 AP [0.012, 0.071]`, or that this split cannot tell them apart."""
    span = f"[{d['low']:+.3f}, {d['high']:+.3f}]"
    if d["verdict"] == "no difference":
        return (f"{metric}: no difference this split can show ({name_b} - {name_a} = {d['diff']:+.3f} {span}, "
                f"{LEVEL:.0%} interval)")
    return (f"{metric}: {name_b} is {d['verdict']} by {abs(d['diff']):.3f} {span} ({d['a']:.3f} -> {d['b']:.3f}, "
            f"{LEVEL:.0%} interval)")


def interval_text(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def format_intervals(ci: dict) -> str:
    """`AP 0.553 [0.490, 0.610] (95% CI, 40 images)`, AP50, AP75, each class; and, under 100
    images, a line on what the width means."""
    head = "  ".join(f"{k} {interval_text(ci[k]['value'], ci[k]['low'], ci[k]['high'])}" for k in METRICS)
    lines = [f"{head}  ({ci['level']:.0%} CI, {ci['images']} images, {ci['resamples']} bootstrap redraws)"]
    lines += [f"  {c['class']:<18} AP {interval_text(c['value'], c['low'], c['high'])}" for c in ci["per_class"]
              if np.isfinite(c["value"])]
    if note := small_split_note(ci):
        lines.append(note)
    return "\n".join(lines)


def small_split_note(ci: dict) -> str | None:
    if ci["images"] >= SMALL_SPLIT or not np.isfinite(ci["AP"]["low"]):
        return None
    width = ci["AP"]["high"] - ci["AP"]["low"]
    if width < 0.0005:  # "+-0.000" reads as a figure; an interval this narrow says the AP is stuck (often at 0)
        return (f"The validation split has {ci['images']} images and every redraw gave the same AP "
                f"({ci['AP']['value']:.3f}): it does not measure how sure that number is")
    return (f"The validation split has {ci['images']} images: AP is known to within about +-{width / 2:.3f}. Runs "
            f"or settings that differ by less are not told apart by it (compare two runs on the same images: "
            f"{command('eval')} --compare RUN_A RUN_B)")
