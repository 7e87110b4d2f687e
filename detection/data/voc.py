"""Pascal VOC reader: `Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/<split>.txt`.

VOC pixel coordinates are 1-based and inclusive; we convert to the 0-based xyxy that
torchvision uses (x1 - 1, y1 - 1), as Detectron2 does, so AP matches the devkit.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np

from .images import read_image_size
from .records import DatasetInfo, ImageRecord, SkipCounter, clean_boxes, log, resolve_classes, summarize


class VOCFormatError(ValueError):
    pass


def _text(node: ET.Element, tag: str, xml_path: str, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise VOCFormatError(f"{xml_path}: missing <{tag}> in <{node.tag}>")
        return None
    return child.text.strip()


def _parse_xml(xml_path: str) -> tuple[dict, list[dict]]:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise VOCFormatError(f"{xml_path}: not valid XML ({e})") from None
    size = root.find("size")
    meta = {"filename": _text(root, "filename", xml_path, required=False)}
    if size is not None:
        meta["width"] = int(float(_text(size, "width", xml_path, required=False) or 0))
        meta["height"] = int(float(_text(size, "height", xml_path, required=False) or 0))
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise VOCFormatError(f"{xml_path}: <object> without <bndbox>")
        try:
            coords = [float(_text(bb, t, xml_path)) for t in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError:
            raise VOCFormatError(f"{xml_path}: <bndbox> coordinates must be numbers") from None
        objects.append(
            {
                "name": _text(obj, "name", xml_path),
                "bbox": coords,
                "difficult": (_text(obj, "difficult", xml_path, required=False) or "0") == "1",
            }
        )
    return meta, objects


def read_voc(
    root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
    use_difficult: bool = True,
) -> tuple[list[ImageRecord], DatasetInfo]:
    """Read one split of a VOC-layout folder into records.

    `use_difficult=False` drops difficult boxes entirely (training); evaluation keeps them
    flagged so they count neither as hits nor misses.
    """
    split_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(split_file):
        raise FileNotFoundError(
            f"VOC split file not found: {split_file}. Expected the layout "
            "<root>/{Annotations,JPEGImages,ImageSets/Main}; check data.root and data.*_split."
        )
    with open(split_file) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise VOCFormatError(f"{split_file}: lists no images")

    parsed = []
    found: Counter = Counter()
    for image_id in ids:
        xml_path = os.path.join(root, "Annotations", f"{image_id}.xml")
        if not os.path.isfile(xml_path):
            raise FileNotFoundError(f"{split_file} lists {image_id!r} but {xml_path} does not exist")
        meta, objects = _parse_xml(xml_path)
        found.update(o["name"] for o in objects)
        parsed.append((image_id, xml_path, meta, objects))

    class_names = resolve_classes(found, classes or [], ignore_unknown, source=f"{root} ({split})")
    index = {c: i + 1 for i, c in enumerate(class_names)}

    degenerate = SkipCounter("degenerate boxes (zero or negative width/height)")
    unknown = SkipCounter("boxes of classes not in data.classes")
    records = []
    for n, (image_id, xml_path, meta, objects) in enumerate(parsed):
        img_path = os.path.join(root, "JPEGImages", meta.get("filename") or f"{image_id}.jpg")
        if not os.path.isfile(img_path):
            alt = os.path.join(root, "JPEGImages", f"{image_id}.jpg")
            if not os.path.isfile(alt):
                raise FileNotFoundError(f"{xml_path}: image {img_path} not found")
            img_path = alt
        w, h = meta.get("width", 0), meta.get("height", 0)
        if w <= 0 or h <= 0:  # some tools write <size> 0 0; trust the image
            w, h = read_image_size(img_path)
        boxes, labels, difficult = [], [], []
        for o in objects:
            x1, y1, x2, y2 = o["bbox"]
            if x2 <= x1 or y2 <= y1:  # judged on the file's own numbers, before the 1-based shift
                degenerate.add(os.path.basename(xml_path))
                continue
            if o["name"] not in index:
                unknown.add(os.path.basename(xml_path))
                continue
            if o["difficult"] and not use_difficult:
                continue
            boxes.append([x1 - 1, y1 - 1, x2, y2])
            labels.append(index[o["name"]])
            difficult.append(o["difficult"])
        boxes_arr, keep = clean_boxes(np.array(boxes, np.float32), w, h)
        if (~keep).any():
            degenerate.add(os.path.basename(xml_path), int((~keep).sum()))
        records.append(
            ImageRecord(
                path=os.path.abspath(img_path), width=w, height=h,
                boxes=boxes_arr[keep],
                labels=np.array(labels, np.int64).reshape(-1)[keep],
                iscrowd=np.zeros(int(keep.sum()), bool),
                difficult=np.array(difficult, bool).reshape(-1)[keep],
                image_id=n,
            )
        )
    source = f"{root} [{split}]"
    degenerate.warn(source)
    unknown.warn(source)
    info = DatasetInfo(
        class_names=class_names, cat_ids=list(range(1, len(class_names) + 1)), source=source,
        skipped={"degenerate_boxes": degenerate.total, "unknown_class_boxes": unknown.total},
    )
    log.info(summarize(records, info))
    return records, info
