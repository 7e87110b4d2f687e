"""The one record type every reader produces, and the tail all readers share.

Readers (COCO json, Pascal VOC xml, the synthetic generator) differ only in how they
parse files into `RawImage`s. `build_records` does the rest for all of them: image paths
kept inside the data set, headers read (pixel budget, real size), boxes cleaned, every
skip counted and named, and `ImageRecord`s with boxes in xyxy pixels and contiguous
labels 1..K (0 is background, as torchvision's detectors expect).
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError, UnknownClassesError
from .images import DEFAULT_MAX_PIXELS, ImageReadError, read_image, read_image_size

log = logging.getLogger("detection.data")
_SAID: set[str] = set()


def say_once(line: str) -> None:
    """Every split (and the data check, and a resume) reads the same data set again: what a reader
    says about its layout is logged once per process."""
    if line not in _SAID:
        _SAID.add(line)
        log.info(line)


# boxes a training image keeps: matching holds anchors x boxes IoUs (about 40k anchors at 480 px,
# 4 bytes each: 160 MB at this cap); dense scenes (shelves, crowds) stay well under it
MAX_BOXES_PER_IMAGE = 1000
# a validation image with more labelled boxes is left out, counted and named: a label file of
# 100,000 boxes (3.8 MB) took 870 MB to score (pycocotools holds every box against every
# detection, per area range), and no detector here keeps more than a few hundred detections
MAX_VAL_BOXES_PER_IMAGE = 5000


@dataclass
class ImageRecord:
    path: str  # absolute image path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float32 xyxy pixels, clipped to the image
    labels: np.ndarray  # (N,) int64 in 1..K
    iscrowd: np.ndarray  # (N,) bool: COCO crowd regions (never matched, never missed)
    difficult: np.ndarray  # (N,) bool: VOC difficult flag (ignored by evaluation)
    image_id: int  # id in the source annotations (COCO image id, or running index)
    areas: np.ndarray | None = None  # (N,) COCO `area` (segment area), which the official AP sizes use


@dataclass
class DatasetInfo:
    """What a reader knows beyond the records: class names and the source category ids."""

    class_names: list[str]  # index i holds label i+1
    cat_ids: list[int]  # source category id of label i+1 (COCO ids; 1..K for VOC)
    source: str  # file or folder that was read, for messages
    skipped: dict = field(default_factory=dict)  # what was dropped and why, with counts
    root: str = ""  # the folder image names are relative to, in split lists
    defects: dict = field(default_factory=dict)  # kind -> {file: count}, for the data doctor


@dataclass
class RawImage:
    """One image as a reader parsed it, before the shared checks."""

    path: str
    where: str  # the annotation that names it, for messages (xml file, or json + image id)
    image_id: int
    declared_size: tuple[int, int] | None  # (w, h) the annotation states, if any
    boxes: list = field(default_factory=list)  # xyxy, possibly invalid (None, NaN...)
    labels: list = field(default_factory=list)  # 1..K
    iscrowd: list = field(default_factory=list)
    difficult: list = field(default_factory=list)
    areas: list | None = None
    normalized: bool = False  # boxes in [0, 1] of the image's size (YOLO), scaled once the size is known
    size_unusable: bool = False  # the annotation's size is missing, zero or not a number (VOC, COCO)


class SkipCounter:
    """Counts dropped boxes/images per file so one warning line can name the worst files."""

    def __init__(self, what: str, quiet: bool = False):
        self.what, self.quiet = what, quiet  # quiet: listed by the data doctor, not warned at every run
        self.per_file: Counter = Counter()

    def add(self, file: str, n: int = 1) -> None:
        self.per_file[file] += n

    @property
    def total(self) -> int:
        return sum(self.per_file.values())

    def warn(self, source: str) -> None:
        if not self.total or self.quiet:
            return
        worst = ", ".join(f"{f} ({n})" for f, n in self.per_file.most_common(3))
        log.warning("%s: %d %s in %d files; e.g. %s", source, self.total, self.what, len(self.per_file), worst)


def inside(image_dir: str, name: str, where: str, allow_outside: bool = False) -> str:
    """The path of `name` under `image_dir`; a name that leads outside it (`../`, an absolute
    path, a symlink that leaves the folder) is refused unless data.allow_outside_root is set."""
    path = os.path.normpath(os.path.join(image_dir, name))
    if allow_outside:
        return path
    base = os.path.realpath(image_dir)
    real = os.path.realpath(path)
    if os.path.isabs(name) or os.path.commonpath([base, real]) != base:
        link = _leaving_link(image_dir, name)
        if link:
            raise DataError(f"{where}: {path} is reached through the symlink {link} -> {os.readlink(link)}, which "
                            f"leads outside the data folder {image_dir} (reads stay inside the data set unless told "
                            "otherwise): set data.allow_outside_root=true to follow it, or copy the files in")
        raise DataError(f"{where}: file name {name!r} leads outside the image folder {image_dir}; fix the "
                        "annotation, or set data.allow_outside_root=true if the images really live elsewhere")
    return path


def _leaving_link(image_dir: str, name: str) -> str | None:
    """The first symlink on the way from `image_dir` to `name` (relative, no `..`) that leaves the folder."""
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        return None
    base, here = os.path.realpath(image_dir), image_dir
    for part in name.replace("\\", "/").split("/"):
        here = os.path.join(here, part)
        if os.path.islink(here) and os.path.commonpath([base, os.path.realpath(here)]) != base:
            return here
    return None


def parse_box(values) -> list[float] | None:
    """Four finite numbers, or None (null, wrong length, text, NaN, inf)."""
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        return None
    try:
        box = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    return box if all(math.isfinite(v) for v in box) else None


def resolve_classes(found: Counter, wanted: list[str], ignore_unknown: bool, source: str) -> list[str]:
    """Class list for a data set: the config's, else every class found (sorted).

    Classes in the annotations but not in the config are an error unless the config says
    to ignore them: silently dropping a class is the bug users find three days later.
    """
    if not wanted:
        return sorted(found)
    if len(set(wanted)) != len(wanted):
        dup = [c for c, n in Counter(wanted).items() if n > 1]
        raise DataError(f"data.classes lists {dup} more than once")
    unknown = {c: n for c, n in found.items() if c not in wanted}
    if unknown and not ignore_unknown:
        listing = ", ".join(f"{c!r} ({n} boxes)" for c, n in sorted(unknown.items()))
        raise UnknownClassesError(
            f"{source}: classes not in data.classes: {listing}. "
            "Add them to data.classes, or set data.ignore_unknown_classes=true to drop those boxes.",
            unknown, list(wanted))
    return list(wanted)


def _headers(raws: list[RawImage], max_pixels: int, decode: bool) -> list:
    """(w, h) or the ImageReadError of every image, read in parallel (I/O bound; OpenCV releases
    the GIL). `decode` also decodes each image (JPEGs at 1/8 size, which still reads the whole
    stream), so an image no decoder can read is found now, not at the first validation."""

    def one(r):
        try:
            size = read_image_size(r.path, max_pixels)
            if decode:
                read_image(r.path, max_pixels, reduce=8)
            return size
        except ImageReadError as e:
            return e

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, raws))


def build_records(raws: list[RawImage], info: DatasetInfo, skips: dict[str, SkipCounter],
                  max_pixels: int = DEFAULT_MAX_PIXELS, strict: bool = False,
                  read_headers: bool = True, images_key: str = "") -> list[ImageRecord]:
    """The shared tail of every reader: headers, sizes, box clean-up, counted skips, records.

    Images that cannot be read (missing, corrupt, over the pixel budget) are skipped,
    counted and named, missing files apart from unreadable ones, since the fixes differ: a
    missing file is a wrong folder setting (`images_key`, e.g. `data.val_images`, names it),
    an unreadable one a bad file. With `strict` (validation: a hole would change the metric) every
    image is also decoded once, and one that fails is an error. A training image keeps at most
    MAX_BOXES_PER_IMAGE boxes (the rest dropped, counted and named: anchor matching holds an
    IoU for every anchor and box at once); validation keeps all. Boxes keep the annotation's pixels;
    a declared size that disagrees with the file is counted and named, and the file's size is
    used. `read_headers=False` (scoring result files without the images) trusts the declared sizes.
    """
    counters = _box_counters(skips)
    missing = skips.setdefault("missing_images", SkipCounter(f"images skipped (file not found under {info.root}"
                                                             f"{'; check ' + images_key if images_key else ''})"))
    unreadable = skips.setdefault("unreadable_images", SkipCounter("images skipped (unreadable or over "
                                                                   "the pixel budget)"))
    records, errors, not_found = [], [], 0
    sizes = _headers(raws, max_pixels, decode=strict) if read_headers else [r.declared_size for r in raws]
    for r, size in zip(raws, sizes):
        if isinstance(size, ImageReadError):
            errors.append(str(size))
            gone = not os.path.isfile(r.path)
            not_found += gone
            (missing if gone else unreadable).add(os.path.basename(r.path))
            continue
        if strict and len(r.boxes) > MAX_VAL_BOXES_PER_IMAGE:
            counters["too_many_boxes"].add(os.path.basename(r.where), 1)
            continue
        records.append(_record(r, *size, counters, cap=None if strict else MAX_BOXES_PER_IMAGE))
    if errors and strict:
        raise DataError(f"{info.source}: {len(errors)} validation image(s) cannot be used: {errors[0]}"
                        f"{f' (and {len(errors) - 1} more)' if len(errors) > 1 else ''}; "
                        + _missing_fix(not_found, len(errors), info.root, images_key))
    for counter in skips.values():
        counter.warn(info.source)
    info.skipped = {k: c.total for k, c in skips.items()}
    info.defects = {k: dict(c.per_file) for k, c in skips.items() if c.total}
    if not records:
        raise DataError(f"{info.source}: no usable images" + (f"; e.g. {errors[0]}" if errors else "")
                        + (f"; {_missing_fix(not_found, len(errors), info.root, images_key)}" if not_found else ""))
    return records


def _missing_fix(not_found: int, failed: int, image_dir: str, images_key: str) -> str:
    """The fix for images that cannot be used: when files are missing, the setting that names
    their folder; otherwise repair or remove the bad files."""
    if not_found:
        key = f"{images_key} (or data.root)" if images_key else "data.root"
        return (f"{not_found} of them are not in {image_dir}: point {key} at the folder that holds them"
                + ("" if not_found == failed else ", and fix or remove the unreadable ones"))
    return "fix or remove them from the split (a metric over fewer images would not be comparable)"


def _box_counters(skips: dict[str, SkipCounter]) -> dict[str, SkipCounter]:
    kinds = {"size_mismatch": ("images whose annotated size disagrees with the file (the file's size is used, "
                               "boxes unscaled)", False),
             "size_unusable": ("images whose annotated size is missing, zero or not a number (the file's size is "
                               "used)", False),
             "boxes_over_cap": (f"boxes dropped: over {MAX_BOXES_PER_IMAGE} in one image (the first ones are kept)",
                                False),
             "too_many_boxes": (f"validation images left out: over {MAX_VAL_BOXES_PER_IMAGE} labelled boxes in one "
                                "image (scoring holds every box against every detection; split such an image "
                                "into tiles)", False),
             "invalid_boxes": ("boxes dropped: not four finite numbers", False),
             "degenerate_boxes": ("boxes dropped: zero or negative width/height, or outside the image", False),
             "clipped_boxes": ("boxes partly outside the image (clipped, kept)", True)}
    return {k: skips.setdefault(k, SkipCounter(what, quiet=quiet)) for k, (what, quiet) in kinds.items()}


def _record(r: RawImage, w: int, h: int, counters: dict[str, SkipCounter], cap: int | None = None) -> ImageRecord:
    """One image's record: boxes to pixels, clipped, the invalid and empty ones dropped and counted."""
    where = os.path.basename(r.where)
    if r.declared_size and r.declared_size != (w, h):
        counters["size_mismatch"].add(where)
    if r.size_unusable:
        counters["size_unusable"].add(where)
    ok = [b is not None for b in r.boxes]
    if not all(ok):
        counters["invalid_boxes"].add(where, ok.count(False))
    keep_valid = np.array(ok, bool)
    boxes = np.array([b for b in r.boxes if b is not None], np.float32).reshape(-1, 4)
    if r.normalized:
        boxes *= np.array([w, h, w, h], np.float32)
    crossing = (boxes[:, :2] < -0.5).any(1) | (boxes[:, 2] > w + 0.5) | (boxes[:, 3] > h + 0.5)
    boxes, keep = clean_boxes(boxes, w, h)
    if (crossing & keep).any():
        counters["clipped_boxes"].add(where, int((crossing & keep).sum()))
    if (~keep).any():
        counters["degenerate_boxes"].add(where, int((~keep).sum()))
    if cap is not None and keep.sum() > cap:  # anchor matching holds anchors x boxes IoUs at once
        counters["boxes_over_cap"].add(where, int(keep.sum()) - cap)
        keep &= np.cumsum(keep) <= cap

    def pick(values, dtype):
        return np.array(values, dtype).reshape(-1)[keep_valid][keep]

    return ImageRecord(
        path=os.path.abspath(r.path), width=w, height=h, boxes=boxes[keep],
        labels=pick(r.labels, np.int64), iscrowd=pick(r.iscrowd or [False] * len(r.boxes), bool),
        difficult=pick(r.difficult or [False] * len(r.boxes), bool), image_id=r.image_id,
        areas=pick(r.areas, np.float64) if r.areas is not None else None)


def clean_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to the image and say which survive (positive width and height)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes, keep
