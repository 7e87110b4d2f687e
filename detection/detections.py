"""The one place model output becomes detection dicts: `{box, label, class, score}`.

Inference writes them to JSON, drawing reads them, validation images and the worst-image
view show them; all build them here, from boxes in the pixels of the image they describe.
"""

from __future__ import annotations

import numpy as np


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
