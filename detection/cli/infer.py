"""python tools/infer.py --source PATH|GLOB|LIST.txt|VIDEO|0|rtsp://... [--ckpt best.pt|run/|best.onnx] [options]

Runs a detector on images, folders (--recursive), globs, .txt lists of paths, video files,
webcams and streams, and writes into `runs/predict/<name>` (`-2`, `-3`... when taken; never
next to the inputs): the images with their boxes drawn (under their paths relative to the
source, so same-named files from different folders stay apart) or a drawn video at the
source's frame rate; `--save-json` a COCO results file (with file and class names; every
detection the model returns, for scoring, each marked `kept` when it reaches the threshold),
`--save-txt` YOLO label lines, `--save-crops`; `--save-labels voc|coco|yolo` the kept detections
as a data set to correct and train on, `--rank N` the N least certain images (to_label.txt).
Without --score each class keeps the detections
that reach the threshold stored with the model (chosen on its validation split, eval.threshold).
A file that cannot be read is skipped, named and counted. Without --ckpt: the newest run's
best checkpoint; with no run at all, torchvision's COCO-pretrained detector.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import Counter
from pathlib import Path

from ..errors import CheckpointError, DataError
from ..inference.outputs import SaveOptions, output_folder, predict_and_write
from ..inference.predictor import class_indices
from .common import positive_int, setup_logging, slice_arg, user_errors_as_one_line

log = logging.getLogger("detection.inference")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Detect objects in images, folders, videos and streams.")
    p.add_argument("--source", "--image", dest="source", nargs="+", required=True,
                   help="image(s), folder, glob, .txt list, video, webcam index or rtsp/http URL")
    p.add_argument("--ckpt", help="a .pt checkpoint, a run folder, or an exported .onnx / .torchscript file "
                                  "(default: newest run's best.pt, else COCO-pretrained)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--score", "--conf", dest="score", type=float,
                   help="score threshold for every class (default: the model's per-class thresholds, chosen on its "
                        "validation split; 0.25 for a model without them)")
    p.add_argument("--classes", help="comma-separated class names or 0-based ids to keep")
    p.add_argument("--max-det", type=positive_int, default=300, help="at most this many detections per image")
    p.add_argument("--size", type=positive_int,
                   help="input size (shorter side) instead of the model's own (PyTorch models)")
    p.add_argument("--batch", type=positive_int, default=1, help="images per forward pass")
    p.add_argument("--slice", type=slice_arg, metavar="N",
                   help="sliced inference: tiles of N pixels (plus the whole image), for small objects in large "
                        "images; a model trained on tiles slices into them without it (0: whole images)")
    p.add_argument("--overlap", type=float, help="slicing: overlap of neighbouring tiles (0-1, default 0.2)")
    p.add_argument("--vid-stride", type=positive_int, default=1, help="video: use every N-th frame")
    p.add_argument("--recursive", action="store_true", help="folders: include subfolders")
    p.add_argument("--out", help="output folder (default: runs/predict/<model run name>; never overwritten)")
    p.add_argument("--name", help="name of the folder under runs/predict/")
    p.add_argument("--save-json", action="store_true", help="write predictions.json (COCO results)")
    p.add_argument("--save-txt", action="store_true", help="write labels/<image>.txt (YOLO: class cx cy w h)")
    p.add_argument("--save-conf", action="store_true", help="--save-txt: append the score to each line")
    p.add_argument("--save-crops", action="store_true", help="write crops/<class>/<image>_<k>.jpg")
    p.add_argument("--save-labels", choices=("voc", "coco", "yolo"),
                   help="write the kept detections as a data set (labels_<format>/) to correct in LabelImg, CVAT "
                        "or Label Studio, and train on")
    p.add_argument("--rank", type=positive_int, metavar="N",
                   help="write to_label.txt: the N images whose detections are least certain (label those next)")
    p.add_argument("--track", action="store_true",
                   help="videos and streams: track ids (ByteTrack), drawn and written (tracks/<video>.txt in MOT "
                        "format, track_id in the json), and counts of unique objects per class")
    p.add_argument("--line", type=parse_line, metavar="X1,Y1,X2,Y2",
                   help="--track: count crossings of this line (pixels) per class and direction")
    p.add_argument("--no-save", action="store_true", help="write no drawn images or video (speed runs)")
    p.add_argument("--line-width", type=int, help="box line width in pixels (default: from the image size)")
    p.add_argument("--hide-labels", action="store_true")
    p.add_argument("--hide-conf", action="store_true")
    p.add_argument("--backend", choices=["auto"], help="auto: the run's fastest file (tools/benchmark.py) whose AP "
                                                        "is within 0.01 of its checkpoint's")
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="PyTorch autocast")
    return p.parse_args(argv)


def parse_line(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[:2] == values[2:] or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"--line takes x1,y1,x2,y2 in pixels (two different points, finite numbers), "
                                         f"got {text!r}")
    return values


def load_predictor(args, device):
    """(predictor, name for runs/predict/) of --ckpt, else the newest run, else COCO-pretrained."""
    from ..inference.loading import open_model
    from ..utils.runs import newest_run

    path = args.ckpt
    if path is None:
        try:
            path = newest_run(args.runs).dir
        except CheckpointError:
            pass  # torchvision's COCO detector, said once it is loaded (or why it cannot be)
    if path is not None and args.backend == "auto":
        path = _benchmarked(path)
    if path is None:
        predictor, name = _coco_pretrained(args, device), "coco_pretrained"
    else:
        loaded = open_model(path, device, args.amp)
        predictor, name = loaded.predictor, loaded.name
    if args.size:
        predictor.set_size(args.size)
    predictor.set_slicing(args.slice, args.overlap)
    log.info("input: %s", predictor.describe_input())
    return predictor, name


def _benchmarked(path):
    """--backend auto: the fastest file of the run within the AP drop, by its benchmark."""
    from ..utils.runs import model_file
    from .benchmark import fastest_file

    run = model_file(path)[2]
    chosen = fastest_file(run) if run is not None else None
    if chosen is None:
        log.warning("--backend auto: %s has no benchmark with APs (tools/benchmark.py --ckpt RUN); using %s", path,
                    path)
        return path
    log.info("--backend auto: %s (the fastest within 0.01 AP of the checkpoint, by %s)", chosen.name,
             run.benchmark_csv)
    return chosen


def _coco_pretrained(args, device):
    """torchvision's COCO detector, for a first look before any training; its weights must be here."""
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_FPN_Weights as W

    from ..inference.predictor import Predictor
    from ..models.weights import WeightsUnavailableError
    from ..utils.commands import command

    try:
        predictor = Predictor.coco_pretrained(device)
        log.info("no trained run under %s/: using torchvision's COCO-pretrained detector", args.runs)
        return predictor
    except WeightsUnavailableError:
        raise CheckpointError(f"no trained run under {args.runs}/: train one with `{command('train')} --cfg ...`, or "
                              "pass --ckpt (a run folder, .pt, .onnx or .torchscript file). Without one infer uses "
                              "torchvision's COCO-pretrained detector, which is not here and cannot be downloaded: "
                              f"`{command('fetch_weights')} {W.__name__}.COCO_V1` seeds it") from None


