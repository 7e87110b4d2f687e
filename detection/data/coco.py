"""COCO json reader: `annotations/instances_<split>.json` with images under `<split>/`.

Category ids in COCO files are not contiguous (1..90 with gaps); labels become 1..K
and `DatasetInfo.cat_ids` keeps the original id of each label so results can be
written back in the file's own ids.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

import numpy as np

from .records import DatasetInfo, ImageRecord, SkipCounter, clean_boxes, log, resolve_classes, summarize


class COCOFormatError(ValueError):
    pass


def _require(obj: dict, key: str, where: str, ann_file: str):
    if key not in obj:
        raise COCOFormatError(f"{ann_file}: {where} has no `{key}` field")
    return obj[key]


def coco_paths(root: str, split: str, ann_file: str = "", image_dir: str = "") -> tuple[str, str]:
    """The annotation json and image folder of a split, by COCO's naming unless given."""
    ann = os.path.join(root, ann_file or os.path.join("annotations", f"instances_{split}.json"))
    return ann, os.path.join(root, image_dir or split)


def read_coco(
    ann_file: str, image_dir: str, classes: list[str] | None = None, ignore_unknown: bool = False,
    require_images: bool = True,
) -> tuple[list[ImageRecord], DatasetInfo]:
    """Records of a COCO json; `require_images=False` (evaluation from files) skips the disk checks."""
    if not os.path.isfile(ann_file):
        raise FileNotFoundError(
            f"COCO annotation file not found: {ann_file}. Expected <root>/annotations/instances_<split>.json; "
            "check data.root and data.*_split, or set data.train_ann / data.val_ann."
        )
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise COCOFormatError(f"{ann_file}: not valid JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise COCOFormatError(f"{ann_file}: missing the `{key}` list")

    cats = {}
    for c in data["categories"]:
        cats[_require(c, "id", "a category", ann_file)] = _require(c, "name", "a category", ann_file)
    if len(set(cats.values())) != len(cats):
        raise COCOFormatError(f"{ann_file}: two categories share a name")

    anns_by_image = defaultdict(list)
    found: Counter = Counter()
    for a in data["annotations"]:
        image_id = _require(a, "image_id", "an annotation", ann_file)
        cat = _require(a, "category_id", f"annotation {a.get('id')}", ann_file)
        if cat not in cats:
            raise COCOFormatError(f"{ann_file}: annotation {a.get('id')} has category_id {cat}, not in `categories`")
        anns_by_image[image_id].append(a)
        found[cats[cat]] += 1

    wanted = classes or [cats[k] for k in sorted(cats)]  # default: the file's order of ids
    class_names = resolve_classes(found, wanted, ignore_unknown, source=ann_file)
    name_to_cat = {v: k for k, v in cats.items()}
    missing = [c for c in class_names if c not in name_to_cat]
    if missing:
        raise COCOFormatError(
            f"{ann_file}: data.classes names {missing}, which are not categories of this file "
            f"(it has {sorted(name_to_cat)[:10]}...)"
        )
    label_of_cat = {name_to_cat[c]: i + 1 for i, c in enumerate(class_names)}

    degenerate = SkipCounter("degenerate boxes (zero or negative width/height)")
    unknown = SkipCounter("boxes of classes not in data.classes")
    records = []
    missing_images = []
    for img in data["images"]:
        image_id = _require(img, "id", "an image", ann_file)
        file_name = _require(img, "file_name", f"image {image_id}", ann_file)
        path = os.path.join(image_dir, file_name)
        if require_images and not os.path.isfile(path):
            missing_images.append(path)
            continue
        w = int(_require(img, "width", f"image {image_id}", ann_file))
        h = int(_require(img, "height", f"image {image_id}", ann_file))
        boxes, labels, crowd, areas = [], [], [], []
        for a in anns_by_image.get(image_id, []):
            bbox = _require(a, "bbox", f"annotation {a.get('id')}", ann_file)
            if len(bbox) != 4:
                raise COCOFormatError(f"{ann_file}: annotation {a.get('id')} bbox must be [x, y, w, h]")
            if a["category_id"] not in label_of_cat:
                unknown.add(file_name)
                continue
            x, y, bw, bh = (float(v) for v in bbox)
            boxes.append([x, y, x + bw, y + bh])
            labels.append(label_of_cat[a["category_id"]])
            crowd.append(bool(a.get("iscrowd", 0)))
            areas.append(float(a.get("area", bw * bh)))
        boxes_arr, keep = clean_boxes(np.array(boxes, np.float32), w, h)
        if (~keep).any():
            degenerate.add(file_name, int((~keep).sum()))
        records.append(
            ImageRecord(
                path=os.path.abspath(path), width=w, height=h, boxes=boxes_arr[keep],
                labels=np.array(labels, np.int64).reshape(-1)[keep],
                iscrowd=np.array(crowd, bool).reshape(-1)[keep],
                difficult=np.zeros(int(keep.sum()), bool), image_id=image_id,
                areas=np.array(areas, np.float64).reshape(-1)[keep],
            )
        )
    if missing_images:
        if not records:
            raise FileNotFoundError(
                f"{ann_file}: none of its {len(missing_images)} images were found under {image_dir}, "
                f"e.g. {missing_images[0]}; check data.root / data.*_images"
            )
        log.warning("%s: %d images listed but missing on disk, skipped, e.g. %s",
                    ann_file, len(missing_images), missing_images[0])
    degenerate.warn(ann_file)
    unknown.warn(ann_file)
    info = DatasetInfo(
        class_names=class_names, cat_ids=[name_to_cat[c] for c in class_names], source=ann_file,
        skipped={"degenerate_boxes": degenerate.total, "unknown_class_boxes": unknown.total,
                 "missing_images": len(missing_images)},
    )
    log.info(summarize(records, info))
    return records, info
