"""python tools/export.py [--ckpt best.pt | run folder] --format onnx|torchscript [--opset 17] [--static] [--size N]

Writes `weights/best.onnx` or `weights/best.torchscript` beside the checkpoint, with the class
names, input size and preprocessing inside, after checking its detections against PyTorch's.
`tools/infer.py --ckpt weights/best.onnx` and `Detector.from_checkpoint(...)` then run it.
"""

from __future__ import annotations

import argparse
import logging

from ..commands import command
from .common import setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.inference.export")


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    from ..inference.export import FORMATS, export
    from ..runs import model_file

    p = argparse.ArgumentParser(description="Export a trained detector to ONNX or TorchScript.")
    p.add_argument("--ckpt", help="a run folder or a .pt checkpoint (default: the newest run's best.pt)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (11 or newer)")
    p.add_argument("--dynamic", action="store_true", default=True,
                   help="ONNX: any input height and width (the default: every image is fed at the size PyTorch "
                        "would use, so the detections are PyTorch's)")
    p.add_argument("--static", dest="dynamic", action="store_false",
                   help="ONNX: a fixed min_size x max_size input, for runtimes that need one (images are fitted "
                        "inside and padded: detections near PyTorch's, not equal, for other aspect ratios)")
    p.add_argument("--size", type=int, help="input size (shorter side) to export at, instead of the model's own")
    p.add_argument("--out", help="output file (default: beside the checkpoint)")
    args = p.parse_args(argv)
    setup_logging()
    ckpt = model_file(args.ckpt, args.runs)[0]  # export refuses a file that is already exported
    path = export(ckpt, args.format, opset=args.opset, dynamic=args.dynamic, size=args.size, out=args.out)
    log.info("written %s (%.1f MB); run it with: %s --ckpt %s --source IMAGES", path,
             path.stat().st_size / 1e6, command("infer"), path)


if __name__ == "__main__":
    main()
