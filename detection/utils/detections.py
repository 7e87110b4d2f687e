"""The one place model output becomes detection dicts: `{box, label, class, score}`.

Inference writes them to JSON, drawing reads them, validation images and the worst-image
view show them; all build them here, from boxes in the pixels of the image they describe.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("detection.inference")
_phantoms_said: set[str] = set()


def phantom_rows(scores, labels, boxes=None) -> np.ndarray:
    """Rows a model returned that are no detection: label 0 (background, which sigmoid heads and
    some converted graphs emit), a score at or under 0 or not a number, a box that is not four
    finite numbers. OpenVINO's IR of a detector returns one such row (label 0, score -7.6e-14) on an
    image where PyTorch and ONNX Runtime return none; none of them may reach a drawing, a file, an
    evaluation or a tracker."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    bad = (labels < 1) | ~(scores > 0)  # ~(> 0) is also true for NaN
    if boxes is not None:
        bad |= ~np.isfinite(np.asarray(boxes, np.float64).reshape(-1, 4)).all(1)
    return bad


def say_phantoms(count: int, source: str) -> None:
    """Once per model: how many such rows were dropped (the first time they appear)."""
    if count and source not in _phantoms_said:
        _phantoms_said.add(source)
        log.warning("%s returned %d row(s) that are no detection (label 0, or a score at or under 0, or a box that is "
                    "not finite): dropped, here and in every later image (said once)", source or "the model", count)


def to_detections(boxes, scores, labels, class_names: list[str], score_thresh: float = 0.0,
                  digits: int | None = None) -> list[dict]:
    """Detections with score >= `score_thresh`, best first; labels 1..K name class_names[label - 1].

    `digits` rounds boxes (and scores to 4 digits) for files meant to be read.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels, np.int64).reshape(-1)
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= score_thresh]
    out = []
    for i in order:
        box = [round(float(v), digits) for v in boxes[i]] if digits is not None else boxes[i].tolist()
        score = round(float(scores[i]), 4) if digits is not None else float(scores[i])
        out.append({"box": box, "label": int(labels[i]), "class": class_names[labels[i] - 1], "score": score})
    return out


def ground_truth(record, class_names: list[str]) -> list[dict]:
    """A record's boxes as detection dicts (score 1), for drawing next to predictions."""
    return to_detections(record.boxes, np.ones(len(record.boxes)), record.labels, class_names)
