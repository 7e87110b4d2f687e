"""Conversion between VOC, COCO json and YOLO: every split read as training reads it, then written.

Reading goes through the same readers (so the same clean-up, counted skips and path
safety); writing keeps every box to within VOC's integer pixel (half a pixel), every class
name, VOC's `difficult` and COCO's `iscrowd` where the target format has them. Images are
hard-linked when source and destination share a file system, else copied; never symlinked
(a link out of the data folder is refused by the readers).
"""

from __future__ import annotations

import filecmp
import glob
import json
import logging
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET

import numpy as np
import yaml

from ..errors import DataError, writing
from .formats import ON_DISK, find_splits, read_raws
from .records import DatasetInfo, ImageRecord, build_records
from .splits import record_names
from .voc import split_file_path, voc_folders
from .yolo import yolo_line

log = logging.getLogger("detection.data")

FORMATS = ON_DISK


# --- reading every split --------------------------------------------------------------------


def read_all(fmt: str, root: str, splits: list[str] | None = None, classes: list[str] | None = None,
             ) -> tuple[dict[str, list[ImageRecord]], list[str], dict[str, DatasetInfo]]:
    """{split: records}, one class list for all splits (labels remapped to it), {split: info}."""
    splits = splits or find_splits(fmt, root)
    parsed = {}
    for split in splits:
        raws, info, skips = read_raws(fmt, root, split, classes, use_difficult=True)
        parsed[split] = (build_records(raws, info, skips), info)
    names = list(classes or [])
    for _, info in parsed.values():
        names += [c for c in info.class_names if c not in names]
    for records, info in parsed.values():
        to_union = np.array([0] + [names.index(c) + 1 for c in info.class_names], np.int64)
        for r in records:
            r.labels = to_union[r.labels]
    return {s: recs for s, (recs, _) in parsed.items()}, names, {s: info for s, (_, info) in parsed.items()}


# --- writing --------------------------------------------------------------------------------


def place_image(src: str, dst: str, copy: bool = False) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.exists(dst):
        return  # the same image in two splits (VOC trainval and train)
    if not copy:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or no hard links here
    shutil.copy2(src, dst)


