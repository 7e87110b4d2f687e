"""What an evaluation adds beyond the metrics, to answer "how sure, and what now": the 95%
intervals of AP (uncertainty), the kind of error that costs the AP (tide), the score
thresholds to ship (operating_point) and, for a model that already stores thresholds, how they
do on this split."""

from __future__ import annotations

import logging

from ..utils import distributed as dist
from .calibration import calibration, format_calibration
from .operating_point import at_thresholds, choose, format_operating_point, stored, thresholds_of
from .tide import breakdown, format_breakdown
from .uncertainty import format_intervals, intervals

log = logging.getLogger("detection.eval")


def decide(res: dict, ev, rule: str = "f1", resamples: int = 1000, stored: dict | None = None,
           errors: bool = True, calibrate: str = "none") -> dict:
    """`res` (an evaluator's results) with `intervals`, `errors` (the breakdown), `calibration`
    (D-ECE; with `calibrate="temperature"` a fitted temperature), `operating_point` (chosen here
    by `rule`) and, given the model's `stored` thresholds, `stored_operating_point`. Without
    per-image matches (a backend that keeps none) only the breakdown is added."""
    m = ev.matches()
    if m is not None:
        res["operating_point"] = choose(m, rule)
    if errors and ev.predictions:
        at, said = _counting_thresholds(res, stored, rule)
        res["errors"] = breakdown(ev.records, ev.predictions, ev.info.class_names, count_at=at, count_rule=said)
    if m is None:
        log.info("intervals and thresholds need pycocotools' per-image results (eval.backend=pycocotools)")
        return res
    if resamples:
        res["intervals"] = intervals(m, resamples)
    res["calibration"] = calibration(m, fit=calibrate == "temperature")
    if stored:
        res["stored_operating_point"] = {**at_thresholds(m, stored["per_class"]), "rule": stored.get("rule"),
                                         "split": stored.get("split")}
    return res


def _counting_thresholds(res: dict, stored: dict | None, rule: str) -> tuple[dict | None, str]:
    """Where the error breakdown counts, and how to say it: at the model's stored thresholds, else
    at those chosen here (where the model is used); without per-image matches, every detection."""
    if "operating_point" not in res:
        return None, ""
    if stored:
        return stored["per_class"], f"the model's stored thresholds ({stored.get('rule')})"
    return thresholds_of(res["operating_point"]), f"the thresholds chosen here ({rule})"


def thresholds_to_store(res: dict, ev, rule: str, calibrate: str = "none") -> dict | None:
    """A validation during training: `res` gets the operating point and calibration (no intervals:
    those come once, at the end); returns what the checkpoint stores of them (None when nothing
    could be chosen, and on every rank but the one that scored and saves)."""
    if not dist.is_main():
        return None
    decide(res, ev, rule, resamples=0, errors=False, calibrate=calibrate)
    if "operating_point" not in res:
        return None
    return stored(res["operating_point"], ev.info.source, res["calibration"].get("temperature"), res["coco"])


def format_decisions(res: dict) -> str:
    """The lines printed under the tables."""
    lines = []
    if "intervals" in res:
        lines.append(format_intervals(res["intervals"]))
    if "errors" in res:
        lines.append(format_breakdown(res["errors"]))
    if "calibration" in res:
        lines.append(format_calibration(res["calibration"]))
    if "stored_operating_point" in res:
        s = res["stored_operating_point"]
        title = ("The detections the file marks `kept` (each class from its lowest kept score)" if s["rule"] == "kept"
                 else f"At the model's stored thresholds ({s['rule']}, chosen on {s['split']})")
        lines.append(format_operating_point(s, title))
    if "operating_point" in res:
        op = res["operating_point"]
        if _same_thresholds(res.get("stored_operating_point"), op):  # the same split, chosen the same way
            lines.append("The thresholds chosen on this split are the stored ones above.")
        else:
            lines.append(format_operating_point(op, f"Thresholds chosen on this split (eval.threshold={op['rule']})"))
    return "\n".join(lines)


def _same_thresholds(stored_op: dict | None, op: dict) -> bool:
    """Whether the stored operating point keeps each class at the threshold chosen here (to 1e-6)."""
    if not stored_op:
        return False
    a, b = thresholds_of(stored_op), thresholds_of(op)
    return a.keys() == b.keys() and all(
        (a[k] is None and b[k] is None) or (a[k] is not None and b[k] is not None and abs(a[k] - b[k]) < 1e-6)
        for k in a)
