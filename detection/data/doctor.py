"""The dataset doctor: what training would see, before an hour of training finds it.

`check(cfg)` reads both sides of the split exactly as training does (the same readers,
clean-up and counted skips), then decodes every image once to find what the header pass
cannot (truncated files), hashes their bytes (the same picture in train and val is leakage),
and measures the boxes at the size the model sees them. `write_report` turns that into
report.md, two plots and `browse/` (images with their ground truth drawn); `short_summary`
is the few lines `train_det.py` prints at start.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .images import ImageReadError, read_record_image
from .records import DatasetInfo, ImageRecord
from .summary import TINY, box_stats, class_counts


@dataclass
class SideReport:
    """One side of the split (train or val) as training reads it, or the error that stops it."""

    name: str
    records: list[ImageRecord] = field(default_factory=list)
    info: DatasetInfo | None = None
    error: str = ""
    defects: dict = field(default_factory=dict)  # kind -> {file: count}, readers' and the doctor's own
    hashes: dict = field(default_factory=dict)  # record index -> sha1 of the file


def _decode_and_hash(record) -> tuple[str | None, str | None]:
    """(problem, sha1): truncated or undecodable files, and the content hash for leakage. The file
    is hashed in chunks (never held whole) and decoded by the pixel budget it was admitted by."""
    sha = hashlib.sha1()
    try:
        with open(record.path, "rb") as f:
            head = f.read(8)
            sha.update(head)
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().rstrip(b"\0")[-12:]
    except OSError as e:
        return f"cannot be read ({e.strerror})", None
    digest = sha.hexdigest()
    if head[:2] == b"\xff\xd8" and not tail.endswith(b"\xff\xd9"):
        return "truncated JPEG (no end-of-image marker)", digest
    if head[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)", digest
    try:
        read_record_image(record, reduce=8)
    except ImageReadError:
        return "cannot be decoded", digest
    return None, digest


def inspect_images(side: SideReport) -> None:
    """Decode and hash every image of a side (in parallel); problems become defects."""
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(_decode_and_hash, side.records))
    bad: dict = {}
    seen: dict[str, str] = {}
    dups: dict = {}
    for i, (r, (problem, digest)) in enumerate(zip(side.records, results)):
        if problem:
            bad[f"{os.path.basename(r.path)}: {problem}"] = 1
        if digest:
            side.hashes[i] = digest
            if digest in seen:
                dups[f"{os.path.basename(r.path)} = {seen[digest]}"] = 1
            seen.setdefault(digest, os.path.basename(r.path))
    if bad:
        side.defects["damaged_images"] = bad
    if dups:
        side.defects["duplicate_images"] = dups


def leakage(train: SideReport, val: SideReport) -> list[str]:
    """Validation images whose bytes are also a training image's: their AP measures memory."""
    by_hash = {h: train.records[i].path for i, h in train.hashes.items()}
    return [f"{os.path.basename(val.records[i].path)} = train {os.path.basename(by_hash[h])}"
            for i, h in sorted(val.hashes.items()) if h in by_hash]


def read_side(cfg: dict, train: bool, class_names: list[str] | None = None, split: str | None = None) -> SideReport:
    """One split as training reads it (`split`: another split of the data set, read as validation is)."""
    from .dataset import read_split

    d = cfg["data"]
    # another split named like a configured side is told apart from it (data.train_split=trainval
    # missing, and the data's own `train` split read beside it)
    side = SideReport(f"{split}-split" if split in ("train", "val") else split or ("train" if train else "val"))
    if split:
        d = {**d, "val_split": split}
    try:
        side.records, side.info = read_split(d, d["train_split"] if train else d["val_split"], train, class_names,
                                             cfg["seed"])
    except DataError as e:
        side.error = str(e)
        return side
    side.defects = {k: dict(v) for k, v in side.info.defects.items()}
    if train and not any(len(r.boxes) for r in side.records):
        side.error = f"{side.info.source}: the training split has no boxes at all"
    return side


def check(cfg: dict, every_split: bool = False) -> tuple[list[SideReport], list[str]]:
    """([train side, val side, other splits found], leakage): everything report.md says.
    `every_split` also reads the data set's other splits (a test split), as validation is read."""
    train = read_side(cfg, True)
    names = train.info.class_names if train.info else None
    sides = [train, read_side(cfg, False, names)]
    if every_split:
        sides += [read_side(cfg, False, names, split) for split in other_splits(cfg["data"])]
    if names is None:
        one_label_order(sides)
    for side in sides:
        if side.records:
            inspect_images(side)
    leaks = []
    for side in sides[1:]:
        if train.records and side.records:
            leaks += [f"{side.name}: {x}" if side.name != "val" else x for x in leakage(train, side)]
    return sides, leaks