def write_coco(dst: str, splits: dict, names: list[str], infos: dict, copy: bool = False) -> None:
    """annotations/instances_<split>.json + <split>/ images; category ids 1..K in class order."""
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)]
    for split, records in splits.items():
        images, anns = [], []
        for image_id, (r, name) in enumerate(zip(records, record_names(records, infos[split])), 1):
            place_image(r.path, os.path.join(dst, split, name), copy)
            images.append({"id": image_id, "file_name": name, "width": r.width, "height": r.height})
            for box, label, crowd in zip(r.boxes.tolist(), r.labels.tolist(), r.iscrowd.tolist()):
                w, h = box[2] - box[0], box[3] - box[1]
                anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(label),
                             "bbox": [round(v, 3) for v in (box[0], box[1], w, h)], "area": round(w * h, 3),
                             "iscrowd": int(crowd)})
        path = os.path.join(dst, "annotations", f"instances_{split}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with writing(path), open(path, "w", encoding="utf-8") as f:
            json.dump({"images": images, "annotations": anns, "categories": cats}, f)


def write_yolo(dst: str, splits: dict, names: list[str], infos: dict, copy: bool = False) -> None:
    """images/<split>/, labels/<split>/ (`class cx cy w h`, normalised) and data.yaml."""
    for split, records in splits.items():
        for r, name in zip(records, record_names(records, infos[split])):
            place_image(r.path, os.path.join(dst, "images", split, name), copy)
            lines = [yolo_line(box, label, r.width, r.height)
                     for box, label in zip(r.boxes.tolist(), r.labels.tolist())]
            label_file = os.path.join(dst, "labels", split, os.path.splitext(name)[0] + ".txt")
            os.makedirs(os.path.dirname(label_file), exist_ok=True)
            with writing(label_file), open(label_file, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
    data = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": dict(enumerate(names))}
    with writing(os.path.join(dst, "data.yaml")), open(os.path.join(dst, "data.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def _voc_xml(r: ImageRecord, name: str, names: list[str]) -> bytes:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = os.path.basename(name)
    size = ET.SubElement(root, "size")
    for tag, v in (("width", r.width), ("height", r.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    for box, label, difficult in zip(r.boxes.tolist(), r.labels.tolist(), r.difficult.tolist()):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[label - 1]
        ET.SubElement(obj, "difficult").text = str(int(difficult))
        bb = ET.SubElement(obj, "bndbox")
        x1, y1 = int(round(box[0])), int(round(box[1]))
        x2, y2 = max(x1 + 1, int(round(box[2]))), max(y1 + 1, int(round(box[3])))  # VOC: 1-based, inclusive
        for tag, v in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bb, tag).text = str(v)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8")


def _voc_ids(splits: dict, infos: dict) -> dict[str, list[tuple[str, str, ImageRecord]]]:
    """{split: [(id, name, record)]}; two different images under one id are an error, found before
    anything is written (one image in several splits, linked or copied, is the same image)."""
    seen: dict[str, str] = {}
    out = {}
    for split, records in splits.items():
        out[split] = []
        for r, name in zip(records, record_names(records, infos[split])):
            image_id = os.path.splitext(name)[0]
            first = seen.setdefault(image_id, r.path)
            if first != r.path and not filecmp.cmp(first, r.path, shallow=False):
                raise DataError(f"two different images would share the VOC id {image_id!r}: {first} and {r.path}; "
                                "rename one of them")
            out[split].append((image_id, name, r))
    return out


def write_voc(dst: str, splits: dict, names: list[str], infos: dict, copy: bool = False) -> None:
    """Annotations/<id>.xml, JPEGImages/<id>.<ext>, ImageSets/Main/<split>.txt (1-based pixels)."""
    for split, items in _voc_ids(splits, infos).items():
        for image_id, name, r in items:
            place_image(r.path, os.path.join(dst, "JPEGImages", name), copy)
            xml_path = os.path.join(dst, "Annotations", image_id + ".xml")
            os.makedirs(os.path.dirname(xml_path), exist_ok=True)
            with writing(xml_path), open(xml_path, "wb") as f:
                f.write(_voc_xml(r, name, names))
        listing = split_file_path(dst, split)
        os.makedirs(os.path.dirname(listing), exist_ok=True)
        with writing(listing), open(listing, "w", encoding="utf-8") as f:
            f.write("".join(i + "\n" for i, _, _ in items))


WRITERS = {"voc": write_voc, "coco": write_coco, "yolo": write_yolo}


def convert(src_fmt: str, dst_fmt: str, src: str, dst: str, splits: list[str] | None = None,
            classes: list[str] | None = None, copy: bool = False) -> dict[str, int]:
    """Convert a data set; returns the number of images written per split."""
    for f in (src_fmt, dst_fmt):
        if f not in FORMATS:
            raise DataError(f"format must be one of {', '.join(FORMATS)}, got {f!r}")
    if os.path.exists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):
        raise DataError(f"{dst} exists and is not an empty folder; give a new one (conversion never overwrites)")
    if src_fmt == "voc" and voc_folders(src) == (src, src) and not glob.glob(os.path.join(src, "*.xml")):
        raise DataError(f"{src}: no Annotations/ folder and no .xml files; is this a VOC data set?")
    records, names, infos = read_all(src_fmt, src, splits, classes)
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(dst))}.", dir=parent)
    try:  # written aside and moved in whole: a failure leaves no half data set behind
        WRITERS[dst_fmt](partial, records, names, infos, copy)
        if os.path.isdir(dst):
            os.rmdir(dst)
        os.rename(partial, dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {s: len(r) for s, r in records.items()}
