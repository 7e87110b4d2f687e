"""What inference reads: files, folders, globs, lists, videos, webcams and streams, as one iterator.

`open_source(spec)` returns a `Source` whose iteration yields `Item`s: an RGB uint8 image
(or the error that kept it from being read), a display name, the path to write its outputs
under (relative, so two `img.jpg` from different folders stay apart), and for video the
frame index. Images that cannot be read come out as items with an error: the caller skips,
names and counts them, and goes on. Video frames are decoded on a background thread.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
from dataclasses import dataclass

import numpy as np

from ..data.images import DEFAULT_MAX_PIXELS, IMAGE_EXTS, ImageReadError, read_image
from ..errors import DataError
from ..utils.runs import safe_part

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass
class Item:
    image: np.ndarray | None  # HxWx3 RGB uint8, or None when it could not be read
    name: str  # the file (or "video.mp4 frame 12") for messages
    rel: str  # where its outputs go, relative to the output folder
    error: str = ""
    frame: int | None = None  # video and streams: the frame index


class Source:
    kind = "images"
    name = "images"  # for messages
    fps: float = 0.0

    def __iter__(self):
        raise NotImplementedError

    def close(self) -> None:
        pass


class ImageFiles(Source):
    """A list of image files, read one by one; `rels` keeps their paths relative to a common root."""

    def __init__(self, paths: list[str], root: str, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.paths, self.root, self.max_pixels = paths, root, max_pixels
        self.name = root or (paths[0] if paths else "images")

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        for p in self.paths:
            rel = os.path.relpath(p, self.root) if self.root else os.path.basename(p)
            try:
                yield Item(read_image(p, self.max_pixels), p, rel)
            except ImageReadError as e:
                yield Item(None, p, rel, str(e))


class Arrays(Source):
    """Images already in memory (the Python API's arrays and PIL images), in the order given."""

    def __init__(self, images: list[np.ndarray], first_index: int = 0):
        self.images, self.first = images, first_index

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):
        for k, image in enumerate(self.images, self.first):
            yield Item(image, f"<image {k}>", f"image_{k}.jpg")


class Unopened(Source):
    """A source that could not be opened (the Python API's list skips it, names it, and goes on)."""

    def __init__(self, name: str, error: str):
        self.name, self.error = name, error

    def __iter__(self):
        yield Item(None, self.name, os.path.basename(self.name) or "source", self.error)