def save_options(args) -> SaveOptions:
    """What this run writes, from its flags: the value `Detector.predict(save=...)` takes too."""
    return SaveOptions(images=not args.no_save, json=args.save_json, txt=args.save_txt, conf=args.save_conf,
                       crops=args.save_crops, labels=args.save_labels, rank=args.rank, track=args.track,
                       line=args.line, line_width=args.line_width, hide_labels=args.hide_labels,
                       hide_conf=args.hide_conf, vid_stride=args.vid_stride)


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    from ..inference.sources import open_sources
    from ..utils.distributed import device_for

    predictor, run_name = load_predictor(args, device_for(args.device, 0))
    classes = class_indices(args.classes, predictor.class_names, "--classes")
    sources = open_sources(args.source, recursive=args.recursive, vid_stride=args.vid_stride)
    if args.track and not any(s.kind == "video" for s in sources):
        for source in sources:
            source.close()
        raise DataError(f"--track follows objects through the frames of a video or stream; {', '.join(args.source)} "
                        "holds images only: give a video file, a webcam index or a stream URL (a folder of frames "
                        "makes a video with: ffmpeg -framerate 25 -i frames/%06d.jpg clip.mp4)")
    out = output_folder(args.out, args.runs, args.name or run_name)
    log.info("model: %s -> %s", predictor.describe(), out)
    log.info("keeping detections at %s", predictor.describe_scores(args.score))
    done, skipped, per_class, t0 = 0, [], Counter(), time.perf_counter()
    try:
        for _, item, result in predict_and_write(predictor, sources, out, save_options(args), args.score, classes,
                                                 args.max_det, args.batch):
            if result is None:
                skipped.append(item.error)
                log.warning("skipped (%d so far): %s", len(skipped), item.error)
                continue
            per_class.update(result.names)
            done += 1
    finally:
        for source in sources:
            source.close()
    _summary(done, skipped, per_class, time.perf_counter() - t0, out)


def _summary(done: int, skipped: list[str], per_class: Counter, seconds: float, out: Path) -> None:
    if not done:
        raise DataError(f"no image could be read ({len(skipped)} skipped): {skipped[0] if skipped else 'no input'}")
    counts = ", ".join(f"{c} {n}" for c, n in per_class.most_common()) or "none"
    log.info("%d images/frames in %.1fs (%.2f/s); detections: %s", done, seconds, done / seconds, counts)
    if skipped:
        log.warning("%d skipped: %s", len(skipped), "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    log.info("results in %s", out)


if __name__ == "__main__":
    main()
