"""A detector's output on a made-up validation split, with known kinds of error, for the
evaluation tests: no images, no model, seconds to score."""

from __future__ import annotations

import numpy as np

from detection.data.records import DatasetInfo, ImageRecord
from detection.evaluation.evaluator import DetectionEvaluator

CLASSES = ("cell", "platelet", "blast")


def split(num_images: int, seed: int = 0, skill: float = 0.7, detector_seed: int | None = None):
    """(evaluator with predictions added, its evaluate() results). Each image has 1-6 boxes; the
    detector finds each with probability `skill` (jittered, sometimes the wrong class), adds
    duplicates and background boxes, and scores its hits higher than its mistakes on average.
    The images follow `seed`, the detector's luck `detector_seed` (default: the same stream), so
    two detectors can be run on one split."""
    rng = np.random.default_rng(seed)
    det_rng = rng if detector_seed is None else np.random.default_rng(detector_seed)
    records, predictions = [], {}
    for i in range(num_images):
        n = int(rng.integers(1, 7))
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(20, 90, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        labels = rng.integers(1, len(CLASSES) + 1, n)
        records.append(ImageRecord(f"/sim/{i}.jpg", 500, 500, boxes, labels, np.zeros(n, bool), np.zeros(n, bool),
                                   i + 1))
        predictions[i] = detect(det_rng, boxes, labels, skill)
    ev = DetectionEvaluator(records, DatasetInfo(list(CLASSES), list(range(1, len(CLASSES) + 1)), "simulated"))
    for i, (b, s, lab) in predictions.items():
        ev.add(i, b, s, lab)
    return ev, ev.evaluate()


def detect(rng, boxes, labels, skill: float):
    """One image's detections: hits (jittered, some of the wrong class), duplicates, background."""
    out_b, out_s, out_l = [], [], []
    for b, lab in zip(boxes, labels):
        if rng.random() < skill:
            jitter = rng.normal(0, 0.08, 4) * np.r_[b[2:] - b[:2], b[2:] - b[:2]]
            wrong = rng.random() < 0.1
            out_b.append(b + jitter)
            out_s.append(rng.uniform(0.4, 1.0) if not wrong else rng.uniform(0.1, 0.6))
            out_l.append(lab if not wrong else lab % len(CLASSES) + 1)
            if rng.random() < 0.1:  # a duplicate
                out_b.append(b + jitter * 1.5)
                out_s.append(rng.uniform(0.1, 0.5))
                out_l.append(lab)
    for _ in range(int(rng.poisson(1.0))):  # background
        xy = rng.uniform(0, 450, 2)
        out_b.append(np.r_[xy, xy + rng.uniform(10, 50, 2)])
        out_s.append(rng.uniform(0.05, 0.6))
        out_l.append(int(rng.integers(1, len(CLASSES) + 1)))
    return (np.array(out_b, np.float32).reshape(-1, 4), np.array(out_s, np.float32),
            np.array(out_l, np.int64))
