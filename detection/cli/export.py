"""python tools/export.py [--ckpt best.pt | run folder] --format onnx|torchscript [--opset 17] [--static] [--size N]
python tools/export.py --format onnx|openvino --int8 [--calib 32] [--max-drop 0.01]

Writes `weights/best.onnx` or `weights/best.torchscript` beside the checkpoint, with the class
names, input size and preprocessing inside, after checking its detections against PyTorch's;
`--int8` also `weights/best.int8.onnx` or `.int8.xml` (detection/deploy/check.py). Every file is then scored on the
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
    args = p.parse_args(argv)
    setup_logging()
    if args.int8 and args.format == "torchscript":
        raise ExportError("--int8 makes an INT8 ONNX or OpenVINO file: use it with --format onnx or openvino")
    if args.max_drop is not None and args.no_validate:
        raise ExportError("--max-drop needs the files scored: drop --no-validate")
    ckpt = model_file(args.ckpt, args.runs)[0]  # export refuses a file that is already exported
    path = export(ckpt, args.format, opset=args.opset, dynamic=args.dynamic, size=args.size, out=args.out)
    files = [path] + ([int8_file(ckpt, path, args.calib, args.format)] if args.int8 else [])
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


def int8_file(ckpt, fp32, calib: int, fmt: str):
    """best.int8.onnx (or .xml) beside the float file, calibrated on training images of the checkpoint's run."""
    from ..config import load_config
    from ..deploy.check import calibration_images, quantize_int8, quantize_openvino_int8
    from ..inference.export import ExportError
    from ..inference.loading import open_model
    from ..utils.runs import score_file

    loaded = open_model(fp32, "cpu")
    ref = open_model(ckpt, "cpu")
    if ref.config is None:
        raise ExportError(f"{ckpt} is outside a run folder: --int8 calibrates on its run's training images")
    images = calibration_images(load_config(None, base=ref.config), loaded.class_names, calib)
    out = fp32.with_name(fp32.stem + ".int8" + fp32.suffix)
    log.info("quantizing to INT8 on %d training images -> %s", len(images), out)
    quantize = quantize_openvino_int8 if fmt == "openvino" else quantize_int8
    score_file(out).unlink(missing_ok=True)  # the score of the file this one replaces
    return quantize(fp32, out, images, loaded.predictor)


if __name__ == "__main__":
    main()
