"""python tools/data_check.py --cfg configs/bccd_frcnn.yaml [key=value ...]
python tools/data_check.py --data datasets/my_labelimg_folder --format voc data.val_fraction=0.2
python tools/data_check.py --data path/to/data.yaml --format yolo --cfg my_training.yaml

Reads the data as training would, every split it finds (a test split too), and writes
`<out>/report.md` (splits, boxes per class, box sizes at the model's input (that of --cfg,
else the format's shipped config, e.g. yolo_frcnn.yaml), aspect ratios, every defect with its
files, train/val leakage),
`class_histogram.png`, `box_sizes.png` and `browse/` (images with their ground truth drawn).
Exits with status 1 when training would fail, 0 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import load_config, with_values
from ..data.doctor import check, markdown, page_tables, write_browse, write_plots
from ..data.fingerprint import fingerprint
from ..data.formats import ON_DISK, guard_format, split_exists
from ..data.summary import short_summary
from ..errors import ConfigError, writing
from ..evaluation.browser import data_check_page
from ..utils.runs import new_run_dir
from .common import setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.data_check")


def as_training_sees_it(cfg: dict, records, info):
    """(config, fingerprint or None): the fingerprint the recipe reads, and what the recipe,
    auto_size and anchors=auto resolve to, all said, so the sizes reported are training's own."""
    if not records:
        return cfg, None
    from ..training.plan import fitted
    from ..training.start import Start

    data_print = fingerprint(records, list(info.class_names))
    start = Start.read(cfg["model"]["init"]) if cfg["model"]["init"] else None  # its scale, as training keeps it
    changes, lines = fitted(cfg, records, data_print, start)
    for line in lines:
        log.info(line)
    return with_values(cfg, changes), data_print


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Check a data set before training: counts, sizes, defects, leakage.")
    p.add_argument("--cfg", help="a training config (its data and model sections are used)")
    p.add_argument("--data", help="a data folder (or YOLO data.yaml); with --cfg, it replaces the config's data.root")
    p.add_argument("--format", choices=list(ON_DISK), help="with --data")
    p.add_argument("--out", help="output folder (default: runs/data_check/<name>, never overwritten)")
    p.add_argument("--browse", type=int, default=16, help="images per split drawn into browse/ (0: none)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.val_fraction=0.2 model.min_size=640")
    args = p.parse_args(argv)
    setup_logging()
    if not (args.cfg or args.data):
        raise ConfigError("give --cfg FILE, or --data PATH --format voc|coco|yolo (and --cfg for its input size)")
    if args.data and not args.format and not args.cfg:
        raise ConfigError("--data needs --format voc|coco|yolo")
    cfg = checked_config(args)
    sides, leaks = check(cfg, every_split=True)
    train, val = sides[:2]
    cfg, data_print = as_training_sees_it(cfg, train.records, train.info)
    m = cfg["model"]
    tiles = f", tiles of {m['tile_size']} native px" if m["tile_size"] else ""
    log.info("box sizes at the model's input: min_size %d, max_size %d%s", m["min_size"], m["max_size"], tiles)
    readable = [s for s in sides if s.records]
    for s in readable:
        log.info(short_summary(s.records, s.info, m["min_size"], m["max_size"], m["tile_size"]))
    out = new_run_dir(os.path.dirname(os.path.abspath(args.out)), os.path.basename(os.path.abspath(args.out))) \
        if args.out else new_run_dir(os.path.join(cfg["output_dir"], "data_check"), cfg["name"])
    report = markdown(sides, leaks, m["min_size"], m["max_size"])
    if data_print is not None:  # what a recipe reads (and train_det.py writes to <run>/fingerprint.json)
        indented = "\n".join(f"    {line}" for line in data_print.lines())
        report += f"\n## Fingerprint of the training split\n\n{indented}\n"
        data_print.write(out / "fingerprint.json")
    with writing(out / "report.md"):
        (out / "report.md").write_text(report, encoding="utf-8")
    if readable:
        write_plots(readable, readable[0].info.class_names, str(out), m["min_size"], m["max_size"])
        if args.browse:
            for s in readable:
                write_browse(s, str(out), args.browse)
        page = data_check_page(readable, {s.name: s.defects for s in sides}, f"Data check: {readable[0].info.source}",
                               page_tables(sides), out)
        log.info("browse every image with its boxes and defects: %s", page)
    for s in sides:
        if s.error:
            log.error("%s: %s", s.name, s.error)
        if s.defects.get("damaged_images"):
            log.warning("%s: %d damaged images (see the report)", s.name, len(s.defects["damaged_images"]))
    if train.error or val.error:
        say_the_splits_it_has(sides)
    if leaks:
        log.warning("%d validation images are also training images (same bytes): %s", len(leaks), leaks[0])
    log.info("report: %s", out / "report.md")
    if train.error or val.error:
        sys.exit(1)


def say_the_splits_it_has(sides) -> None:
    """When the configured splits cannot be read but the data has others (voc_frcnn.yaml's
    trainval / test on a set with train / val), the settings that read them."""
    others = [s.name.removesuffix("-split") for s in sides[2:] if s.records]
    if others and not (sides[0].records and sides[1].records):
        log.info("the data has the split(s) %s: e.g. data.train_split=%s data.val_split=%s reads them",
                 ", ".join(others), others[0], others[-1])


def checked_config(args):
    """The config the check reads: --cfg's, or with --data alone the format's shipped config, read
    as training with it reads (its splits where the data has them, every class the data has)."""
    given = ["name=data_check", f"data.root={args.data}"] + ([f"data.format={args.format}"] if args.format else []) \
        if args.data else []
    cfg_file = args.cfg
    if args.data and not args.cfg:
        cfg_file = f"{args.format}_frcnn.yaml"
        given = shipped_splits(load_config(cfg_file, given)["data"], cfg_file) + ["data.classes=[]"] + given
        log.info("--data without --cfg: box sizes at the input %s trains at, every class the data has (give "
                 "--cfg for yours)", cfg_file)
    cfg = load_config(cfg_file, given + list(args.overrides))
    guard_format(cfg["data"], cfg_file)
    d = cfg["data"]
    log.info("splits read, as training reads them with these settings: %s",
             f"the hash split of {d['train_split']} (data.val_fraction={d['val_fraction']:g})"
             if d["val_fraction"] > 0 else f"train = {d['train_split']}, val = {d['val_split']}")
    return cfg


def shipped_splits(d, cfg_file: str) -> list[str]:
    """The split overrides for --data without --cfg: the shipped config's split names when the
    data has them (so the check reads what training with that config reads), else the data's own
    train and val, said with the settings that train on them."""
    if all(split_exists(d, d[k]) for k in ("train_split", "val_split")):
        return []
    log.info("the data has no %s / %s split, which %s reads: checking train / val; train with "
             "data.train_split=train data.val_split=val", d["train_split"], d["val_split"], cfg_file)
    return ["data.train_split=train", "data.val_split=val"]


if __name__ == "__main__":
    main()
