"""YOLO reader: the Ultralytics / Roboflow layout, one `class cx cy w h` line per box (normalised).

`data.root` is a `data.yaml` (keys `path`, `train`, `val`, optional `test`, `names` as a list
or an `{id: name}` map), a folder holding one, or a folder with `images/<split>/` and
`labels/<split>/` (class names then from `classes.txt` or `data.classes`, in id order). A
split entry is a folder of images, a `.txt` list of image paths, or a list of those. The
label of `.../images/.../x.jpg` is `.../labels/.../x.txt`, as Ultralytics has it.

Images without a label file are negatives, counted and named. Empty lines, values outside
[0, 1], repeated lines and label files without an image are counted and named; a class id
beyond `names`, or an `nc` that disagrees with `names`, is an error naming the file. Polygon
lines (segmentation exports) become their box. Files Windows tools write (a UTF-8 byte-order
mark, CRLF line ends) read as any other.
"""

from __future__ import annotations

import math
import os
from collections import Counter

import yaml

from ..errors import DataError
from ..utils.yaml_io import yaml_load
from .images import DEFAULT_MAX_PIXELS, IMAGE_EXTS
from .records import DatasetInfo, ImageRecord, RawImage, SkipCounter, build_records, inside, resolve_classes, say_once

META_KEYS = {"path", "names", "nc", "download", "yaml_file", "roboflow", "license", "url"}


class YOLOFormatError(DataError):
    pass


def find_yaml(root: str) -> str | None:
    """`root` itself, its data.yaml (or data.yml, dataset.yaml), else the one YAML beside it that
    has `names` (exports also call it config.yaml or <project>.yaml), said in the log."""
    if os.path.isfile(root):
        return root
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    if not os.path.isdir(root):
        return None
    named = [p for p in sorted(os.listdir(root)) if p.lower().endswith((".yaml", ".yml")) and _has_names(root, p)]
    if len(named) > 1:
        raise DataError(f"{root}: no data.yaml, and several YAML files have `names` ({', '.join(named)}): set "
                        "data.root to the one that describes the data set")
    if not named:
        return None
    found = os.path.join(root, named[0])
    say_once(f"{root}: no data.yaml; reading {named[0]}, the one YAML here with `names`")
    return found


MAX_YAML_BYTES = 1 << 20  # a data set's YAML is a few kB (1000 class names fit in 100 kB)


def _has_names(root: str, file: str) -> bool:
    """A data set's YAML among the others beside it; a file over MAX_YAML_BYTES is none, unread."""
    path = os.path.join(root, file)
    try:
        if os.path.getsize(path) > MAX_YAML_BYTES:
            return False
        with open(path, encoding="utf-8-sig") as f:
            data = yaml_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "names" in data


def load_yolo_yaml(yaml_file: str) -> tuple[str, dict, list[str]]:
    """(base folder, split entries, class names) of a data.yaml."""
    try:
        with open(yaml_file, encoding="utf-8-sig") as f:
            data = yaml_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise YOLOFormatError(f"{yaml_file}: cannot be read as YAML ({e})") from None
    if not isinstance(data, dict):
        raise YOLOFormatError(f"{yaml_file}: expected keys path, train, val, names")
    here = os.path.dirname(os.path.abspath(yaml_file))
    base = str(data.get("path") or here)
    base = base if os.path.isabs(base) else os.path.normpath(os.path.join(here, base))
    if not os.path.isdir(base) and data.get("path"):
        base = here  # an export moved from the machine it was made on: its `path` is stale
    if os.path.commonpath([os.path.realpath(here), os.path.realpath(base)]) != os.path.realpath(here):
        say_once(f"{yaml_file}: `path: {data['path']}` leads outside the YAML's folder; reading the data "
                  f"from {base}")
    entries = {k: v for k, v in data.items() if k not in META_KEYS and v and
               (isinstance(v, str) or isinstance(v, list) and all(isinstance(e, str) for e in v))}
    names = _names(data.get("names"), yaml_file)
    nc = data.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc != len(names)):
        raise YOLOFormatError(f"{yaml_file}: `nc: {nc}` disagrees with `names`, which lists {len(names)} classes; "
                              f"set nc: {len(names)} (or fix `names`)")
    return base, entries, names


def _names(names, where: str) -> list[str]:
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise YOLOFormatError(f"{where}: `names` keys must be class ids 0..K-1") from None
        if ids != list(range(len(ids))):
            raise YOLOFormatError(f"{where}: `names` ids must run 0..{len(ids) - 1} without gaps, got {ids[:10]}")
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    raise YOLOFormatError(f"{where}: `names` must list the class names (a list, or an {{id: name}} map)")


