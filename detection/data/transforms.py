"""Box-aware augmentation presets (albumentations) and the resize the model expects.

Images are resized before augmentation (data/pixels.py), in the loader workers and on
uint8, with the same rule as the detector's own transform (shorter side to `min_size`,
longer side capped at `max_size`), so the detector's resize becomes a no-op and augmentation
runs on small images. The scale factor travels in the target, and evaluation maps
predictions back with it.
"""

from __future__ import annotations

import json
import os

import albumentations as A
import cv2
import numpy as np

from ..errors import ConfigError
from ..utils.yaml_io import yaml_load

MAX_PIPELINE_BYTES = 1 << 20  # a serialized pipeline is a few KiB


def resize_scale(height: int, width: int, min_size: int, max_size: int) -> float:
    """torchvision's GeneralizedRCNNTransform rule."""
    return min(min_size / min(height, width), max_size / max(height, width))


PRESETS = ("none", "light", "default", "heavy")
FILE_SUFFIXES = (".yaml", ".yml", ".json")  # data.augment may name an albumentations file


def is_pipeline_file(augment: str) -> bool:
    return str(augment).lower().endswith(FILE_SUFFIXES)


def box_params() -> A.BboxParams:
    """Box safety for every pipeline, the user's too: boxes cut by the canvas edge are clipped to
    it, those with < 30% left or under a pixel wide are dropped, crowd flags travel with them."""
    return A.BboxParams(format="pascal_voc", label_fields=["labels", "iscrowd"],
                        min_visibility=0.3, min_width=1, min_height=1, clip=True)


def build_transforms(augment: str, train: bool) -> A.Compose | None:
    """The per-image training augmentation of `data.augment` (evaluation: none).

    - light: flip and mild colour; for data sets already varied, or very short runs.
    - default: flip, scale jitter 0.75-1.25 on a fixed canvas, colour.
    - heavy: flip, scale jitter 0.5-1.5, a crop that keeps every box, stronger colour; the
      dataset adds mosaic and mixup (data/mixing.py), which need other images.
    - a .yaml/.yml/.json file: an albumentations pipeline in its own serialized form
      (`A.save(pipeline, path, data_format="yaml")`), run with the box safety above.

    Scale jitter is an affine zoom in/out of the content at constant canvas size: the
    detector's resize then keeps the jitter instead of undoing it.
    """
    if not train or augment == "none":
        return None
    if is_pipeline_file(augment):
        return A.Compose(load_pipeline(augment), bbox_params=box_params())
    if augment not in PRESETS:
        raise ConfigError(f"data.augment must be one of {', '.join(PRESETS)} or an albumentations .yaml/.json file, "
                          f"got {augment!r}")
    flip = A.HorizontalFlip(p=0.5)
    if augment == "light":
        steps = [flip, A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.0, p=0.5)]
    elif augment == "default":
        steps = [flip, _zoom((0.75, 1.25), p=0.5),
                 A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8)]
    else:
        steps = [flip, _zoom((0.5, 1.5), p=0.7), A.BBoxSafeRandomCrop(erosion_rate=0.0, p=0.3),
                 A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.4, hue=0.03, p=0.8)]
    return A.Compose(steps, bbox_params=box_params())


def _zoom(scale: tuple[float, float], p: float) -> A.Affine:
    return A.Affine(scale=scale, translate_percent=(-0.1, 0.1), keep_ratio=True,
                    border_mode=cv2.BORDER_CONSTANT, fill=114, p=p)


def load_pipeline(path: str) -> list:
    """The transforms of a user's albumentations file, or one line naming the file and the fix.
    Its own bbox_params (if any) give way to box_params(): the boxes here are pascal_voc pixels."""
    if not os.path.isfile(path):
        raise ConfigError(f"data.augment={path}: no such file; give a preset ({', '.join(PRESETS)}) or an "
                          "albumentations pipeline saved with A.save(pipeline, path, data_format='yaml')")
    try:
        if os.path.getsize(path) > MAX_PIPELINE_BYTES:
            raise ValueError(f"larger than {MAX_PIPELINE_BYTES // 1024} KiB")
        with open(path, encoding="utf-8") as f:  # our bounded reader: albumentations' expands any alias
            text = f.read()
        loaded = A.from_dict(json.loads(text) if path.lower().endswith(".json") else yaml_load(text))
    except Exception as e:  # albumentations raises many kinds for a bad file
        raise ConfigError(f"data.augment={path}: not an albumentations pipeline ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:200] if str(e) else ''}); write it with "
                          "A.save(pipeline, path, data_format='yaml')") from None
    steps = list(loaded.transforms) if isinstance(loaded, A.BaseCompose) else [loaded]
    for t in _every_transform(steps):
        if isinstance(t, A.Mosaic):
            raise ConfigError(f"data.augment={path}: Mosaic needs other images, which a per-image pipeline "
                              "does not have; use data.augment=heavy for mosaic and mixup")
        if type(t).__name__ in CHANGES_THE_TENSOR:
            raise ConfigError(f"data.augment={path}: {type(t).__name__} {CHANGES_THE_TENSOR[type(t).__name__]}; "
                              "remove it: the pipeline takes and gives uint8 HxWx3 images, and the toolkit makes "
                              "the tensor and normalizes inside the model")
    return steps


CHANGES_THE_TENSOR = {  # transforms a detection pipeline here must not hold, and why
    "ToTensorV2": "makes a CxHxW tensor, which the loader then reads as HxWxC",
    "ToTensor": "makes a CxHxW tensor, which the loader then reads as HxWxC",
    "Normalize": "normalizes the image, which the model normalizes again (values near 0)",
    "ToFloat": "scales the image to 0-1, which the loader divides by 255 again",
}


def _every_transform(steps: list):
    """The transforms of a pipeline, those inside OneOf, SomeOf and nested Compose included."""
    for t in steps:
        yield t
        if isinstance(t, A.BaseCompose):
            yield from _every_transform(list(t.transforms))


def apply_transforms(tf: A.Compose | None, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                     iscrowd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if tf is None:
        return image, boxes, labels, iscrowd
    out = tf(image=image, bboxes=boxes, labels=labels, iscrowd=iscrowd)
    boxes = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
    return out["image"], boxes, np.asarray(out["labels"], np.int64), np.asarray(out["iscrowd"], bool)