class VideoSource(Source):
    """A video file, webcam or stream through OpenCV, decoded on a thread into a small queue."""

    kind = "video"

    def __init__(self, spec, name: str, vid_stride: int = 1, live: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        import cv2

        self.cap = cv2.VideoCapture(spec)
        if not self.cap.isOpened():
            raise DataError(f"cannot open video source {name!r}: not a video OpenCV can read, or the camera/stream "
                            "is not reachable")
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > max_pixels:  # the same pixel budget as images: each frame is decoded whole
            self.cap.release()
            raise DataError(f"{name}: frames of {w}x{h} = {w * h / 1e6:.0f} megapixels are over the pixel budget "
                            f"({max_pixels / 1e6:.0f} MP)")
        self.name, self.stride, self.live = name, max(1, vid_stride), live
        self.stem = safe_part(os.path.splitext(os.path.basename(str(name).rstrip("/")))[0], "stream")  # outputs
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        import cv2

        index = failed = 0
        while not self.stop.is_set():
            ok = self.cap.grab()
            if not ok:
                break
            if index % self.stride == 0:
                ok, frame = self.cap.retrieve()
                if ok:
                    self._put((index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                else:
                    failed += 1
            index += 1
        if not self.stop.is_set() and (error := self._lost_frames(index, failed)):
            self._put((index, error))
        self._put(None)

    def _lost_frames(self, decoded: int, failed: int) -> str:
        """A file that ended early or had frames that would not decode: which file, and how many."""
        if self.live:
            return ""
        if decoded == 0:
            return f"{self.name}: no frame could be decoded (an empty, truncated or corrupt video)"
        lost = max(self.frames - decoded, 0) + failed
        if lost:
            return (f"{self.name}: {lost} of {max(self.frames, decoded)} frames could not be decoded (the video is "
                    "truncated or corrupt); the frames before were used")
        return ""

    def _put(self, value) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(value, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        stem = self.stem
        while True:
            value = self.queue.get()
            if value is None:
                return
            index, frame = value
            if isinstance(frame, str):  # what _lost_frames found
                yield Item(None, self.name, f"{stem}.mp4", frame)
                continue
            yield Item(frame, f"{self.name} frame {index}", f"{stem}_{index:06d}.jpg", frame=index)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.cap.release()


def _images_in(folder: str, recursive: bool) -> list[str]:
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found += [os.path.join(here, f) for f in sorted(files) if os.path.splitext(f)[1].lower() in IMAGE_EXTS]
    return found


def _from_list(txt: str) -> list[str]:
    here = os.path.dirname(os.path.abspath(txt))
    with open(txt, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    return [p if os.path.isabs(p) else os.path.normpath(os.path.join(here, p)) for p in lines]


def _common_root(paths: list[str]) -> str:
    if not paths:
        return ""
    dirs = [os.path.dirname(os.path.abspath(p)) for p in paths]
    return os.path.commonpath(dirs)


def open_source(spec: str, recursive: bool = False, vid_stride: int = 1,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Source:
    """The source a `--source` value names (see the module docstring for the kinds)."""
    spec = str(spec)
    if spec.isdigit():
        return VideoSource(int(spec), f"webcam{spec}", vid_stride, live=True, max_pixels=max_pixels)
    if spec.lower().startswith(STREAM_PREFIXES):
        return VideoSource(spec, spec, vid_stride, live=True, max_pixels=max_pixels)
    ext = os.path.splitext(spec)[1].lower()
    if os.path.isfile(spec) and ext in VIDEO_EXTS:
        return VideoSource(spec, spec, vid_stride, max_pixels=max_pixels)
    if os.path.isdir(spec):
        paths = _images_in(spec, recursive)
        root = spec
    elif os.path.isfile(spec) and ext == ".txt":
        paths = _from_list(spec)
        root = _common_root(paths)
    elif os.path.isfile(spec):
        paths, root = [spec], os.path.dirname(os.path.abspath(spec))
    elif any(c in spec for c in "*?["):
        paths = sorted(p for p in glob.glob(spec, recursive=True) if os.path.splitext(p)[1].lower() in IMAGE_EXTS)
        root = _common_root(paths)
    else:
        raise DataError(f"source {spec!r}: no such file or folder (give an image, a folder, a glob, a .txt list, a "
                        "video file, a webcam index or an rtsp/http URL)")
    if not paths:
        raise DataError(f"source {spec!r}: no images found" + ("" if recursive else " (subfolders: recursive)"))
    return ImageFiles(paths, root, max_pixels)


def open_sources(specs: list[str], **kw) -> list[Source]:
    """Several `--source` values; image files given one by one are read as one list."""
    files = [s for s in specs if os.path.isfile(s) and os.path.splitext(s)[1].lower() in IMAGE_EXTS]
    others = [s for s in specs if s not in files]
    out = [ImageFiles(files, _common_root(files), kw.get("max_pixels", DEFAULT_MAX_PIXELS))] if files else []
    out += [open_source(s, **kw) for s in others]
    unique_stems([s for s in out if isinstance(s, VideoSource)])
    return out


def unique_stems(videos: list[VideoSource]) -> None:
    """Two videos of the same name (`day1/clip.mp4`, `day2/clip.mp4`) would write the same drawn
    video, track file, frames and pre-labels: the later ones take their folder's name in front
    (`day2_clip`), and a number after where that is taken too, as images keep their folders."""
    taken: set[str] = set()
    for v in videos:
        stem = v.stem
        if stem in taken:
            folder = os.path.basename(os.path.dirname(os.path.abspath(str(v.name)))) if not v.live else ""
            stem = safe_part(f"{folder}_{v.stem}") if folder else v.stem
            k = 2
            while stem in taken:
                stem, k = f"{v.stem}-{k}", k + 1
            v.stem = stem
        taken.add(stem)
