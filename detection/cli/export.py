"""python tools/export.py [--ckpt best.pt | run folder] --format onnx|torchscript [--opset 17] [--static] [--size N]
python tools/export.py --format onnx|openvino --int8 [--calib 32] [--max-drop 0.01] [--no-accuracy-control]

Writes `weights/best.onnx` or `weights/best.torchscript` beside the checkpoint, with the class
names, input size and preprocessing inside, after checking its detections against PyTorch's;
`--int8` also `weights/best.int8.onnx` or `.int8.xml` (detection/deploy/int8.py: the head kept in float;
OpenVINO's with accuracy control, layers put back into float until its validation AP is within
--max-drop, default 0.01, of the float file's). Every file is then scored on the
run's validation split beside the checkpoint (its AP goes into the file and `<file>.eval.json`);
`--max-drop D` keeps no file that loses more than D AP. `tools/infer.py --ckpt
weights/best.onnx` and `Detector.from_checkpoint(...)` then run it.
"""

from __future__ import annotations

import argparse
import logging

from ..utils.commands import command
from .common import ap_drop_arg, positive_int, setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.inference.export")
KEPT_DROP = 0.01  # an AP loss over this, kept without --max-drop, is warned about


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    from ..deploy.int8 import make_int8
    from ..inference.export import FORMATS, ExportError, export
    from ..utils.runs import file_size, model_file

    p = argparse.ArgumentParser(description="Export a trained detector to ONNX, OpenVINO or TorchScript.")
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
    p.add_argument("--int8", action="store_true", help="ONNX / OpenVINO: also an INT8 file (post-training "
                                                        "static quantization)")
    p.add_argument("--calib", type=positive_int, default=32, help="--int8: training images to calibrate on")
    p.add_argument("--max-drop", type=ap_drop_arg, help="keep no file whose validation AP is more than this below the "
                                                  "checkpoint's (e.g. 0.01)")
    p.add_argument("--no-validate", action="store_true", help="do not score the files on the validation split")
    p.add_argument("--no-accuracy-control", action="store_true",
                   help="OpenVINO --int8: quantize in one pass, without putting layers back into float until the "
                        "validation AP is within --max-drop (default 0.01)")
    args = p.parse_args(argv)
    setup_logging()
    if args.int8 and args.format == "torchscript":
        raise ExportError("--int8 makes an INT8 ONNX or OpenVINO file: use it with --format onnx or openvino")
    if args.max_drop is not None and args.no_validate:
        raise ExportError("--max-drop needs the files scored: drop --no-validate")
    ckpt = model_file(args.ckpt, args.runs)[0]  # export refuses a file that is already exported
    path = export(ckpt, args.format, opset=args.opset, dynamic=args.dynamic, size=args.size, out=args.out)
    files = [path] + ([make_int8(ckpt, path, args.calib, args.max_drop,
                                 not args.no_validate and not args.no_accuracy_control)] if args.int8 else [])
    for f, r in zip(files, [] if args.no_validate else scored(files, ckpt, args.max_drop)):
        log.info("%s on %s: AP %.3f, AP50 %.3f (checkpoint %.3f, %.3f)", f.name, r["split"], r["AP"], r["AP50"],
                 r["checkpoint_AP"], r["checkpoint_AP50"])
        if args.max_drop is None and r["AP_drop"] > KEPT_DROP:
            log.warning("%s loses %.3f AP against its checkpoint, more than %g; it is kept because no --max-drop was "
                        "given (--max-drop %g removes such a file)", f.name, r["AP_drop"], KEPT_DROP, KEPT_DROP)
    for f in files:
        log.info("written %s (%.1f MB); run it with: %s --ckpt %s --source IMAGES", f, file_size(f) / 1e6,
                 command("infer"), f)


def scored(files, ckpt, max_drop) -> list[dict]:
    """The files scored beside their checkpoint. Without the run's validation data here (an
    export on another machine) they are kept unscored, with a warning, unless --max-drop asks
    for the check."""
    from ..deploy.check import validate
    from ..errors import DataError
    from ..inference.export import ExportError

    try:
        return validate(files, ckpt, max_drop)
    except (DataError, ExportError) as e:
        if max_drop is not None or "max-drop" in str(e):
            raise
        log.warning("the exported files were not scored on the validation split (%s); they are kept, checked only "
                    "against PyTorch on a test image", str(e).split(";")[0])
        return []


if __name__ == "__main__":
    main()
