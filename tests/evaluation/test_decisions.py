"""How sure an AP is, whether B beats A, and which threshold to ship (issue 19), on simulated
splits whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from detection.errors import ConfigError
from detection.evaluation.matches import ClassMatches, Matches, coco_ap, subset
from detection.evaluation.operating_point import choose, parse_rule
from detection.evaluation.uncertainty import compare, format_intervals, intervals
from detection.evaluation.voc_ap import box_iou
from tests.evaluation.simulate import split


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recomputed_ap_equals_pycocotools(seed):
    ev, res = split(50, seed=seed)
    ap = coco_ap(ev.matches())
    for k in ("AP", "AP50", "AP75"):
        assert ap[k][0] == pytest.approx(res["coco"][k], abs=1e-12)
    assert ap["per_class"][0] == pytest.approx([c["AP"] for c in res["coco_per_class"]], abs=1e-12)
    # AP_small from the small-area matches (what a paired comparison of AP_small redraws)
    assert coco_ap(ev.matches("small"))["AP"][0] == pytest.approx(res["coco"]["APs"], abs=1e-12)


def test_the_interval_holds_the_full_set_value_in_about_95_percent_of_draws():
    """A 1500-image population; 80 seeded draws of 50 images each: how often does the draw's
    interval hold the population's AP?"""
    ev, _ = split(1500, seed=3)
    m = ev.matches()
    truth = coco_ap(m)["AP"][0]
    rng = np.random.default_rng(0)
    hits = 0
    for d in range(80):
        ci = intervals(subset(m, rng.choice(1500, 50, replace=False)), resamples=400, seed=d)
        hits += ci["AP"]["low"] <= truth <= ci["AP"]["high"]
    assert 0.86 <= hits / 80 <= 1.0


def test_the_interval_narrows_with_more_images():
    ev, _ = split(600, seed=4)
    m = ev.matches()
    widths = {}
    for n in (30, 240):
        ci = intervals(subset(m, np.arange(n)), resamples=500)
        widths[n] = ci["AP"]["high"] - ci["AP"]["low"]
        assert ci["AP"]["low"] <= ci["AP"]["value"] <= ci["AP"]["high"]
    assert widths[240] < 0.6 * widths[30]  # about 1 / sqrt(8)
    text = format_intervals(intervals(subset(m, np.arange(30)), resamples=200))
    assert "(95% CI, 30 images" in text and "The validation split has 30 images: AP is known to within" in text


def test_a_paired_comparison_finds_a_better_model_and_rarely_a_difference_between_equals():
    ev_a, _ = split(80, seed=5, skill=0.55, detector_seed=1)
    ev_b, _ = split(80, seed=5, skill=0.85, detector_seed=2)
    better = compare(ev_a.matches(), ev_b.matches(), resamples=500)
    assert better["AP"]["verdict"] == "better" and better["AP"]["low"] > 0 and better["AP"]["diff"] > 0
    assert compare(ev_b.matches(), ev_a.matches(), resamples=500)["AP"]["verdict"] == "worse"
    verdicts = [compare(ev_a.matches(), split(80, seed=5, skill=0.55, detector_seed=d)[0].matches(),
                        resamples=300)["AP"]["verdict"] for d in range(10, 30)]  # as good as A, other luck
    assert verdicts.count("no difference") >= 17  # about 95% expected; 3 of 40 were told apart in a trial
    itself = compare(ev_a.matches(), ev_a.matches(), resamples=100)
    assert itself["AP"]["diff"] == 0 and itself["AP"]["low"] == itself["AP"]["high"] == 0


def _one_class(scores, tp, npos) -> Matches:
    tp = np.array(tp, bool)[None]
    cm = ClassMatches(np.zeros(len(scores), int), np.array(scores, float), tp, ~tp, np.array([npos], float))
    return Matches(["cell"], 1, np.array([0.5]), [cm])


def test_each_rule_picks_the_threshold_its_definition_gives():
    # cuts: 0.9 (P 1, R .25) 0.8 (1, .5) 0.7 (.67, .5) 0.6 (.75, .75) 0.5 (.6, .75)
    m = _one_class([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], npos=4)
    f1 = choose(m, "f1")["per_class"][0]
    # each threshold sits halfway to the next lower score: float noise of another run flips nothing
    assert f1["threshold"] == pytest.approx(0.55) and (f1["precision"], f1["recall"], f1["f1"]) == (0.75, 0.75, 0.75)
    assert choose(m, "precision=0.9")["per_class"][0]["threshold"] == pytest.approx(0.75)  # most recall at P >= 0.9
    assert choose(m, "recall=0.7")["per_class"][0]["threshold"] == pytest.approx(0.55)  # most precision at R >= 0.7
    unreachable = choose(m, "recall=0.9")["per_class"][0]
    assert unreachable["threshold"] == pytest.approx((0.5 + 0.495) / 2) and unreachable["target_reached"] is False
    with pytest.raises(ConfigError, match="eval.threshold"):
        parse_rule("precision=1.5")


def test_the_operating_point_is_the_precision_and_recall_of_the_boxes_it_keeps():
    ev, _ = split(60, seed=6)
    op = choose(ev.matches(), "f1")
    thresholds = {r["class"]: r["threshold"] for r in op["per_class"]}
    tp = fp = 0
    for idx, (boxes, scores, labels) in ev.predictions.items():
        record = ev.records[idx]
        for k, name in enumerate(ev.info.class_names, 1):  # COCO's rule by hand: per class, best score first,
            keep = (labels == k) & (scores >= thresholds[name])  # each to the unmatched box it overlaps most
            gt = record.boxes[record.labels == k]
            free = np.ones(len(gt), bool)
            for i in np.argsort(-scores[keep], kind="stable"):
                iou = box_iou(boxes[keep][i:i + 1], gt)[0] if len(gt) else np.zeros(0)
                iou[~free] = -1
                if len(gt) and iou.max() >= 0.5:
                    free[int(np.argmax(iou))] = False
                    tp += 1
                else:
                    fp += 1
    assert (op["overall"]["tp"], op["overall"]["fp"]) == (tp, fp)
    assert op["overall"]["precision"] == pytest.approx(tp / (tp + fp))


def test_a_large_split_gets_fewer_redraws_and_a_small_one_all():
    from detection.evaluation.uncertainty import WORK, redraw_count

    ev, _ = split(40, seed=8)
    m = ev.matches()
    assert redraw_count(m, 1000) == 1000
    dets = sum(len(cm.score) for cm in m.per_class) * len(m.iou)
    huge = Matches(m.class_names, m.num_images, m.iou, m.per_class * int(2 * WORK / dets / 1000 + 1))
    assert 200 <= redraw_count(huge, 1000) < 1000  # a split that large: fewer, never under 200


def test_thresholds_stored_from_this_split_are_printed_once():
    from detection.evaluation.decide import format_decisions

    rows = [{"class": "a", "threshold": 0.4, "tp": 1, "fp": 0, "gt": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0}]
    op = {"rule": "f1", "iou": 0.5, "per_class": rows,
          "overall": {"tp": 1, "fp": 0, "gt": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0}}
    same = format_decisions({"stored_operating_point": {**op, "split": "val"}, "operating_point": op})
    assert "chosen on this split are the stored ones" in same and same.count("score >= 0.400") == 1
    moved = {**op, "per_class": [{**rows[0], "threshold": 0.6}]}
    other = format_decisions({"stored_operating_point": {**moved, "split": "val"}, "operating_point": op})
    assert other.count("score >=") == 2
