"""Box-aware augmentation presets (albumentations) and the resize the model expects.

Images are resized before augmentation (data/pixels.py), in the loader workers and on
uint8, with the same rule as the detector's own transform (shorter side to `min_size`,
longer side capped at `max_size`), so the detector's resize becomes a no-op and augmentation
runs on small images. The scale factor travels in the target, and evaluation maps
predictions back with it.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """torchvision's GeneralizedRCNNTransform rule."""
    return min(min_size / min(height, width), max_size / max(height, width))


def build_transforms(preset: str, train: bool) -> A.Compose | None:
    """`default` train: flip, scale jitter on a fixed canvas, photometric. Eval: nothing more.

    Scale jitter is an affine zoom in/out of the content at constant canvas size: the
    detector's resize then keeps the jitter instead of undoing it.
    """
    if preset not in ("default", "none"):
        raise ValueError(f"data.augment must be default or none, got {preset!r}")
    if not train or preset == "none":
        return None
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(scale=(0.75, 1.25), translate_percent=(-0.1, 0.1), keep_ratio=True,
                     border_mode=cv2.BORDER_CONSTANT, fill=114, p=0.5),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8),
        ],
        # boxes cut by the canvas edge are clipped; those with < 30% left are dropped
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels", "iscrowd"],
                                 min_visibility=0.3, min_width=1, min_height=1, clip=True),
    )


def apply_transforms(tf: A.Compose | None, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                     iscrowd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if tf is None:
        return image, boxes, labels, iscrowd
    out = tf(image=image, bboxes=boxes, labels=labels, iscrowd=iscrowd)
    boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    return out["image"], boxes, np.asarray(out["labels"], np.int64), np.asarray(out["iscrowd"], bool)
