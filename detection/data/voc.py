"""Pascal VOC reader: `Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/<split>.txt`.

Also what LabelImg and CVAT write without split files: `Annotations/` + `JPEGImages/` with
no `ImageSets`, or the xml files beside the images in one folder (subfolders too). The split
name `all` reads every xml file; `data.val_fraction` then splits them (see splits.py).

VOC pixel coordinates are 1-based and inclusive; we convert to the 0-based xyxy that
torchvision uses (x1 - 1, y1 - 1), as Detectron2 does, so AP matches the devkit.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections import Counter

from ..errors import DataError
from .images import DEFAULT_MAX_PIXELS, IMAGE_EXTS
from .records import (
    DatasetInfo,
    ImageRecord,
    RawImage,
    SkipCounter,
    build_records,
    inside,
    parse_box,
    resolve_classes,
)


class VOCFormatError(DataError):
    pass


def _text(node: ET.Element, tag: str, xml_path: str, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise VOCFormatError(f"{xml_path}: missing <{tag}> in <{node.tag}>")
        return None
    return child.text.strip()


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _parse_xml(xml_path: str) -> tuple[dict, list[dict]]:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise VOCFormatError(f"{xml_path}: not valid XML ({e})") from None
    meta = {"filename": _text(root, "filename", xml_path, required=False), "size": None}
    size = root.find("size")
    if size is not None:
        w = _number(_text(size, "width", xml_path, required=False))
        h = _number(_text(size, "height", xml_path, required=False))
        if w and h and w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h):
            meta["size"] = (int(w), int(h))  # some tools write 0 0 or text: the file's header decides then
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        coords = None if bb is None else [_number(_text(bb, t, xml_path, required=False))
                                           for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append({
            "name": _text(obj, "name", xml_path),
            "bbox": parse_box(coords) if coords and None not in coords else None,
            "difficult": (_text(obj, "difficult", xml_path, required=False) or "0") == "1",
        })
    return meta, objects


def voc_folders(root: str) -> tuple[str, str]:
    """(annotation folder, image folder): the VOC pair when present, else the root for both (LabelImg)."""
    ann, images = os.path.join(root, "Annotations"), os.path.join(root, "JPEGImages")
    return (ann if os.path.isdir(ann) else root), (images if os.path.isdir(images) else root)


def split_file_path(root: str, split: str) -> str:
    return os.path.join(root, "ImageSets", "Main", f"{split}.txt")


def _all_ids(ann_dir: str) -> tuple[str, list[str]]:
    """Every xml under the annotation folder, as ids relative to it without `.xml`."""
    ids = []
    for folder, dirs, files in os.walk(ann_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(folder, ann_dir)
        ids += [os.path.normpath(os.path.join(rel, f[:-4])).replace(os.sep, "/")
                for f in sorted(files) if f.lower().endswith(".xml")]
    if not ids:
        raise DataError(f"no .xml annotation files in {ann_dir}; expected <root>/Annotations/*.xml or xml files "
                        "beside the images (LabelImg); check data.root")
    return ann_dir, ids


def _split_ids(root: str, split: str) -> tuple[str, list[str]]:
    if split == "all":
        return _all_ids(voc_folders(root)[0])
    split_file = split_file_path(root, split)
    if not os.path.isfile(split_file):
        raise DataError(
            f"VOC split file not found: {split_file}. Expected <root>/{{Annotations,JPEGImages,ImageSets/Main}}; "
            "check data.root and data.*_split. Data without split files (LabelImg): set data.val_fraction=0.2 "
            "to split it by file name, or data.train_split=all"
        )
    with open(split_file, encoding="utf-8", errors="replace") as f:
        listed = [line.split()[0] for line in f if line.strip()]
    if not listed:
        raise VOCFormatError(f"{split_file}: lists no images")
    return split_file, listed


def _image_path(image_dir: str, image_id: str, filename: str | None, xml_path: str, allow_outside: bool) -> str:
    """The image of an xml: its <filename> (beside the id's subfolder), else the id with an image extension."""
    sub = os.path.dirname(image_id)
    if filename:
        path = inside(image_dir, os.path.join(sub, filename), xml_path, allow_outside)
        if os.path.isfile(path):
            return path
    for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS):
        path = inside(image_dir, image_id + ext, xml_path, allow_outside)
        if os.path.isfile(path):
            return path
    return inside(image_dir, os.path.join(sub, filename) if filename else image_id + ".jpg", xml_path, allow_outside)


def voc_raws(
    root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
    use_difficult: bool = True, allow_outside: bool = False,
) -> tuple[list[RawImage], DatasetInfo, dict]:
    """One split of a VOC-layout folder, parsed: (raw images, info, skip counters).

    `use_difficult=False` drops difficult boxes entirely (training); evaluation keeps them
    flagged so they count neither as hits nor misses.
    """
    ann_dir, image_dir = voc_folders(root)
    listing, listed = _split_ids(root, split)
    ids = list(dict.fromkeys(listed))
    repeated = SkipCounter("ids listed more than once in the split file (each used once)")
    for image_id, n in Counter(listed).items():
        if n > 1:
            repeated.add(image_id, n - 1)
    parsed = []
    found: Counter = Counter()
    for image_id in ids:
        xml_path = inside(ann_dir, f"{image_id}.xml", listing, allow_outside)
        if not os.path.isfile(xml_path):
            raise DataError(f"{listing} lists {image_id!r} but {xml_path} does not exist")
        meta, objects = _parse_xml(xml_path)
        found.update(o["name"] for o in objects)
        parsed.append((image_id, xml_path, meta, objects))

    class_names = resolve_classes(found, classes or [], ignore_unknown, source=f"{root} ({split})")
    index = {c: i + 1 for i, c in enumerate(class_names)}
    unknown = SkipCounter("boxes of classes not in data.classes")
    raws = []
    for n, (image_id, xml_path, meta, objects) in enumerate(parsed):
        img_path = _image_path(image_dir, image_id, meta["filename"], xml_path, allow_outside)
        raw = RawImage(img_path, xml_path, n, meta["size"], size_unusable=meta["size"] is None)
        for o in objects:
            if o["name"] not in index:
                unknown.add(os.path.basename(xml_path))
                continue
            if o["difficult"] and not use_difficult:
                continue
            b = o["bbox"]
            # judged on the file's own numbers, before the 1-based shift: x1 == x2 is empty
            raw.boxes.append(None if b is None else [b[0] - 1, b[1] - 1, b[2], b[3]] if b[2] > b[0] and b[3] > b[1]
                             else [b[0], b[1], b[0], b[1]])
            raw.labels.append(index[o["name"]])
            raw.difficult.append(o["difficult"])
        raws.append(raw)
    info = DatasetInfo(class_names=class_names, cat_ids=list(range(1, len(class_names) + 1)),
                       source=f"{root} [{split}]", root=image_dir)
    return raws, info, {"unknown_class_boxes": unknown, "duplicate_ids": repeated}


def read_voc(root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
             use_difficult: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS, allow_outside: bool = False,
             strict: bool = False) -> tuple[list[ImageRecord], DatasetInfo]:
    """Records of one split of a VOC-layout folder (see `voc_raws`)."""
    raws, info, skips = voc_raws(root, split, classes, ignore_unknown, use_difficult, allow_outside)
    return build_records(raws, info, skips, max_pixels, strict), info
