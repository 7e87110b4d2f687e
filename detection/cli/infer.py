"""python tools/infer.py --image street.jpg [--ckpt best.pt] [--conf 0.25] [--out DIR]

Writes `<stem>_det.jpg` (boxes drawn) and `<stem>_det.json` next to the image, or into
--out. Without --ckpt: the newest run's best checkpoint; with no run at all,
torchvision's COCO-pretrained detector.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2

from ..checkpoint import newest_run, run_checkpoint
from ..data.images import read_image
from ..errors import CheckpointError
from ..visualize import draw_detections
from .common import setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.infer")


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Detect objects in an image and draw them.")
    p.add_argument("--image", required=True, nargs="+", help="image file(s)")
    p.add_argument("--ckpt", help="checkpoint (default: newest run's best.pt, else COCO-pretrained)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold")
    p.add_argument("--out", help="output folder (default: next to each image)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    setup_logging()
    from ..distributed import device_for
    from ..predictor import Predictor

    device = device_for(args.device, 0)
    ckpt = Path(args.ckpt) if args.ckpt else None
    if ckpt is None:
        try:
            ckpt = run_checkpoint(newest_run(args.runs))
        except CheckpointError:
            log.info("no trained run under %s/: using torchvision's COCO-pretrained detector", args.runs)
    predictor = Predictor.from_checkpoint(ckpt, device) if ckpt else Predictor.coco_pretrained(device)
    if ckpt:
        log.info("model: %s (%d classes)", ckpt, len(predictor.class_names))
    for path in args.image:
        image = read_image(path)
        dets = predictor(image, args.conf)
        out_dir = Path(args.out) if args.out else Path(path).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(path).stem
        drawn = draw_detections(image, dets)
        cv2.imwrite(str(out_dir / f"{stem}_det.jpg"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        (out_dir / f"{stem}_det.json").write_text(json.dumps(
            {"image": str(path), "width": image.shape[1], "height": image.shape[0],
             "checkpoint": str(ckpt) if ckpt else "torchvision COCO_V1", "detections": dets}, indent=1))
        summary = ", ".join(f"{d['class']} {d['score']:.2f}" for d in dets[:8]) or "nothing"
        log.info("%s: %d detections (%s) -> %s", path, len(dets), summary, out_dir / f"{stem}_det.jpg")


if __name__ == "__main__":
    main()
