"""python tools/convert_dataset.py --from voc --to coco SRC DST [--splits train,val] [--copy]

Reads every split of SRC as training would (same checks, same counted skips) and writes DST
in the other format, with its split files; images are hard-linked, or copied with --copy.
"""

from __future__ import annotations

import argparse
import logging

from ..data.convert import FORMATS, convert
from .common import setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.convert")


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Convert a detection data set between VOC, COCO json and YOLO.")
    p.add_argument("--from", dest="src_fmt", required=True, choices=FORMATS)
    p.add_argument("--to", dest="dst_fmt", required=True, choices=FORMATS)
    p.add_argument("src", help="the data set: VOC root, COCO root (annotations/instances_<split>.json), "
                               "YOLO data.yaml or its folder")
    p.add_argument("dst", help="a new (or empty) folder")
    p.add_argument("--splits", help="comma-separated splits to convert (default: every split found)")
    p.add_argument("--classes", help="comma-separated class names in label order (default: as found)")
    p.add_argument("--copy", action="store_true", help="copy images instead of hard-linking them")
    args = p.parse_args(argv)
    setup_logging()
    counts = convert(args.src_fmt, args.dst_fmt, args.src, args.dst,
                     args.splits.split(",") if args.splits else None,
                     args.classes.split(",") if args.classes else None, args.copy)
    log.info("%s -> %s: %s written to %s", args.src_fmt, args.dst_fmt,
             ", ".join(f"{s} {n} images" for s, n in counts.items()), args.dst)


if __name__ == "__main__":
    main()
