"""Drawing boxes with readable labels on any background (OpenCV: it draws on the uint8 array
the loaders already hold; torchvision's draw_bounding_boxes would need a tensor round trip and
places every label inside its box, where dense scenes hide them)."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def class_color(label: int) -> tuple[int, int, int]:
    h = (label * 0.618033988749895) % 1.0  # golden-ratio hues: neighbours differ
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def line_width_for(image: np.ndarray) -> int:
    return max(1, round(min(image.shape[:2]) / 300))


def draw_box(out: np.ndarray, box, color, thickness: int, text: str | None = None) -> None:
    """One box in place, with `text` on a filled tag above it (below when at the top edge)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
    if not text:
        return
    scale = 0.35 + 0.1 * thickness
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    ty = y1 - 2 if y1 - th - base - 2 >= 0 else y1 + th + base + 2
    cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 2, ty + 1), color, -1)
    cv2.putText(out, text, (x1 + 1, ty - base + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_detections(image: np.ndarray, detections: list[dict], line_width: int | None = None,
                    hide_labels: bool = False, hide_conf: bool = False) -> np.ndarray:
    """A copy of the RGB `image` with each {'box', 'label', 'class', 'score'} drawn."""
    out = image.copy()
    thick = line_width or line_width_for(image)
    for d in detections:
        text = None if hide_labels else (d["class"] if hide_conf else f"{d['class']} {d['score']:.2f}")
        draw_box(out, d["box"], class_color(d["label"]), thick, text)
    return out
