"""Drawing detections: boxes, class names and scores, readable on any background."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def class_color(label: int) -> tuple[int, int, int]:
    h = (label * 0.618033988749895) % 1.0  # golden-ratio hues: neighbours differ
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image: np.ndarray, detections: list[dict]) -> np.ndarray:
    """A copy of the RGB `image` with each {'box', 'label', 'class', 'score'} drawn."""
    out = image.copy()
    thick = max(1, round(min(image.shape[:2]) / 300))
    for d in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in d["box"])
        color = class_color(d["label"])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        text = f"{d['class']} {d['score']:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, 1)
        ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
        cv2.putText(out, text, (x1 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out