def one_label_order(sides: list[SideReport]) -> None:
    """Relabel the sides read to one class list, their names in the order met. Without a readable
    training split each split reads its own classes in its own order, and label 1 of one split is
    not label 1 of the next; the report, the plots and the page count a label by one list."""
    names: list[str] = []
    for s in sides:
        names += [n for n in (s.info.class_names if s.info else []) if n not in names]
    for s in sides:
        if not s.info or list(s.info.class_names) == names:
            continue
        lut = np.array([0] + [names.index(n) + 1 for n in s.info.class_names], np.int64)
        for r in s.records:
            r.labels = lut[r.labels]
        cat = dict(zip(s.info.class_names, s.info.cat_ids))
        s.info.class_names, s.info.cat_ids = list(names), [cat.get(n, 0) for n in names]  # 0: not in this split


def other_splits(dcfg: dict) -> list[str]:
    """The data set's splits besides the configured train and val (`formats.find_splits`); none
    for a carved split, and VOC's trainval when train and val are there (their union)."""
    if dcfg["val_fraction"] > 0 or dcfg["split_file"] or dcfg["format"] == "synthetic":
        return []
    from .formats import find_splits

    try:
        found = find_splits(dcfg["format"], dcfg["root"])
    except (DataError, OSError):
        return []  # what train and val say about the folder is the error to show
    if dcfg["format"] == "voc" and {"train", "val"} <= set(found):
        found = [s for s in found if s != "trainval"]
    if dcfg["format"] == "coco":  # Roboflow's `train` is the same file as the config's train2017
        from .coco import coco_paths

        used = {os.path.abspath(coco_paths(dcfg["root"], dcfg[k])[0]) for k in ("train_split", "val_split")}
        found = [s for s in found if os.path.abspath(coco_paths(dcfg["root"], s)[0]) not in used]
    return [s for s in found if s not in (dcfg["train_split"], dcfg["val_split"], "all")]


# --- the report -----------------------------------------------------------------------------


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def markdown(all_sides: list[SideReport], leaks: list[str], min_size: int, max_size: int) -> str:
    """report.md: `all_sides` is [train, val, other splits]; only train's and val's errors stop training."""
    train, val = all_sides[:2]
    sides = [s for s in all_sides if s.records]
    names = next((s.info.class_names for s in sides if s.info), [])  # one list for every side (check)
    lines = [f"# Data check: {train.info.source if train.info else 'data set'}", ""]
    errors = [s.error for s in (train, val) if s.error]
    lines += [f"**Training would fail:** {e}" for e in errors] or ["**Training can start.**"]
    lines += [f"**The {s.name} split cannot be read:** {s.error}" for s in all_sides[2:] if s.error]
    lines += ["", "## Splits", ""] + _table(
        ["split", "images", "boxes", "images without boxes", "source"],
        [[s.name, len(s.records), sum(len(r.boxes) for r in s.records), sum(1 for r in s.records if not len(r.boxes)),
          s.info.source] for s in sides])
    counts = {s.name: class_counts(s.records, names) for s in sides}
    lines += ["", "## Boxes per class", ""] + _table(["class"] + [s.name for s in sides],
                                                    [[c] + [counts[s.name][c] for s in sides] for c in names])
    stats = {s.name: box_stats(s.records, min_size, max_size) for s in sides}
    lines += ["", f"## Box sizes at the model's input (min_size {min_size}, max_size {max_size})", ""] + _table(
        ["split", "small (< 32²)", "medium", "large (≥ 96²)", f"thinner than {TINY} px"],
        [[n, st["small"], st["medium"], st["large"], st["tiny"]] for n, st in stats.items()])
    lines += ["", "## Aspect ratios (width / height)", ""] + _table(
        ["split", "5%", "25%", "median", "75%", "95%"],
        [[n] + [f"{q:.2f}" for q in st["ratio_quantiles"]] for n, st in stats.items() if st["ratio_quantiles"]])
    lines += ["", "## Defects", ""]
    found = False
    for s in all_sides:
        for kind, files in sorted(s.defects.items()):
            found = True
            lines.append(f"### {s.name}: {kind} ({sum(files.values())})")
            lines += [f"- {f}" + (f" ({n})" if n > 1 else "") for f, n in sorted(files.items())] + [""]
    if not found:
        lines += ["None found.", ""]
    lines += ["## Leakage (validation images that are also training images, by content hash)", ""]
    lines += [f"- {x}" for x in leaks] if leaks else \
        [f"None among {sum(len(s.hashes) for s in all_sides[1:])} validation (and other split) and "
         f"{len(train.hashes)} training images."]
    return "\n".join(lines) + "\n"