def yolo_layout(root: str, split: str, classes: list[str] | None) -> tuple[str, list[str], list[str], str]:
    """(base folder, split entries, class names in id order, where they came from) of a YOLO data set."""
    yaml_file = find_yaml(root)
    if yaml_file:
        base, entries, names = load_yolo_yaml(yaml_file)
        if split not in entries:
            raise DataError(f"{yaml_file}: has no `{split}` entry (it has {sorted(entries)}); "
                            "set data.train_split / data.val_split to one of them, or use data.val_fraction")
        entry = entries[split]
        return base, entry if isinstance(entry, list) else [entry], names, yaml_file
    if not os.path.isdir(os.path.join(root, "images", split)):
        raise DataError(f"YOLO data not found at {root}: expected a data.yaml, or images/{split}/ and "
                        f"labels/{split}/ under it; check data.root and data.*_split")
    names_file = os.path.join(root, "classes.txt")
    if os.path.isfile(names_file):
        with open(names_file, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f if line.strip()]
        return root, [os.path.join("images", split)], names, names_file
    if classes:
        return root, [os.path.join("images", split)], list(classes), "data.classes"
    raise DataError(f"{root}: YOLO labels hold class ids, not names: add a data.yaml with `names`, a classes.txt, "
                    "or set data.classes in id order")


def _resolve(base: str, entry: str) -> str:
    path = entry if os.path.isabs(entry) else os.path.normpath(os.path.join(base, entry))
    if not os.path.exists(path) and entry.startswith("../"):  # Roboflow writes ../train/images beside data.yaml
        path = os.path.normpath(os.path.join(base, entry[3:]))
    return path


def _image_list(base: str, entries: list[str], allow_outside: bool) -> list[str]:
    """Image paths of a split: folders walked (sorted), `.txt` lists read; each kept inside `base`."""
    images = []
    for entry in entries:
        path = _resolve(base, str(entry))
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                images += [os.path.join(folder, f) for f in sorted(files)
                           if os.path.splitext(f)[1].lower() in IMAGE_EXTS]
        elif os.path.isfile(path) and path.endswith(".txt"):
            with open(path, encoding="utf-8-sig", errors="replace") as f:
                listed = [line.strip() for line in f if line.strip()]
            images += [_listed_path(p, os.path.dirname(path), base) for p in listed]
        else:
            raise DataError(f"YOLO split entry {entry!r} resolves to {path}, which is neither a folder nor a .txt list")
    if not allow_outside:
        for p in images:
            inside(base, os.path.relpath(p, base), f"{base}: split {entries}")
    return list(dict.fromkeys(images))


def _listed_path(entry: str, list_dir: str, base: str) -> str:
    """A path from a .txt list: absolute, or relative to the list's folder, else to the data set's base."""
    if os.path.isabs(entry):
        return entry
    beside = os.path.normpath(os.path.join(list_dir, entry))
    return beside if os.path.exists(beside) else os.path.normpath(os.path.join(base, entry))


def yolo_line(box, label: int, width: int, height: int) -> str:
    """`class cx cy w h` of an xyxy pixel box, normalised; `label` is 1-based as in records."""
    x1, y1, x2, y2 = box
    return (f"{label - 1} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")


def label_path(image_path: str) -> str:
    """Ultralytics' rule: the last `/images/` becomes `/labels/`, the extension `.txt`."""
    head, sep, tail = image_path.rpartition(f"{os.sep}images{os.sep}")
    stem = os.path.splitext(tail if sep else image_path)[0]
    return f"{head}{os.sep}labels{os.sep}{stem}.txt" if sep else stem + ".txt"


class _LineCounters:
    def __init__(self):
        self.empty = SkipCounter("empty lines in label files (ignored)")
        self.invalid = SkipCounter("label lines dropped: not `class cx cy w h` numbers (or a polygon)")
        self.outside = SkipCounter("boxes with values outside [0, 1] (clipped to the image)")
        self.repeated = SkipCounter("repeated label lines (used once)")
        self.orphans = SkipCounter("label files without an image (not used)")
        self.unlabelled = SkipCounter("images without a label file (used as negatives: no boxes)")

    def as_dict(self) -> dict:
        return {"empty_label_lines": self.empty, "invalid_label_lines": self.invalid,
                "out_of_range_labels": self.outside, "repeated_labels": self.repeated, "orphan_labels": self.orphans,
                "images_without_labels": self.unlabelled}


