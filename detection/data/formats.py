"""The data formats, in one table: which exist, how each lists its splits, reads one, and
is written.

The config's `data.format` choices, the training dataset, the converter and the data check
all read this module, so a format is added in one place: a reader module, a writer in
`writers`, and a row of `FORMATS`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DataError
from .coco import coco_paths, coco_raws, roboflow_splits
from .records import DatasetInfo, RawImage
from .voc import split_file_path, voc_raws
from .writers import write_coco, write_voc, write_yolo
from .yolo import find_yaml, load_yolo_yaml, yolo_raws


def voc_splits(root: str) -> list[str]:
    """VOC split files (not VOC's per-class lists such as cat_train.txt); `all` when there are none."""
    found = [os.path.basename(p)[:-4] for p in sorted(glob.glob(split_file_path(root, "*")))]
    return [s for s in found if "_" not in s] or ["all"]


def coco_splits(root: str) -> list[str]:
    """annotations/instances_<split>.json, else the folders of Roboflow's export."""
    found = [os.path.basename(p)[len("instances_"):-5]
             for p in sorted(glob.glob(os.path.join(root, "annotations", "instances_*.json")))] or roboflow_splits(root)
    if not found:
        raise DataError(f"no annotations/instances_<split>.json (nor Roboflow's <split>/_annotations.coco.json) "
                        f"under {root}")
    return found


def yolo_splits(root: str) -> list[str]:
    """The data.yaml's split keys, else the folders under images/."""
    yaml_file = find_yaml(root)
    if yaml_file:
        return sorted(load_yolo_yaml(yaml_file)[1])
    images = os.path.join(root, "images")
    return sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d))) \
        if os.path.isdir(images) else []


def split_exists(dcfg, split: str) -> bool:
    """Whether the data set of `dcfg` has a split of that name, as its reader would find it."""
    fmt, root = dcfg["format"], dcfg["root"]
    try:
        if fmt == "coco":
            return os.path.isfile(coco_paths(root, split)[0])
        if fmt == "voc":
            return os.path.isfile(split_file_path(root, split))
        if fmt == "yolo":
            return split in yolo_splits(root)
    except (DataError, OSError):
        return False
    return True


def read_coco(root, split, classes, ignore_unknown, use_difficult, allow_outside, ann_file, image_dir):
    ann, images = coco_paths(root, split, ann_file, image_dir)
    return coco_raws(ann, images, classes, ignore_unknown, allow_outside=allow_outside)


def read_voc(root, split, classes, ignore_unknown, use_difficult, allow_outside, ann_file, image_dir):
    return voc_raws(root, split, classes, ignore_unknown, use_difficult, allow_outside)


def read_yolo(root, split, classes, ignore_unknown, use_difficult, allow_outside, ann_file, image_dir):
    return yolo_raws(root, split, classes, ignore_unknown, allow_outside)


@dataclass(frozen=True)
class Format:
    splits: Callable[[str], list[str]]  # root -> split names
    read: Callable  # (root, split, classes, ignore_unknown, use_difficult, allow_outside, ann_file, image_dir)
    write: Callable  # (dst, {split: records}, class names, {split: info}, copy)


FORMATS = {
    "voc": Format(voc_splits, read_voc, write_voc),
    "coco": Format(coco_splits, read_coco, write_coco),
    "yolo": Format(yolo_splits, read_yolo, write_yolo),
}
ON_DISK = tuple(FORMATS)
CHOICES = ON_DISK + ("synthetic",)  # synthetic: the embedded demo set, generated as COCO


def on_disk(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise DataError(f"data.format must be one of {', '.join(ON_DISK)}, got {fmt!r}")
    return FORMATS[fmt]


def find_splits(fmt: str, root: str) -> list[str]:
    """The split names a data set of format `fmt` has."""
    return on_disk(fmt).splits(root)


def read_raws(fmt: str, root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
              use_difficult: bool = True, allow_outside: bool = False, ann_file: str = "",
              image_dir: str = "") -> tuple[list[RawImage], DatasetInfo, dict]:
    """One split of a data set on disk, parsed: (raw images, info, skip counters)."""
    return on_disk(fmt).read(root, split, classes, ignore_unknown, use_difficult, allow_outside, ann_file, image_dir)


def write(fmt: str, dst: str, splits: dict, names: list[str], infos: dict, copy: bool = False) -> None:
    """Write {split: records} under `dst` in format `fmt`."""
    on_disk(fmt).write(dst, splits, names, infos, copy)


SHIPPED_CONFIG = {"voc": "configs/voc_frcnn.yaml (configs/labelimg_frcnn.yaml without split files)",
                  "coco": "configs/coco_frcnn.yaml", "yolo": "configs/yolo_frcnn.yaml"}


def looks_like(root: str) -> dict[str, str]:
    """{format: the evidence} for each format whose marks `root` has: a data set's YAML or
    images/ + labels/ (yolo), COCO's annotations/instances_*.json or Roboflow's
    _annotations.coco.json (coco), Annotations/ or .xml files (voc). Only the top level is
    looked at, so this is cheap on any folder."""
    if os.path.isfile(root):
        return {"yolo": "a YAML file"} if root.lower().endswith((".yaml", ".yml")) else {}
    if not os.path.isdir(root):
        return {}
    found = {}
    try:
        if find_yaml(root):
            found["yolo"] = "a data.yaml"
    except DataError:
        found["yolo"] = "YAML files with `names`"
    if "yolo" not in found and os.path.isdir(os.path.join(root, "images")) and \
            os.path.isdir(os.path.join(root, "labels")):
        found["yolo"] = "images/ and labels/"
    if glob.glob(os.path.join(root, "annotations", "instances_*.json")):
        found["coco"] = "annotations/instances_*.json"
    elif roboflow_splits(root):
        found["coco"] = "<split>/_annotations.coco.json"
    if os.path.isdir(os.path.join(root, "Annotations")) or glob.glob(os.path.join(root, "*.xml")):
        found["voc"] = "Annotations/ or .xml files"
    return found


def guard_format(dcfg, cfg_file: str | None = None) -> None:
    """One line when data.root carries another format's marks and none of data.format's: the
    reader would otherwise fail on paths built for the wrong layout (the COCO config on a YOLO
    data.yaml looks for `data.yaml/annotations/...`). Explicit annotation files skip the check."""
    fmt, root = dcfg["format"], dcfg["root"]
    if fmt not in FORMATS or dcfg.get("train_ann") or dcfg.get("val_ann"):
        return
    marks = looks_like(root)
    if not marks or fmt in marks:
        return
    other, evidence = next(iter(marks.items()))
    where = f" (from {cfg_file})" if cfg_file else ""
    raise DataError(f"data.root={root} looks like {other} data ({evidence}), but data.format is {fmt}{where}: "
                    f"train it with {SHIPPED_CONFIG[other]}, or set data.format={other}")
