"""The data formats, in one table: which exist, how each lists its splits and reads one.

The config's `data.format` choices, the training dataset, the converter and the data check
all read this module, so a format is added in one place. (Writing a format is the
converter's: `convert.WRITERS`.)
"""

from __future__ import annotations

import glob
import os

from ..errors import DataError
from .coco import coco_paths, coco_raws
from .records import DatasetInfo, RawImage
from .voc import split_file_path, voc_raws
from .yolo import find_yaml, load_yolo_yaml, yolo_raws

ON_DISK = ("voc", "coco", "yolo")
CHOICES = ON_DISK + ("synthetic",)  # synthetic: the embedded demo set, generated as COCO


def find_splits(fmt: str, root: str) -> list[str]:
    """The split names a data set has: VOC split files (not VOC's per-class lists such as
    cat_train.txt; `all` when there are none), COCO instances_<split>.json, YOLO data.yaml keys
    or images/ folders."""
    if fmt == "voc":
        found = [os.path.basename(p)[:-4] for p in sorted(glob.glob(split_file_path(root, "*")))]
        return [s for s in found if "_" not in s] or ["all"]
    if fmt == "coco":
        found = [os.path.basename(p)[len("instances_"):-5]
                 for p in sorted(glob.glob(os.path.join(root, "annotations", "instances_*.json")))]
        if not found:
            raise DataError(f"no annotations/instances_<split>.json under {root}")
        return found
    if fmt == "yolo":
        yaml_file = find_yaml(root)
        if yaml_file:
            return sorted(load_yolo_yaml(yaml_file)[1])
        images = os.path.join(root, "images")
        return sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d))) \
            if os.path.isdir(images) else []
    raise DataError(f"data.format must be one of {', '.join(ON_DISK)}, got {fmt!r}")


def read_raws(fmt: str, root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
              use_difficult: bool = True, allow_outside: bool = False, ann_file: str = "",
              image_dir: str = "") -> tuple[list[RawImage], DatasetInfo, dict]:
    """One split of a data set on disk, parsed: (raw images, info, skip counters)."""
    if fmt == "coco":
        ann, images = coco_paths(root, split, ann_file, image_dir)
        return coco_raws(ann, images, classes, ignore_unknown, allow_outside=allow_outside)
    if fmt == "voc":
        return voc_raws(root, split, classes, ignore_unknown, use_difficult, allow_outside)
    if fmt == "yolo":
        return yolo_raws(root, split, classes, ignore_unknown, allow_outside)
    raise DataError(f"data.format must be one of {', '.join(CHOICES)}, got {fmt!r}")
