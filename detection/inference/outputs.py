"""What a predict run writes, for infer.py and `Detector.predict(save=...)` alike: drawn images or
videos, `predictions.json` (COCO results: every detection, each marked `kept`), YOLO label
lines, crops, pre-labels to correct (`labels_<format>/`), the least certain images to label
next (`to_label.txt`) and tracks. One `SaveOptions` value says what; `predict_and_write` is the
one loop both callers run, so the same options write the same files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..data.yolo import yolo_line
from ..utils import results_json
from ..utils.runs import safe_part
from ..utils.visualize import draw_detections
from .labeling import RANK_FLOOR, detections_record, uncertainty, write_prelabels, write_ranking
from .tracking import VideoTracks

log = logging.getLogger("detection.inference")

LABEL_FORMATS = ("voc", "coco", "yolo")


@dataclass(frozen=True)
class SaveOptions:
    """What a predict run writes (infer.py's flags: `--no-save`, `--save-json`, ...)."""

    images: bool = True  # the drawn images, or a drawn video per video source
    json: bool = False  # predictions.json and images.json
    txt: bool = False  # labels/<image>.txt, YOLO lines
    conf: bool = False  # txt: the score after each line
    crops: bool = False  # crops/<class>/<image>_<k>.jpg
    labels: str | None = None  # labels_<format>/: the kept detections as a data set (voc, coco, yolo)
    rank: int | None = None  # to_label.txt: the N least certain images
    track: bool = False  # videos: track ids, tracks/<video>.txt and tracks.json
    line: tuple[float, float, float, float] | None = None  # track: count crossings of this line
    line_width: int | None = None
    hide_labels: bool = False
    hide_conf: bool = False
    vid_stride: int = 1  # the video frames used (the drawn video's frame rate follows)

    def __post_init__(self):
        from ..errors import ConfigError

        if self.labels is not None and self.labels not in LABEL_FORMATS:
            raise ConfigError(f"save labels={self.labels!r}: choose one of {', '.join(LABEL_FORMATS)}")
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1):
            raise ConfigError(f"save rank={self.rank!r}: a number of images, 1 or more")
        if self.line is not None and not self.track:
            raise ConfigError("save line=...: counting crossings needs track=True")


def output_folder(out, runs, name: str) -> Path:
    """`out` as a new folder (`-2`, `-3`... when taken), else <runs>/predict/<name>: never
    written into an earlier run's, never next to the inputs."""
    import os

    from ..utils.runs import new_run_dir

    if out:
        return new_run_dir(os.path.dirname(os.path.abspath(out)), os.path.basename(os.path.abspath(out)))
    return new_run_dir(os.path.join(runs, "predict"), name)


def keep(result, mask) -> object:
    """`result` with only the detections `mask` keeps (the same object type, the same order)."""
    from dataclasses import replace

    mask = np.asarray(mask, dtype=bool)
    return replace(result, boxes=result.boxes[mask], scores=result.scores[mask], labels=result.labels[mask])


def predict_and_write(predictor, sources, out: Path, options: SaveOptions, score: float | None = None,
                      classes: list[int] | None = None, max_det: int | None = None, batch: int = 1,
                      keep_images: bool = False):
    """(source, item, result of the kept detections, or None for an unreadable item) of every
    image or frame, its outputs written under `out` as it goes, and the run's files (json,
    pre-labels, ranking, tracks) when the loop ends. The model is asked for every detection
    (score 0: predictions.json has them all, each marked `kept`); the rest keep those that reach
    `score`, or their class's stored threshold."""
    from .predictor import stream_inference

    outputs = Outputs(out, options, predictor.class_names, predictor.class_scores(score))
    try:
        for source, item, result in stream_inference(predictor, sources, score=0.0, classes=classes,
                                                     max_det=max_det, batch=batch, keep_images=keep_images):
            if result is None:
                yield source, item, None
                continue
            kept = outputs.add(item, result, source)
            yield source, item, keep(result, kept)
    finally:
        outputs.close()


class Outputs:
    """Everything written for one predict run (infer.py's, or `Detector.predict(save=...)`)."""

    def __init__(self, out: Path, options: SaveOptions, class_names: list[str], class_scores):
        self.out, self.options, self.names = out, options, class_names
        self.tracks = VideoTracks(options.line) if options.track else None
        self.untracked: set[str] = set()  # image sources --track was given for
        self.class_scores = class_scores  # what each class's detections must score to be kept
        self.json: list[dict] = []
        self.images: list[dict] = []
        self.videos: dict = {}
        self.stems: dict[str, str] = {}  # a tracked video's name: the stem its outputs are written under
        self.prelabels: list = []  # --save-labels: one record per image, its kept detections as boxes
        self.ranked: list[tuple[str, float, int]] = []  # --rank: (image, uncertainty, detections scored)

    def add(self, item, result, source) -> list[bool]:
        """Write one image's (or frame's) outputs; returns which of its detections are kept (those
        that reach the score, or their class's stored threshold)."""
        a = self.options
        exact = result.detections(digits=None)  # unrounded scores decide, as in the scored json
        kept = [bool(d["score"] >= self.class_scores[d["label"] - 1]) for d in exact]
        rounded = result.detections()
        dets = [d for d, k in zip(rounded, kept) if k]  # the same order: best first
        shown, ids = dets, self._track(item, source, exact, kept)
        if ids is not None:  # a tracked frame shows the tracked boxes, each with its id
            shown = [{**rounded[j], "class": f"#{tid} {rounded[j]['class']}"} for j, tid in sorted(ids.items())]
        if a.json:
            self._json(item, exact, kept, ids or {})
        rel = Path(item.rel)
        if not not a.images:
            drawn = draw_detections(item.image, shown, a.line_width, a.hide_labels, a.hide_conf)
            if source.kind == "video":
                self._frame(source, drawn)
            else:
                path = self.out / (rel if rel.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else
                                   rel.with_suffix(".jpg"))
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if a.txt:
            self._txt(rel, item.image.shape, dets)
        if a.crops:
            self._crops(rel, item.image, dets)
        if a.labels:
            h, w = item.image.shape[:2]
            self.prelabels.append(detections_record(self._image_file(item, source), w, h, dets,
                                                    len(self.prelabels) + 1))
        if a.rank:
            self.ranked.append((item.name, uncertainty(d["score"] for d in exact),
                                sum(d["score"] >= RANK_FLOOR for d in exact)))
        return kept

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
        lines = [yolo_line(d["box"], d["label"], w, h) + (f" {d['score']:.4f}" if self.options.conf else "")
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
            fps = source.fps / max(1, self.options.vid_stride)
            writer = cv2.VideoWriter(str(self.out / f"{stem}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            self.videos[id(source)] = writer
        writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        for writer in self.videos.values():
            writer.release()
        if self.options.json:
            categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.names)]
            results_json.write(self.out / "predictions.json", self.json)
            (self.out / "images.json").write_text(json.dumps({"images": self.images, "categories": categories}))
        if self.options.labels and self.prelabels:
            dst = self.out / f"labels_{self.options.labels}"
            write_prelabels(self.options.labels, str(dst), self.prelabels, self.names)
            log.info("pre-labels (%s, %d images, the detections kept above): %s", self.options.labels,
                     len(self.prelabels), dst)
        if self.tracks is not None and self.tracks.trackers:
            self._write_tracks()
        if self.options.rank and self.ranked:
            write_ranking(str(self.out / "to_label.txt"), self.ranked, self.options.rank)
            log.info("to_label.txt: the %d least certain of %d images (summed entropy of their detection scores)",
                     min(self.options.rank, len(self.ranked)), len(self.ranked))

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
