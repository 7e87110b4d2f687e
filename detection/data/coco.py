"""COCO json reader: `annotations/instances_<split>.json` with images under `<split>/`, or
Roboflow's export, `<folder>/_annotations.coco.json` beside each split's images, with the
folders `train/`, `valid/` and `test/`.

Category ids in COCO files are not contiguous (1..90 with gaps); labels become 1..K
and `DatasetInfo.cat_ids` keeps the original id of each label so results can be
written back in the file's own ids.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict

from ..errors import DataError
from .images import DEFAULT_MAX_PIXELS
from .records import (
    DatasetInfo,
    ImageRecord,
    RawImage,
    SkipCounter,
    build_records,
    inside,
    parse_box,
    resolve_classes,
    say_once,
)

log = logging.getLogger("detection.data")

ROBOFLOW_ANN = "_annotations.coco.json"
# a split name as the configs spell it (COCO's train2017, val2017) -> Roboflow's folder names for it
_ROBOFLOW_FOLDERS = {"train": ("train",), "val": ("valid", "val"), "valid": ("valid", "val"),
                     "test": ("test",)}


class COCOFormatError(DataError):
    pass


def _require(obj, key: str, where: str, ann_file: str):
    if not isinstance(obj, dict) or key not in obj or obj[key] is None:
        raise COCOFormatError(f"{ann_file}: {where} has no `{key}` field")
    return obj[key]


def coco_paths(root: str, split: str, ann_file: str = "", image_dir: str = "") -> tuple[str, str]:
    """The annotation json and image folder of a split: the given ones, else COCO's naming,
    else Roboflow's export (`train2017` or `train` -> `train/`, `val2017` -> `valid/`), said once."""
    if ann_file:
        return os.path.join(root, ann_file), os.path.join(root, image_dir or split)
    coco_ann = os.path.join(root, "annotations", f"instances_{split}.json")
    folder = None if os.path.isfile(coco_ann) else roboflow_folder(root, split)
    if folder is None:
        return coco_ann, os.path.join(root, image_dir or split)
    ann = os.path.join(root, folder, ROBOFLOW_ANN)
    say_once(f"reading Roboflow's COCO layout: split {split} is {ann}"
             + ("" if image_dir else ", images beside it (data.train_ann / data.val_ann and their _images set other "
                                     "files)"))
    return ann, os.path.join(root, image_dir or folder)


def roboflow_folder(root: str, split: str) -> str | None:
    """The folder under `root` holding Roboflow's `_annotations.coco.json` for `split`, if any."""
    base = re.sub(r"\d+$", "", split)  # train2017 -> train
    for name in (split, *_ROBOFLOW_FOLDERS.get(base, ())):
        if os.path.isfile(os.path.join(root, name, ROBOFLOW_ANN)):
            return name
    return None


def roboflow_splits(root: str) -> list[str]:
    """The folders of a Roboflow COCO export (each holding `_annotations.coco.json`)."""
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, ROBOFLOW_ANN)))