def page_tables(all_sides: list[SideReport]) -> list[dict]:
    """The data check's tables for its browser page: splits, boxes per class, every defect."""
    sides = [s for s in all_sides if s.records]
    names = next((s.info.class_names for s in sides if s.info), [])
    counts = {s.name: class_counts(s.records, names) for s in sides}
    return [
        {"title": "splits", "header": ["split", "images", "boxes", "images without boxes"],
         "rows": [[s.name, len(s.records), sum(len(r.boxes) for r in s.records),
                   sum(1 for r in s.records if not len(r.boxes))] for s in sides]},
        {"title": "boxes per class", "header": ["class"] + [s.name for s in sides],
         "rows": [[c] + [counts[s.name][c] for s in sides] for c in names]},
        {"title": f"defects ({sum(sum(f.values()) for s in all_sides for f in s.defects.values())})",
         "header": ["split", "kind", "file", "count"],
         "rows": [[s.name, kind, f, n] for s in all_sides for kind, files in sorted(s.defects.items())
                  for f, n in sorted(files.items())]},
    ]


def write_plots(sides: list[SideReport], names: list[str], out_dir, min_size: int, max_size: int) -> None:
    from ..utils.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.4 * len(names) + 2), 4))
    width = 0.8 / max(1, len(sides))
    for k, s in enumerate(sides):
        c = class_counts(s.records, names)
        ax.bar(np.arange(len(names)) + k * width, [c[n] for n in names], width, label=s.name)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names, rotation=45 if len(names) > 6 else 0, ha="right")
    ax.set_ylabel("boxes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "class_histogram.png"), dpi=100)
    plt.close(fig)
    fig = box_sizes_figure(plt, sides, min_size, max_size)
    fig.savefig(os.path.join(out_dir, "box_sizes.png"), dpi=100)
    plt.close(fig)


def box_sizes_figure(plt, sides: list[SideReport], min_size: int, max_size: int):
    """Box width against height at the model's input, log-scaled, ticked at powers of two and
    labelled as plain pixels: matplotlib's own log ticks label the minor ticks of a range under
    a decade and a bit (8.5 to 60 px) as 2x10^1, 3x10^1, 4x10^1, which overlap."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter

    fig, ax = plt.subplots(figsize=(5, 5))
    sizes = []
    for s in sides:
        st = box_stats(s.records, min_size, max_size)
        ax.scatter(st["w"], st["h"], s=4, alpha=0.4, label=s.name)
        sizes += [np.asarray(st["w"]), np.asarray(st["h"])]
    ticks = _power_of_two_ticks(np.concatenate(sizes) if sizes else np.zeros(0))
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # after set_*scale, which puts its own log locators in
        axis.set_major_locator(FixedLocator(ticks))
        axis.set_major_formatter(StrMethodFormatter("{x:g}"))
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("box width at the model's input (px)")
    ax.set_ylabel("box height (px)")
    ax.axvline(TINY, color="grey", lw=0.8)
    ax.axhline(TINY, color="grey", lw=0.8)
    if sides:
        ax.legend()
    fig.tight_layout()
    return fig


def _power_of_two_ticks(sizes: np.ndarray) -> list[float]:
    """1, 2, 4, ... px over the sizes' range (with TINY's line in it), at most 8 of them (every
    other power when the range is wider): each label a few characters, none touching."""
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    lo = min(float(sizes.min()) if len(sizes) else TINY, TINY)
    hi = max(float(sizes.max()) if len(sizes) else TINY, TINY)
    powers = list(range(int(np.floor(np.log2(lo))), int(np.ceil(np.log2(hi))) + 1))
    step = max(1, -(-len(powers) // 8))
    return [2.0 ** k for k in powers[::step]]


def write_browse(side: SideReport, out_dir, n: int) -> int:
    """`n` images of a side (spread over it) with their ground truth drawn; returns how many."""
    import cv2

    from ..utils.visualize import class_color, draw_box, line_width_for

    folder = os.path.join(out_dir, "browse", side.name)
    os.makedirs(folder, exist_ok=True)
    picks = np.unique(np.linspace(0, len(side.records) - 1, min(n, len(side.records))).astype(int))
    written = 0
    for i in picks:
        r = side.records[i]
        try:
            img = read_record_image(r).copy()
        except ImageReadError:
            continue
        for box, label in zip(r.boxes.tolist(), r.labels.tolist()):
            draw_box(img, box, class_color(label), line_width_for(img), side.info.class_names[label - 1])
        name = f"{i:05d}_{os.path.splitext(os.path.basename(r.path))[0]}.jpg"
        cv2.imwrite(os.path.join(folder, name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        written += 1
    return written
