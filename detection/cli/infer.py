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
import json
import logging
import math
import os
import time
from collections import Counter
from pathlib import Path

import cv2

from .. import results_json
from ..data.yolo import yolo_line
from ..errors import CheckpointError, DataError
from ..inference.labeling import RANK_FLOOR, detections_record, uncertainty, write_prelabels, write_ranking
from ..inference.tracking import VideoTracks
from ..runs import new_run_dir, safe_part
from ..visualize import draw_detections
from .common import positive_int, setup_logging, user_errors_as_one_line

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
    p.add_argument("--slice", type=positive_int, metavar="N",
                   help="sliced inference: tiles of N pixels (plus the whole image), for small objects in large images")
    p.add_argument("--overlap", type=float, default=0.2, help="--slice: overlap of neighbouring tiles (0-1)")
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
    from ..runs import newest_run

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
        predictor, name = loaded.predictor, loaded.run.name if loaded.run else Path(loaded.path).stem
    if args.size:
        predictor.set_size(args.size)
    predictor.set_slicing(args.slice, args.overlap)
    return predictor, name


def _benchmarked(path):
    """--backend auto: the fastest file of the run within the AP drop, by its benchmark."""
    from ..runs import model_file
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

    from ..commands import command
    from ..inference.predictor import Predictor
    from ..models.weights import WeightsUnavailableError

    try:
        predictor = Predictor.coco_pretrained(device)
        log.info("no trained run under %s/: using torchvision's COCO-pretrained detector", args.runs)
        return predictor
    except WeightsUnavailableError:
        raise CheckpointError(f"no trained run under {args.runs}/: train one with `{command('train')} --cfg ...`, or "
                              "pass --ckpt (a run folder, .pt, .onnx or .torchscript file). Without one infer uses "
                              "torchvision's COCO-pretrained detector, which is not here and cannot be downloaded: "
                              f"`{command('fetch_weights')} {W.__name__}.COCO_V1` seeds it") from None


def class_filter(spec: str | None, names: list[str]) -> list[int] | None:
    if not spec:
        return None
    out = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        if token.isdigit() and int(token) < len(names):
            out.append(int(token))
        elif token in names:
            out.append(names.index(token))
        else:
            raise DataError(f"--classes: {token!r} is not a class of this model ({', '.join(names[:20])})")
    return out