def _load(ann_file: str) -> dict:
    if not os.path.isfile(ann_file):
        raise DataError(
            f"COCO annotation file not found: {ann_file}. Expected <root>/annotations/instances_<split>.json "
            f"or Roboflow's <root>/<train|valid|test>/{ROBOFLOW_ANN}; check data.root and data.train_split / "
            "data.val_split, or set data.train_ann / data.val_ann."
        )
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise COCOFormatError(f"{ann_file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise COCOFormatError(f"{ann_file}: the top level must be an object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise COCOFormatError(f"{ann_file}: missing the `{key}` list")
    return data


def _categories(data: dict, ann_file: str) -> dict:
    cats = {}
    for c in data["categories"]:
        cid = _require(c, "id", "a category", ann_file)
        if cid in cats:
            raise COCOFormatError(f"{ann_file}: category id {cid} appears twice")
        cats[cid] = str(_require(c, "name", f"category {cid}", ann_file))
    if len(set(cats.values())) != len(cats):
        raise COCOFormatError(f"{ann_file}: two categories share a name")
    return cats


def _group_categories(data: dict, cats: dict, found: Counter) -> set:
    """Category ids that only group others: no box, and the `supercategory` of another category.
    Roboflow writes one (its project's name, id 0, e.g. `pieces` over 12 chess pieces); trained as a
    class it would be a class with no example that the detector still predicts."""
    parents = {str(c.get("supercategory")) for c in data["categories"]
               if isinstance(c, dict) and c.get("supercategory") not in (None, "", "none")
               and str(c.get("supercategory")) != str(c.get("name"))}
    return {cid for cid, name in cats.items() if name in parents and not found[name]}


def _images(data: dict, ann_file: str) -> dict:
    """image id -> image entry; a duplicate id is an error (it would merge two files' boxes)."""
    images = {}
    for img in data["images"]:
        image_id = _require(img, "id", "an image", ann_file)
        if image_id in images:
            raise COCOFormatError(f"{ann_file}: image id {image_id} is used by both "
                                  f"{images[image_id].get('file_name')!r} and {img.get('file_name')!r}; "
                                  "image ids must be unique")
        _require(img, "file_name", f"image {image_id}", ann_file)
        images[image_id] = img
    return images


def _declared_size(img: dict) -> tuple[int, int] | None:
    try:
        w, h = int(img["width"]), int(img["height"])
    except (KeyError, TypeError, ValueError, OverflowError):  # missing, null, text, NaN, inf
        return None
    return (w, h) if w > 0 and h > 0 else None


def _group_annotations(data: dict, cats: dict, images: dict, ann_file: str):
    """Annotations by image id, boxes per class name, and the counted oddities (orphans, repeated ids)."""
    anns_by_image = defaultdict(list)
    found: Counter = Counter()
    orphans = SkipCounter("annotations dropped: their image_id is not in `images`")
    repeated = SkipCounter("annotation ids used more than once (the annotations are kept)")
    ann_ids: set = set()
    for a in data["annotations"]:
        image_id = _require(a, "image_id", "an annotation", ann_file)  # also: `a` is an object
        if a.get("id") is not None:
            if a["id"] in ann_ids:
                repeated.add(f"annotation id {a['id']}")
            ann_ids.add(a["id"])
        cat = _require(a, "category_id", f"annotation {a.get('id')}", ann_file)
        if cat not in cats:
            raise COCOFormatError(f"{ann_file}: annotation {a.get('id')} has category_id {cat}, not in `categories`")
        if image_id not in images:
            orphans.add(f"image_id {image_id}")
            continue
        anns_by_image[image_id].append(a)
        found[cats[cat]] += 1
    return anns_by_image, found, orphans, repeated


def coco_raws(ann_file: str, image_dir: str, classes: list[str] | None = None, ignore_unknown: bool = False,
              require_images: bool = True, allow_outside: bool = False) -> tuple[list[RawImage], DatasetInfo, dict]:
    """A COCO json, parsed: (raw images, info, skip counters)."""
    data = _load(ann_file)
    cats = _categories(data, ann_file)
    images = _images(data, ann_file)
    anns_by_image, found, orphans, repeated = _group_annotations(data, cats, images, ann_file)
    groups = set() if classes else _group_categories(data, cats, found)
    if groups:
        names = [repr(cats[g]) for g in sorted(groups)]
        log.info("%s: left out %s%s: no box, and the super-category of other categories (set data.classes to "
                 "choose the classes yourself)", ann_file, ", ".join(names[:10]),
                 f" and {len(names) - 10} more" if len(names) > 10 else "")
    wanted = classes or [cats[k] for k in sorted(cats) if k not in groups]  # default: the file's order of ids
    class_names = resolve_classes(found, wanted, ignore_unknown, source=ann_file)
    name_to_cat = {v: k for k, v in cats.items()}
    missing = [c for c in class_names if c not in name_to_cat]
    if missing:
        raise COCOFormatError(
            f"{ann_file}: data.classes names {missing}, which are not categories of this file "
            f"(it has {sorted(name_to_cat)[:10]}...)"
        )
    label_of_cat = {name_to_cat[c]: i + 1 for i, c in enumerate(class_names)}
    unknown = SkipCounter("boxes of classes not in data.classes")
    raws = []
    for image_id, img in images.items():
        where = f"{os.path.basename(ann_file)} image {image_id}"
        path = inside(image_dir, str(img["file_name"]), f"{ann_file}: image {image_id}", allow_outside) \
            if require_images else os.path.join(image_dir, str(img["file_name"]))
        size = _declared_size(img)
        if not require_images and size is None:
            raise COCOFormatError(f"{ann_file}: image {image_id} needs positive `width` and `height`")
        raw = RawImage(path, where, image_id, size, areas=[], size_unusable=size is None)
        for a in anns_by_image.get(image_id, []):
            if a["category_id"] not in label_of_cat:
                unknown.add(where)
                continue
            b = parse_box(a.get("bbox"))
            raw.boxes.append(None if b is None else [b[0], b[1], b[0] + b[2], b[1] + b[3]])
            raw.labels.append(label_of_cat[a["category_id"]])
            raw.iscrowd.append(bool(a.get("iscrowd", 0)))
            area = a.get("area")
            raw.areas.append(float(area) if isinstance(area, (int, float)) and area == area else
                             (b[2] * b[3] if b else 0.0))
        raws.append(raw)
    info = DatasetInfo(class_names=class_names, cat_ids=[name_to_cat[c] for c in class_names], source=ann_file,
                       root=image_dir)
    return raws, info, {"orphan_annotations": orphans, "unknown_class_boxes": unknown,
                        "duplicate_annotation_ids": repeated}


def read_coco(
    ann_file: str, image_dir: str, classes: list[str] | None = None, ignore_unknown: bool = False,
    require_images: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS, allow_outside: bool = False,
    strict: bool = False,
) -> tuple[list[ImageRecord], DatasetInfo]:
    """Records of a COCO json; `require_images=False` (evaluation from files) skips the disk checks."""
    raws, info, skips = coco_raws(ann_file, image_dir, classes, ignore_unknown, require_images, allow_outside)
    return build_records(raws, info, skips, max_pixels, strict, read_headers=require_images), info
