"""A seeded synthetic detection set: shapes on textured backgrounds, in COCO and VOC layouts.

It is the embedded default of the demo and the tests: no download, the same pixels for
the same seed, and a task a pretrained CNN learns in minutes on a CPU. It is generated
on demand into `<root>/coco` and `<root>/voc` and regenerated when its parameters change.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET

import cv2
import numpy as np

from .records import log

CLASSES = ["circle", "square", "triangle", "cross"]
_STAMP = ".synthetic.json"


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour noise plus a gradient and stray lines: clutter to ignore."""
    small = rng.integers(40, 216, (8, 8, 3)).astype(np.uint8)
    img = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    ramp = np.linspace(-30, 30, size, dtype=np.float32)
    img += ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    img = img.clip(0, 255).astype(np.uint8)
    for _ in range(rng.integers(2, 6)):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.line(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color, int(rng.integers(1, 3)))
    return img


def _draw(img: np.ndarray, cls: str, x1: int, y1: int, s: int, color: tuple) -> None:
    cx, cy = x1 + s // 2, y1 + s // 2
    if cls == "circle":
        cv2.circle(img, (cx, cy), s // 2, color, -1, cv2.LINE_AA)
    elif cls == "square":
        cv2.rectangle(img, (x1, y1), (x1 + s - 1, y1 + s - 1), color, -1)
    elif cls == "triangle":
        pts = np.array([[cx, y1], [x1, y1 + s - 1], [x1 + s - 1, y1 + s - 1]], np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    else:  # cross
        t = max(2, s // 4)
        cv2.rectangle(img, (cx - t // 2, y1), (cx + t // 2, y1 + s - 1), color, -1)
        cv2.rectangle(img, (x1, cy - t // 2), (x1 + s - 1, cy + t // 2), color, -1)


def _iou(a: list[int], b: list[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def make_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[str, list[int]]]]:
    img = _background(rng, size)
    objects: list[tuple[str, list[int]]] = []
    n = 0 if rng.random() < 0.05 else int(rng.integers(1, 6))  # some negatives
    for _ in range(n * 4):  # tries
        if len(objects) == n:
            break
        s = int(rng.integers(size // 10, size // 3))
        x1, y1 = (int(v) for v in rng.integers(0, size - s, 2))
        box = [x1, y1, x1 + s, y1 + s]
        if any(_iou(box, b) > 0.1 for _, b in objects):
            continue
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        _draw(img, cls, x1, y1, s, color)
        objects.append((cls, box))
    return img, objects


def _voc_xml(name: str, size: int, objects) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = name
    sz = ET.SubElement(root, "size")
    for tag, v in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(sz, tag).text = str(v)
    for cls, (x1, y1, x2, y2) in objects:
        o = ET.SubElement(root, "object")
        ET.SubElement(o, "name").text = cls
        ET.SubElement(o, "difficult").text = "0"
        bb = ET.SubElement(o, "bndbox")
        # VOC is 1-based inclusive: pixel columns x1..x2-1 become x1+1..x2
        for tag, v in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bb, tag).text = str(v)
    return ET.tostring(root, encoding="unicode")


def generate(root: str, num_train: int, num_val: int, image_size: int, seed: int) -> None:
    """Write the data set into `root` (replacing it); see the module docstring."""
    tmp = root.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    voc = os.path.join(tmp, "voc")
    for d in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc, d), exist_ok=True)
    os.makedirs(os.path.join(tmp, "coco", "annotations"), exist_ok=True)
    categories = [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)]
    ann_id = 1
    for split, count in (("train", num_train), ("val", num_val)):
        img_dir = os.path.join(tmp, "coco", split)
        os.makedirs(img_dir)
        images, anns, ids = [], [], []
        for i in range(count):
            stem = f"{split}_{i:05d}"
            name = stem + ".jpg"
            img, objects = make_image(rng, image_size)
            path = os.path.join(img_dir, name)
            cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            os.link(path, os.path.join(voc, "JPEGImages", name))
            with open(os.path.join(voc, "Annotations", stem + ".xml"), "w") as f:
                f.write(_voc_xml(name, image_size, objects))
            ids.append(stem)
            images.append({"id": i, "file_name": name, "width": image_size, "height": image_size})
            for cls, (x1, y1, x2, y2) in objects:
                anns.append({"id": ann_id, "image_id": i, "category_id": CLASSES.index(cls) + 1,
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
                ann_id += 1
        with open(os.path.join(tmp, "coco", "annotations", f"instances_{split}.json"), "w") as f:
            json.dump({"images": images, "annotations": anns, "categories": categories}, f)
        with open(os.path.join(voc, "ImageSets", "Main", f"{split}.txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    with open(os.path.join(tmp, _STAMP), "w") as f:
        json.dump(dict(num_train=num_train, num_val=num_val, image_size=image_size, seed=seed), f)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)  # readers never see a half-written set


def ensure_synthetic(root: str, num_train: int, num_val: int, image_size: int, seed: int) -> None:
    """Generate into `root` unless it already holds this exact set. Concurrent callers (torchrun
    ranks, two runs at once) wait on a lock: one generates, the others then find it ready."""
    from ..errors import DataError
    from ..utils.filelock import exclusive

    params = dict(num_train=num_train, num_val=num_val, image_size=image_size, seed=seed)
    stamp = os.path.join(root, _STAMP)
    with exclusive(root.rstrip("/") + ".lock"):
        if os.path.isfile(stamp):
            with open(stamp) as f:
                if json.load(f) == params:
                    return
        elif os.path.isdir(root) and os.listdir(root):
            raise DataError(
                f"data.root={root} is not empty and holds no synthetic set; refusing to overwrite it. "
                "Point data.root at an empty or new folder for data.format=synthetic."
            )
        log.info("generating the synthetic data set into %s (%s)", root, params)
        generate(root, **params)