class Outputs:
    """Everything written for one run of infer.py."""

    def __init__(self, out: Path, args, class_names: list[str], class_scores):
        self.out, self.args, self.names = out, args, class_names
        self.tracks = VideoTracks(args.line) if args.track else None
        self.untracked: set[str] = set()  # image sources --track was given for
        self.class_scores = class_scores  # what each class's detections must score to be kept
        self.json: list[dict] = []
        self.images: list[dict] = []
        self.videos: dict = {}
        self.stems: dict[str, str] = {}  # a tracked video's name: the stem its outputs are written under
        self.prelabels: list = []  # --save-labels: one record per image, its kept detections as boxes
        self.ranked: list[tuple[str, float, int]] = []  # --rank: (image, uncertainty, detections scored)

    def add(self, item, result, source) -> list[dict]:
        """Write one image's (or frame's) outputs; returns the detections it keeps (those that reach
        --score, or their class's stored threshold)."""
        a = self.args
        exact = result.detections(digits=None)  # unrounded scores decide, as in the scored json
        kept = [bool(d["score"] >= self.class_scores[d["label"] - 1]) for d in exact]
        rounded = result.detections()
        dets = [d for d, k in zip(rounded, kept) if k]  # the same order: best first
        shown, ids = dets, self._track(item, source, exact, kept)
        if ids is not None:  # a tracked frame shows the tracked boxes, each with its id
            shown = [{**rounded[j], "class": f"#{tid} {rounded[j]['class']}"} for j, tid in sorted(ids.items())]
        if a.save_json:
            self._json(item, exact, kept, ids or {})
        rel = Path(item.rel)
        if not a.no_save:
            drawn = draw_detections(item.image, shown, a.line_width, a.hide_labels, a.hide_conf)
            if source.kind == "video":
                self._frame(source, drawn)
            else:
                path = self.out / (rel if rel.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else
                                   rel.with_suffix(".jpg"))
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if a.save_txt:
            self._txt(rel, item.image.shape, dets)
        if a.save_crops:
            self._crops(rel, item.image, dets)
        if a.save_labels:
            h, w = item.image.shape[:2]
            self.prelabels.append(detections_record(self._image_file(item, source), w, h, dets,
                                                    len(self.prelabels) + 1))
        if a.rank:
            self.ranked.append((item.name, uncertainty(d["score"] for d in exact),
                                sum(d["score"] >= RANK_FLOOR for d in exact)))
        return dets

    def _track(self, item, source, exact: list[dict], kept: list[bool]) -> dict[int, int] | None:
        """{detection index: track id} of a video frame under --track; None where nothing is tracked."""
        if self.tracks is None:
            return None
        if source.kind != "video":
            if source.name not in self.untracked:
                self.untracked.add(source.name)
                log.warning("--track follows objects through video frames: %s is not a video, not tracked", source.name)
            return None
        self.stems[source.name] = source.stem
        return self.tracks.update(source.name, item.frame or 0, exact, kept)

    def _image_file(self, item, source) -> str:
        """The image a pre-label points at: the file itself, or a video frame written as one."""
        if source.kind != "video":
            return item.name
        path = self.out / "frames" / item.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(item.image, cv2.COLOR_RGB2BGR))
        return str(path)

    def _json(self, item, dets: list[dict], kept: list[bool], ids: dict[int, int]) -> None:
        """Every detection the model returns (a scored file needs them), each marked kept or not
        (and with its track id under --track)."""
        image_id = len(self.images) + 1
        h, w = item.image.shape[:2]
        self.images.append({"id": image_id, "file_name": item.rel, "width": w, "height": h})
        frame = {"frame": item.frame} if item.frame is not None else {}
        for j, (d, k) in enumerate(zip(dets, kept)):  # unrounded scores: rounding would reorder the matching
            track = {"track_id": ids[j]} if j in ids else {}
            self.json.append(results_json.entry(image_id, d["box"], d["score"], d["label"], item.rel, d["class"],
                                                digits=3, kept=k, **frame, **track))

    def _txt(self, rel: Path, shape, dets) -> None:
        h, w = shape[:2]
        path = self.out / "labels" / rel.with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [yolo_line(d["box"], d["label"], w, h) + (f" {d['score']:.4f}" if self.args.save_conf else "")
                 for d in dets]
        path.write_text("".join(x + "\n" for x in lines))

    def _crops(self, rel: Path, image, dets) -> None:
        for k, d in enumerate(dets):
            x1, y1, x2, y2 = (int(round(v)) for v in d["box"])
            if x2 <= x1 or y2 <= y1:
                continue
            name = f"{rel.with_suffix('').as_posix().replace('/', '_')}_{k}.jpg"
            path = self.out / "crops" / safe_part(d["class"]) / safe_part(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_RGB2BGR))

    def _frame(self, source, drawn) -> None:
        writer = self.videos.get(id(source))
        if writer is None:
            stem = source.stem
            h, w = drawn.shape[:2]
            fps = source.fps / max(1, self.args.vid_stride)
            writer = cv2.VideoWriter(str(self.out / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            self.videos[id(source)] = writer
        writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        for writer in self.videos.values():
            writer.release()
        if self.args.save_json:
            categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.names)]
            results_json.write(self.out / "predictions.json", self.json)
            (self.out / "images.json").write_text(json.dumps({"images": self.images, "categories": categories}))
        if self.args.save_labels and self.prelabels:
            dst = self.out / f"labels_{self.args.save_labels}"
            write_prelabels(self.args.save_labels, str(dst), self.prelabels, self.names)
            log.info("pre-labels (%s, %d images, the detections kept above): %s", self.args.save_labels,
                     len(self.prelabels), dst)
        if self.tracks is not None and self.tracks.trackers:
            self._write_tracks()
        if self.args.rank and self.ranked:
            write_ranking(str(self.out / "to_label.txt"), self.ranked, self.args.rank)
            log.info("to_label.txt: the %d least certain of %d images (summed entropy of their detection scores)",
                     min(self.args.rank, len(self.ranked)), len(self.ranked))

    def _write_tracks(self) -> None:
        """tracks/<video>.txt (MOTChallenge lines) and tracks.json (unique objects and crossings)."""
        (self.out / "tracks").mkdir(exist_ok=True)
        for source, rows in self.tracks.mot.items():
            stem = self.stems[source]
            (self.out / "tracks" / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
        summary = self.tracks.summary(self.names)
        (self.out / "tracks.json").write_text(json.dumps(summary, indent=1))
        for source, s in summary.items():
            unique = ", ".join(f"{c} {n}" for c, n in s["unique"].items()) or "none"
            crossed = ", ".join(f"{c} in {v['in']} out {v['out']}" for c, v in s.get("crossings", {}).items())
            log.info("%s: unique objects %s%s", source, unique,
                     f"; line crossings {crossed or 'none'}" if "crossings" in s else "")


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    from ..distributed import device_for
    from ..inference.predictor import stream_inference
    from ..inference.sources import open_sources

    predictor, run_name = load_predictor(args, device_for(args.device, 0))
    classes = class_filter(args.classes, predictor.class_names)
    sources = open_sources(args.source, recursive=args.recursive, vid_stride=args.vid_stride)
    if args.track and not any(s.kind == "video" for s in sources):
        for source in sources:
            source.close()
        raise DataError(f"--track follows objects through the frames of a video or stream; {', '.join(args.source)} "
                        "holds images only: give a video file, a webcam index or a stream URL (a folder of frames "
                        "makes a video with: ffmpeg -framerate 25 -i frames/%06d.jpg clip.mp4)")
    out = new_run_dir(os.path.dirname(os.path.abspath(args.out)), os.path.basename(os.path.abspath(args.out))) \
        if args.out else new_run_dir(os.path.join(args.runs, "predict"), args.name or run_name)
    log.info("model: %s -> %s", predictor.describe(), out)
    log.info("keeping detections at %s", predictor.describe_scores(args.score))
    outputs = Outputs(out, args, predictor.class_names, predictor.class_scores(args.score))
    done, skipped, per_class, t0 = 0, [], Counter(), time.perf_counter()
    try:  # score 0: predictions.json has every detection (each marked `kept` or not); the rest only the kept
        for source, item, result in stream_inference(predictor, sources, score=0.0, classes=classes,
                                                     max_det=args.max_det, batch=args.batch):
            if result is None:
                skipped.append(item.error)
                log.warning("skipped (%d so far): %s", len(skipped), item.error)
                continue
            per_class.update(d["class"] for d in outputs.add(item, result, source))
            done += 1
    finally:
        for source in sources:
            source.close()
        outputs.close()
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
