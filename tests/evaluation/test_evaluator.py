import numpy as np
import pytest
import torch

from detection.data.records import DatasetInfo, ImageRecord
from detection.evaluation.evaluator import DetectionEvaluator, coco_ground_truth
from detection.evaluation.voc_ap import average_precision, voc_class_ap


def rec(boxes, labels, crowd=None, difficult=None, w=100, h=100):
    n = len(boxes)
    return ImageRecord("x.jpg", w, h, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64),
                       np.array(crowd or [False] * n, bool), np.array(difficult or [False] * n, bool), 0)


INFO = DatasetInfo(["a", "b"], [3, 17], "test")


def run(records, preds, scale=(1.0, 1.0), info=INFO, **kw):
    ev = DetectionEvaluator(records, info, **kw)
    targets = [{"image_id": i, "scale": scale, "orig_size": (r.height, r.width)} for i, r in enumerate(records)]
    outputs = [{"boxes": torch.tensor(b, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(s),
                "labels": torch.tensor(lab, dtype=torch.int64)} for b, s, lab in preds]
    ev.process(targets, outputs)
    return ev.evaluate()


def test_perfect_predictions_score_one_and_map_back_through_the_scale():
    records = [rec([[10, 10, 50, 60], [60, 20, 90, 90]], [1, 2])]
    half = [([[5, 5, 25, 30], [30, 10, 45, 45]], [0.9, 0.8], [1, 2])]  # predicted on a half-size input
    res = run(records, half, scale=(0.5, 0.5))
    assert res["coco"]["AP"] == pytest.approx(1.0)
    assert [c["AP"] for c in res["voc"]] == [pytest.approx(1.0)] * 2


def test_duplicate_is_a_false_positive_and_miss_lowers_recall():
    records = [rec([[10, 10, 50, 50], [60, 60, 90, 90]], [1, 1])]
    # one hit, one duplicate of it (lower score), the second box missed
    res = run(records, [([[10, 10, 50, 50], [11, 11, 50, 50]], [0.9, 0.8], [1, 1])], voc_metric="voc12")
    assert res["voc"][0]["AP"] == pytest.approx(0.5)  # precision 1 up to recall 0.5, then nothing
    assert res["coco"]["AR100"] < 0.6


def test_difficult_and_crowd_are_neither_hit_nor_miss():
    records = [rec([[10, 10, 50, 50], [60, 60, 90, 90]], [1, 1], difficult=[False, True])]
    res = run(records, [([[10, 10, 50, 50], [60, 60, 90, 90]], [0.9, 0.95], [1, 1])])
    assert res["voc"][0]["AP"] == pytest.approx(1.0) and res["voc"][0]["gt"] == 1
    assert res["coco"]["AP"] == pytest.approx(1.0)  # difficult becomes a crowd region for pycocotools
    records = [rec([[10, 10, 50, 50], [0, 0, 100, 100]], [1, 1], crowd=[False, True])]
    res = run(records, [([[10, 10, 50, 50], [60, 60, 90, 90]], [0.9, 0.8], [1, 1])])
    assert res["coco"]["AP"] == pytest.approx(1.0)  # the detection inside the crowd region is ignored


def test_false_positive_on_empty_image_and_class_without_gt():
    records = [rec([[10, 10, 50, 50]], [1]), rec([], [])]
    res = run(records, [([[10, 10, 50, 50]], [0.5], [1]), ([[1, 1, 20, 20]], [0.9], [1])], voc_metric="voc12")
    assert res["voc"][0]["AP"] == pytest.approx(0.5)  # the higher-scored FP comes first
    assert np.isnan(res["voc"][1]["AP"]) and res["voc"][1]["gt"] == 0
    assert res["voc_mAP"] == pytest.approx(0.5)  # classes without ground truth are left out


def test_results_use_the_source_category_ids_and_ids_start_at_one():
    records = [rec([[10, 10, 50, 50]], [2])]
    gt = coco_ground_truth(records, INFO)
    assert gt["annotations"][0]["category_id"] == 17
    assert gt["annotations"][0]["id"] >= 1 and gt["images"][0]["id"] >= 1
    ev = DetectionEvaluator(records, INFO)
    ev.process([{"image_id": 0, "scale": (1, 1), "orig_size": (100, 100)}],
               [{"boxes": torch.tensor([[10.0, 10, 50, 50]]), "scores": torch.tensor([0.7]),
                 "labels": torch.tensor([2])}])
    assert ev.coco_results()[0]["category_id"] == 17


def test_no_predictions_give_zero_not_a_crash():
    res = run([rec([[10, 10, 50, 50]], [1])], [([], [], [])])
    assert res["coco"]["AP"] == 0.0 and res["voc"][0]["AP"] == 0.0


def test_voc07_eleven_points_vs_area():
    recall = np.array([0.2, 0.4, 0.4, 0.65])
    precision = np.array([1.0, 1.0, 0.667, 0.75])
    # 11-point: recall >= 0, .1, .2 -> 1; .3, .4 -> 1; .5, .6 -> .75; .7.. -> 0
    assert average_precision(recall, precision, "voc07") == pytest.approx((5 * 1.0 + 2 * 0.75) / 11)
    assert average_precision(recall, precision, "voc12") == pytest.approx(0.4 * 1.0 + 0.25 * 0.75)
    with pytest.raises(ValueError, match="voc07 or voc12"):
        average_precision(recall, precision, "voc99")


def test_voc_class_ap_second_detection_of_same_box():
    gts = {0: (np.array([[0, 0, 10, 10]], float), np.array([False]))}
    ap, npos = voc_class_ap(gts, [(0, 0.9, [0, 0, 10, 10]), (0, 0.8, [0, 0, 10, 10])], method="voc12")
    assert (ap, npos) == (pytest.approx(1.0), 1)  # the duplicate comes after full recall
