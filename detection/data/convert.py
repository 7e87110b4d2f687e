"""Conversion between VOC, COCO json and YOLO: every split read as training reads it, then written.

Reading goes through the same readers (so the same clean-up, counted skips and path
safety); writing keeps every box to within VOC's integer pixel (half a pixel), every class
name, VOC's `difficult` and COCO's `iscrowd` where the target format has them. Images are
hard-linked when source and destination share a file system, else copied; never symlinked
(a link out of the data folder is refused by the readers).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile

import numpy as np

from ..errors import DataError
from .formats import ON_DISK, find_splits, read_raws, write
from .records import DatasetInfo, ImageRecord, build_records
from .voc import voc_folders

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


def convert(src_fmt: str, dst_fmt: str, src: str, dst: str, splits: list[str] | None = None,
            classes: list[str] | None = None, copy: bool = False) -> dict[str, int]:
    """Convert a data set; returns the number of images written per split."""
    for f in (src_fmt, dst_fmt):
        if f not in FORMATS:
            raise DataError(f"format must be one of {', '.join(FORMATS)}, got {f!r}")
    if os.path.exists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):
        raise DataError(f"{dst} exists and is not an empty folder; give a new one (conversion never overwrites)")
    src_dir = os.path.realpath(src if os.path.isdir(src) else os.path.dirname(os.path.abspath(src)))
    out = os.path.realpath(dst)
    if os.path.commonpath([src_dir, out]) == src_dir:  # its images would be read as the input's next time
        raise DataError(f"{dst} is inside the data set being converted ({src_dir}): its copies would be read as "
                        "more images of it on the next run; write the output outside that folder")
    if src_fmt == "voc" and voc_folders(src) == (src, src) and not glob.glob(os.path.join(src, "*.xml")):
        raise DataError(f"{src}: no Annotations/ folder and no .xml files; is this a VOC data set?")
    records, names, infos = read_all(src_fmt, src, splits, classes)
    parent = os.path.dirname(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(dst))}.", dir=parent)
    try:  # written aside and moved in whole: a failure leaves no half data set behind
        write(dst_fmt, partial, records, names, infos, copy)
        if os.path.isdir(dst):
            os.rmdir(dst)
        os.rename(partial, dst)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {s: len(r) for s, r in records.items()}