def _class_id(token: str, where: str, num_names: int) -> int:
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if not (value.is_integer() and 0 <= value < num_names):
        raise YOLOFormatError(f"{where}: class id {token!r} is not one of 0..{num_names - 1} (the {num_names} "
                              "`names`); fix the line or add the class to `names`")
    return int(value)


def _parse_line(line: str, where: str, num_names: int, counters: _LineCounters, name: str):
    """(class id, normalised xyxy) of one label line, or None when it is dropped."""
    parts = line.split()
    if not parts:
        counters.empty.add(name)
        return None
    cls = _class_id(parts[0], where, num_names)
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError:
        values = []
    box_or_polygon = len(values) == 4 or (len(values) >= 6 and len(values) % 2 == 0)
    if not all(math.isfinite(v) for v in values) or not box_or_polygon:
        counters.invalid.add(name)
        return None
    if len(values) == 4:
        cx, cy, w, h = values
        box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    else:
        xs, ys = values[0::2], values[1::2]
        box = [min(xs), min(ys), max(xs), max(ys)]
    if min(values) < 0 or max(values) > 1 or min(box) < -1e-6 or max(box) > 1 + 1e-6:
        counters.outside.add(name)
    return cls, box


def _read_labels(path: str, num_names: int, counters: _LineCounters) -> list[tuple[int, list[float]]]:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    name = os.path.basename(path)
    seen, out = set(), []
    for i, line in enumerate(lines, 1):
        key = " ".join(line.split())
        if key and key in seen:
            counters.repeated.add(name)
            continue
        seen.add(key)
        parsed = _parse_line(line, f"{path} line {i}", num_names, counters, name)
        if parsed is not None:
            out.append(parsed)
    return out


def _count_orphan_labels(images: list[str], counters: _LineCounters) -> None:
    """Label files in the split's label folders that no image of the split claims."""
    claimed = {label_path(p) for p in images}
    folders = {os.path.dirname(p) for p in claimed}
    for folder in folders:
        if "labels" not in folder.split(os.sep) or not os.path.isdir(folder):
            continue  # labels beside the images: other .txt files there may be split lists
        for f in os.listdir(folder):
            path = os.path.join(folder, f)
            if f.endswith(".txt") and f != "classes.txt" and path not in claimed:
                counters.orphans.add(os.path.relpath(path, os.path.dirname(folder)))


def yolo_raws(root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
              allow_outside: bool = False) -> tuple[list[RawImage], DatasetInfo, dict]:
    """One split of a YOLO data set, parsed: (raw images, info, skip counters)."""
    base, entries, names, names_from = yolo_layout(root, split, classes)
    images = _image_list(base, entries, allow_outside)
    if not images:
        raise DataError(f"{root} [{split}]: no images found in {entries}")
    counters = _LineCounters()
    parsed, found = [], Counter()
    for path in images:
        lp = label_path(path)
        if os.path.isfile(lp):
            labels = _read_labels(lp, len(names), counters)
        else:
            labels = []
            counters.unlabelled.add(os.path.relpath(path, base))
        found.update(names[c] for c, _ in labels)
        parsed.append((path, lp, labels))
    _count_orphan_labels(images, counters)
    wanted = classes if classes else names
    class_names = resolve_classes(found, list(wanted), ignore_unknown, source=f"{root} ({split})")
    index = {c: i + 1 for i, c in enumerate(class_names)}
    unknown = SkipCounter("boxes of classes not in data.classes")
    raws = []
    for n, (path, lp, labels) in enumerate(parsed):
        raw = RawImage(path, lp, n, None, normalized=True)
        for cls, box in labels:
            if names[cls] not in index:
                unknown.add(os.path.basename(lp))
                continue
            raw.boxes.append(box)
            raw.labels.append(index[names[cls]])
        raws.append(raw)
    folders = [_resolve(base, str(e)) for e in entries]
    image_root = folders[0] if len(folders) == 1 and os.path.isdir(folders[0]) else base
    info = DatasetInfo(class_names=class_names, cat_ids=list(range(1, len(class_names) + 1)),
                       source=f"{root} [{split}]", root=image_root)
    return raws, info, {**counters.as_dict(), "unknown_class_boxes": unknown}


def read_yolo(root: str, split: str, classes: list[str] | None = None, ignore_unknown: bool = False,
              max_pixels: int = DEFAULT_MAX_PIXELS, allow_outside: bool = False,
              strict: bool = False) -> tuple[list[ImageRecord], DatasetInfo]:
    """Records of one split of a YOLO data set (see `yolo_raws`)."""
    raws, info, skips = yolo_raws(root, split, classes, ignore_unknown, allow_outside)
    return build_records(raws, info, skips, max_pixels, strict), info
