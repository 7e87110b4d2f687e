"""The error breakdown (TIDE) on hand-made images whose answers are worked out in the comments:
one case per kind of error, the cost it carries, and costs that add up to the gap."""

from __future__ import annotations

import numpy as np
import pytest

from detection.data.records import ImageRecord
from detection.evaluation.tide import KINDS, breakdown
from tests.evaluation.simulate import split

G1, G2, G3 = [0, 0, 100, 100], [200, 200, 300, 300], [400, 0, 500, 100]
LOOSE_G2 = [200, 200, 300, 420]  # IoU with G2: 100*100 / (100*220) = 0.45: between t_b and t_f
HALF = 50 / 101  # AP50 lost when the second of two boxes is never found: recall points above 0.5
THIRD = 50 / 3 / 101  # lost when an error ranks between two hits: precision 2/3 above recall 0.5


def _case(gt: list[tuple], dets: list[tuple], classes=("cell", "blast")) -> dict:
    boxes = np.array([b for b, _ in gt], np.float32)
    labels = np.array([lab for _, lab in gt])
    record = ImageRecord("/x.jpg", 600, 600, boxes, labels, np.zeros(len(gt), bool), np.zeros(len(gt), bool), 1)
    pred = (np.array([b for b, _, _ in dets], np.float32).reshape(-1, 4), np.array([s for _, _, s in dets], np.float32),
            np.array([lab for _, lab, _ in dets]))
    return breakdown([record], {0: pred}, list(classes))


@pytest.mark.parametrize("name, gt, dets, costs", [
    # G1 found; a cell box on G2's place called a blast: the second cell is found once its class is fixed
    ("classification", [(G1, 1), (G2, 1)], [(G1, 1, 0.9), (G2, 2, 0.8)], {"classification": HALF}),
    # the second cell's box is loose (IoU 0.45): fixed, it is found
    ("localization", [(G1, 1), (G2, 1)], [(G1, 1, 0.9), (LOOSE_G2, 1, 0.8)], {"localization": HALF}),
    # a second box on G1 ranks between the two hits
    ("duplicate", [(G1, 1), (G2, 1)], [(G1, 1, 0.9), (G1, 1, 0.8), (G2, 1, 0.7)], {"duplicate": THIRD}),
    # a box on nothing ranks between the two hits
    ("background", [(G1, 1), (G2, 1)], [(G1, 1, 0.9), ([500, 500, 560, 560], 1, 0.8), (G2, 1, 0.7)],
     {"background": THIRD}),
    # G2 is never found
    ("missed", [(G1, 1), (G2, 1)], [(G1, 1, 0.9)], {"missed": HALF}),
    # a loose blast box near a cell: the blast class (one box, found at 0.6) has precision 1/2 at its
    # recall of 1 until it goes; the cell it came near is missed. Two classes: each costs half its class's
    ("both", [(G1, 1), (G2, 1), (G3, 2)], [(G1, 1, 0.9), (LOOSE_G2, 2, 0.8), (G3, 2, 0.6)],
     {"both": 0.5 / 2, "missed": HALF / 2}),
])
def test_each_kind_of_error_is_named_and_costs_what_it_should(name, gt, dets, costs):
    b = _case(gt, dets)
    assert b["counts"][name] == 1
    assert sum(b["counts"][k] for k in KINDS) == len(costs) if name != "both" else b["counts"]["missed"] == 1
    for kind in KINDS:
        assert b["in_order"][kind] == pytest.approx(costs.get(kind, 0.0), abs=1e-9), kind
    assert sum(b["in_order"].values()) == pytest.approx(1 - b["AP50"], abs=1e-9)


def test_a_fixed_loose_box_takes_its_box_from_a_worse_hit():
    """The loose box outranks the hit on G2: fixed, it takes G2 and the hit becomes a duplicate
    ranked below both hits, where it costs nothing: fixing localization alone closes the gap."""
    b = _case([(G1, 1), (G2, 1)], [(G1, 1, 0.9), (LOOSE_G2, 1, 0.8), (G2, 1, 0.7)])
    assert b["counts"]["localization"] == 1 and b["counts"]["duplicate"] == 0
    assert b["alone"]["localization"] == pytest.approx(THIRD) and b["in_order"]["duplicate"] == pytest.approx(0.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_breakdown_starts_at_pycocotools_ap50_and_its_costs_add_up_to_the_gap(seed):
    ev, res = split(70, seed=seed)
    b = breakdown(ev.records, ev.predictions, ev.info.class_names)
    assert b["AP50"] == pytest.approx(res["coco"]["AP50"], abs=1e-9)
    assert sum(b["in_order"].values()) == pytest.approx(1 - b["AP50"], abs=1e-9)
    for row in b["per_class"]:
        assert sum(row["in_order"].values()) == pytest.approx(1 - row["AP50"], abs=1e-9)
    assert b["counts"]["missed"] > 0 and b["counts"]["background"] > 0 and b["counts"]["duplicate"] > 0


def test_counts_are_taken_at_the_operating_point_and_the_dap_over_every_score():
    """The demo model (AP50 1.000) reported 352 classification errors that cost nothing: every
    detection down to score 0 was counted."""
    import numpy as np

    from detection.data.records import ImageRecord
    from detection.evaluation.tide import breakdown, format_breakdown

    rec = ImageRecord.__new__(ImageRecord)
    rec.boxes = np.array([[0, 0, 10, 10]], np.float32)
    rec.labels = np.array([1])
    rec.iscrowd = rec.difficult = np.zeros(1, bool)
    preds = {0: (np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32), np.array([0.9, 0.05], np.float32),
                 np.array([1, 2]))}
    every = breakdown([rec], preds, ["a", "b"])
    cut = breakdown([rec], preds, ["a", "b"], count_at={"a": 0.5, "b": 0.5}, count_rule="f1")
    assert every["counts"]["classification"] == 1 and cut["counts"]["classification"] == 0
    assert cut["counts_all"] == every["counts"] and cut["alone"] == every["alone"]  # TIDE's dAP unchanged
    assert "counts at f1" in format_breakdown(cut)
