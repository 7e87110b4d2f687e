"""Writing a data set in each format on disk (the converter's output), from records as the
readers give them: every box kept to within VOC's integer pixel, every class name, VOC's
`difficult` and COCO's `iscrowd` where the format has them. Images are hard-linked when
source and destination share a file system, else copied; never symlinked (a link out of
the data folder is refused by the readers).
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import xml.etree.ElementTree as ET

import yaml

from ..errors import DataError, writing
from .records import ImageRecord
from .splits import record_names
from .voc import split_file_path
from .yolo import yolo_line

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
