"""Image decoding: whatever is on disk becomes an 8-bit, 3-channel RGB array.

OpenCV's IMREAD_COLOR already expands grayscale and palette images, drops alpha,
reduces 16-bit to 8-bit and applies the EXIF orientation, which is what annotation
tools show the annotator; we only convert BGR to RGB and fail with the file's name.
"""

from __future__ import annotations

import os

import cv2
import numpy as np


class ImageReadError(OSError):
    pass


def read_image(path: str) -> np.ndarray:
    """HxWx3 uint8 RGB. Raises ImageReadError naming the file when it cannot be decoded."""
    if not os.path.isfile(path):
        raise ImageReadError(f"image not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageReadError(f"cannot decode image (corrupt, truncated or not an image): {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image_size(path: str) -> tuple[int, int]:
    """(width, height) from the header alone, after EXIF orientation, for readers."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            w, h = h, w
    return w, h
