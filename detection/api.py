"""The Python API: the same work as the commands, callable from a notebook or a service.

    from detection import Detector
    det = Detector.from_checkpoint("runs/bccd_frcnn")     # a run folder, a .pt, or an exported .onnx/.torchscript
    for r in det.predict("folder/", score=0.3):
        r.boxes, r.scores, r.labels, r.names, r.path      # boxes in the original image's pixels
    det.predict(rgb_array); det.predict(pil_image); det.predict(["a.jpg", "b.jpg"])
    det.predict("folder/", save=SaveOptions(json=True, labels="yolo"))  # writes what infer.py writes

    import detection
    run, metrics = detection.train("configs/bccd_frcnn.yaml", epochs=3, **{"data.root": "..."})
    metrics = detection.evaluate("runs/bccd_frcnn")
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError
from .inference.outputs import SaveOptions
from .inference.predictor import Predictor, Result, class_indices

log = logging.getLogger("detection")


class Detector:
    """A trained detector: `predict` on paths, folders, videos, arrays or PIL images."""

    def __init__(self, predictor: Predictor, name: str = "predict"):
        self.predictor = predictor
        self.name = name  # what its saved predictions are filed under: runs/predict/<name>

    @classmethod
    def from_checkpoint(cls, path, device: str = "auto", amp: str = "none", slice: int | None = None,
                        overlap: float | None = None) -> Detector:
        """A run folder (its best.pt), a .pt checkpoint, or an exported .onnx / .torchscript file.
        `slice=640`: sliced inference (tiles of 640 pixels overlapping by `overlap`, default 0.2, plus
        the whole image), for small objects in large images. A model trained on tiles
        (model.tile_size) predicts sliced into them without it; `slice=0`: whole images."""
        from .inference.loading import open_model
        from .utils.distributed import device_for

        loaded = open_model(path, device_for(device, 0), amp)
        loaded.predictor.set_slicing(slice, overlap)
        return cls(loaded.predictor, loaded.name)

    @property
    def class_names(self) -> list[str]:
        return self.predictor.class_names

    def predict(self, source, score: float | None = None, classes=None, max_det: int = 300, batch: int = 1,
                recursive: bool = False, vid_stride: int = 1, stream: bool = False, save: SaveOptions | None = None,
                out: str | Path | None = None) -> list[Result] | Iterator[Result]:
        """Results of `source`, one per image or video frame, in order.

        `source`: a path (image, folder, glob, .txt list, video), a stream URL, a webcam index,
        an RGB uint8 array (HxWx3, or HxW grayscale), a PIL image, or a list of these.
        `score`: one threshold for every class; None keeps what reaches each class's threshold
        stored with the model (chosen on its validation split), 0.25 for a model without them.
        `classes`: names or 0-based indices to keep. Unreadable files are skipped with a
        warning that names them. `stream=True` returns a generator (for videos and streams);
        its results keep their pixels for `plot()`, as do those of arrays and PIL images.
        `save`: what to write (`SaveOptions`, infer.py's files: drawn images, json, labels, ...)
        into `out` (default runs/predict/<model name>, never overwritten; `self.saved_to` says where).
        """
        for name, value in (("batch", batch), ("vid_stride", vid_stride), ("max_det", max_det)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"predict: {name} must be a whole number of 1 or more, got {value!r}")
        if save is not None and not isinstance(save, SaveOptions):
            raise ConfigError(f"predict: save takes a SaveOptions (detection.SaveOptions(json=True, ...)), got "
                              f"{type(save).__name__}")
        keep = class_indices(classes, self.class_names)
        results = self._iterate(source, score, keep, max_det, batch, recursive, vid_stride, stream, save, out)
        return results if stream else list(results)

    def _iterate(self, source, score, classes, max_det, batch, recursive, vid_stride, stream, save,
                 out) -> Iterator[Result]:
        from .inference.outputs import output_folder, predict_and_write
        from .inference.predictor import stream_inference

        items = source if isinstance(source, (list, tuple)) else [source]
        sources = _sources(items, recursive, vid_stride)
        if save is None:
            stream_of = stream_inference(self.predictor, sources, score, classes, max_det, batch, keep_images=stream)
        else:
            self.saved_to = output_folder(out, "runs", self.name)
            log.info("saving predictions to %s", self.saved_to)
            stream_of = predict_and_write(self.predictor, sources, self.saved_to, replace(save, vid_stride=vid_stride),
                                          score, classes, max_det, batch, keep_images=stream)
        for _, item, result in stream_of:
            if result is None:
                log.warning("skipped: %s", item.error)
                continue
            if item.name.startswith("<"):
                result.image = item.image  # the caller's own array: keeping it costs nothing
            yield result


def _sources(items: list, recursive: bool, vid_stride: int):
    """Each path, URL or webcam index opened as it comes (one that cannot be opened is skipped and
    named, the others go on); runs of arrays and PIL images as one source."""
    from .inference.sources import Arrays, Unopened, open_source

    arrays: list = []
    for k, src in enumerate(items):
        if isinstance(src, (str, Path, int)):
            if arrays:
                yield Arrays(arrays, k - len(arrays))
                arrays = []
            try:
                yield open_source(str(src), recursive=recursive, vid_stride=vid_stride)
            except DataError as e:
                yield Unopened(str(src), str(e))
        else:
            arrays.append(as_rgb(src))
    if arrays:
        yield Arrays(arrays, len(items) - len(arrays))


def as_rgb(image) -> np.ndarray:
    """An RGB uint8 HxWx3 array from a numpy array or a PIL image."""
    try:
        from PIL import Image

        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"))
    except ImportError:  # pragma: no cover - Pillow is a dependency
        pass
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise DataError(f"images must be uint8 RGB arrays (0-255), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise DataError(f"images must be HxWx3 RGB arrays, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"images must have at least one pixel, got shape {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


# --- training and evaluation, as the commands do them -------------------------------------------


def get_config(cfg=None, **overrides) -> dict:
    """A full config from a YAML path (or a dict of keys) and overrides: dotted keys
    (`**{"train.epochs": 3}`) or bare names found in one section only (`epochs=3`, `root=...`)."""
    from .config import DEFAULT_CONFIG, load_config, load_yaml_with_bases, resolve_config_file

    schema = load_yaml_with_bases(DEFAULT_CONFIG)
    dotted = {}
    for key, value in overrides.items():
        dotted[key if "." in key or key in schema else _qualify(key, schema)] = value
    items = [f"{k}={_yaml_value(v)}" for k, v in dotted.items()]
    if isinstance(cfg, dict):
        return load_config(None, items, base=cfg)
    return load_config(resolve_config_file(cfg) if cfg else None, items)


def _qualify(key: str, schema: dict) -> str:
    found = [f"{section}.{key}" for section, values in schema.items() if isinstance(values, dict) and key in values]
    if len(found) != 1:
        raise ConfigError(f"{key!r} is " + ("in several sections: " + ", ".join(found) if found else
                                            "not a config key") + "; pass it dotted, e.g. **{'train.epochs': 3}")
    return found[0]


def _yaml_value(v) -> str:
    import json

    return json.dumps(v) if not isinstance(v, str) else v


def train(cfg=None, **overrides) -> tuple[Path, dict]:
    """Train as `tools/train_det.py` does; returns the run folder and the last validation results."""
    from .training.trainer import train as run_training
    from .utils.runs import resume_checkpoint

    if overrides.get("resume"):  # the run's own config; the other overrides extend or adjust it
        cfg = resume_checkpoint(overrides["resume"])[1].config
    return run_training(get_config(cfg, **overrides))


def evaluate(ckpt, cfg=None, slice: int | None = None, overlap: float | None = None, **overrides) -> dict:
    """Evaluate a run folder, checkpoint or exported file on its run's validation split (or
    `cfg`'s); the metrics dict `tools/eval_det.py` prints (COCO, per class, VOC). `slice`:
    score sliced inference (see Detector.from_checkpoint)."""
    from .deploy.scoring import evaluate_model
    from .inference.loading import open_model

    loaded = open_model(ckpt, "cpu")
    loaded.predictor.set_slicing(slice, overlap)
    if cfg is None and loaded.config is None:
        raise ConfigError(f"{loaded.path} is outside a run folder: pass cfg= (whose validation split to score it on)")
    full = get_config(cfg, **overrides) if cfg else get_config(loaded.config, **overrides)
    return evaluate_model(loaded, full)[0]
