"""The label review finds injected mistakes near the top of its ranking."""

import copy

import numpy as np
import pytest

from detection.config import load_config
from detection.data.dataset import read_split
from detection.review.inject import inject, precision_recall_at
from detection.review.issues import find_issues


def perfect_model(records, rng):
    """Detections a good model would give: every true box (score 0.8-0.99, a little off), plus
    low-scoring clutter."""
    out = []
    for r in records:
        n = len(r.boxes)
        boxes = r.boxes + rng.normal(0, 0.5, (n, 4)).astype(np.float32)
        clutter = rng.uniform(0, 100, (3, 2)).astype(np.float32)
        boxes = np.concatenate([boxes, np.concatenate([clutter, clutter + 15], 1)])
        scores = np.concatenate([rng.uniform(0.8, 0.99, n), rng.uniform(0.01, 0.08, 3)]).astype(np.float32)
        labels = np.concatenate([r.labels, rng.integers(1, 5, 3)])
        out.append((boxes, scores, labels))
    return out


def test_injected_mistakes_come_first_with_their_kind(synthetic_root):
    d = load_config(None, {"data": {"format": "coco", "root": str(synthetic_root / "coco")}})["data"]
    records, info = read_split(d, "train", False)
    rng = np.random.default_rng(0)
    bad, truth = inject(records, rng, n=3)
    issues = find_issues(bad, perfect_model(records, rng), len(info.class_names))
    k = len(truth)
    precision, recall = precision_recall_at(issues, truth, k)
    assert recall >= 0.8 and precision >= 0.8, (issues[:k], truth)
    top = [(x.image, x.kind) for x in issues[:k]]
    kinds = {t[1] for t in truth if t in top}
    assert kinds == {"missing", "wrong_class", "bad_box", "spurious"}
    swapped = next(x for x in issues if x.kind == "wrong_class" and (x.image, "wrong_class") in truth)
    i = swapped.image
    j = int(np.argmin(np.abs(records[i].boxes - np.array(swapped.box)).sum(1)))
    assert swapped.suggested_label == records[i].labels[j]  # the class the box had before the swap
    assert all(x.score < 0.5 for x in issues)
    for kind in ("missing", "wrong_class", "bad_box", "spurious"):  # within a kind: most likely first
        scores = [x.score for x in issues if x.kind == kind]
        assert scores == sorted(scores)
    assert {x.kind for x in issues[:4]} == {"missing", "wrong_class", "bad_box", "spurious"}  # the kinds in turn


def test_crowd_and_difficult_regions_are_never_issues(synthetic_root):
    d = load_config(None, {"data": {"format": "coco", "root": str(synthetic_root / "coco")}})["data"]
    records, info = read_split(d, "train", False)
    rng = np.random.default_rng(1)
    preds = perfect_model(records, rng)
    marked = copy.deepcopy(records)
    for r in marked[:6]:
        r.difficult[:] = True  # the detections on them are not "missing", the boxes are not "spurious"
    issues = find_issues(marked, preds, len(info.class_names))
    assert not [x for x in issues if x.image < 6]
    pytest.importorskip("cleanlab")
