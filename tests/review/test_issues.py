"""The label review finds injected mistakes near the top of its ranking."""

import copy

import numpy as np
import pytest

from detection.config import load_config
from detection.data.dataset import read_split
from detection.review.issues import find_issues


def inject(records, rng, n=5):
    """n boxes deleted, n classes swapped, n boxes shifted, n spurious boxes added; returns the
    damaged records and the truth: {(image, kind): box} of each mistake."""
    bad, truth = copy.deepcopy(records), []
    picks = rng.permutation([(i, j) for i, r in enumerate(records) for j in range(len(r.boxes))])
    used = set()
    cursor = iter(p for p in picks if tuple(p) not in used)
    for kind in ("missing", "wrong_class", "bad_box"):
        for _ in range(n):
            i, j = next(p for p in cursor if p[0] not in used)
            used.add(i)  # one mistake an image: the truth stays unambiguous
            r, box = bad[i], records[i].boxes[j].copy()
            if kind == "missing":
                keep = np.arange(len(r.boxes)) != j
                r.boxes, r.labels, r.iscrowd, r.difficult = r.boxes[keep], r.labels[keep], r.iscrowd[keep], \
                    r.difficult[keep]
            elif kind == "wrong_class":
                r.labels[j] = r.labels[j] % 4 + 1
            else:
                w, h = box[2] - box[0], box[3] - box[1]
                r.boxes[j] = box + np.array([0.45 * w, 0.45 * h, 0.45 * w, 0.45 * h], np.float32)
            truth.append((i, kind))
    for _ in range(n):  # a box where nothing is (the top-left corner is background in this set)
        i = next(i for i in rng.permutation(len(bad)) if i not in used)
        used.add(i)
        r = bad[i]
        r.boxes = np.concatenate([r.boxes, np.array([[1, 1, 12, 12]], np.float32)])
        r.labels, r.iscrowd, r.difficult = np.append(r.labels, 1), np.append(r.iscrowd, False), \
            np.append(r.difficult, False)
        truth.append((int(i), "spurious"))
    return bad, truth


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
    top = [(x.image, x.kind) for x in issues[:k]]
    found = sum(t in top for t in truth)
    assert found >= 0.8 * k, (top, truth)  # recall at k (= precision at k here)
    kinds = {t[1] for t in truth if t in top}
    assert kinds == {"missing", "wrong_class", "bad_box", "spurious"}
    swapped = next(x for x in issues if x.kind == "wrong_class" and (x.image, "wrong_class") in truth)
    i = swapped.image
    j = int(np.argmin(np.abs(records[i].boxes - np.array(swapped.box)).sum(1)))
    assert swapped.suggested_label == records[i].labels[j]  # the class the box had before the swap
    assert all(x.score < 0.5 for x in issues) and [x.score for x in issues] == sorted(x.score for x in issues)


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
