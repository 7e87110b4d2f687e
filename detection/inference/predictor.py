"""A detector applied to images: PyTorch, TorchScript or ONNX Runtime, one preprocessing for all.

Every image is resized as uint8, before it becomes a float tensor, to the size training and
evaluation use (`data/pixels.target_size`: shorter side to min_size, longer side capped at
max_size), so the same picture gives the same detections here as in `eval_det.py`, and a
50-megapixel photo never becomes a 600 MB float tensor. Boxes come back in the original
image's pixels. A model exported with a fixed input size gets the image fitted inside that
size and padded at the right and bottom (boxes are unaffected).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.pixels import resize_to, target_size
from ..data.tiles import OVERLAP as TILE_OVERLAP
from ..errors import CheckpointError, DataError
from ..evaluation.calibration import apply_temperature
from ..utils.detections import phantom_rows, say_phantoms, to_detections
from .slicing import check_slicing, sliced_outputs

log = logging.getLogger("detection.inference")


@dataclass
class Result:
    """Detections of one image, best first, in its own pixels."""

    boxes: np.ndarray  # (N, 4) float xyxy
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int: index into class_names (0-based)
    class_names: list[str] = field(repr=False, default_factory=list)  # the model's classes
    path: str | None = None  # the file or frame it came from
    shape: tuple[int, int] = (0, 0)  # (height, width) of the original image
    extra: dict = field(default_factory=dict)  # e.g. the frame index of a video
    image: np.ndarray | None = field(default=None, repr=False)  # the pixels, kept for in-memory inputs and streams

    @property
    def names(self) -> list[str]:
        """The class name of each detection."""
        return [self.class_names[int(i)] for i in self.labels]

    def __len__(self) -> int:
        return len(self.scores)

    def detections(self, digits: int | None = 2) -> list[dict]:
        """As `{box, label (1-based), class, score}` dicts, the form drawing and JSON use."""
        return to_detections(self.boxes, self.scores, self.labels + 1, self.class_names, digits=digits)

    def plot(self, image: np.ndarray | None = None, line_width: int | None = None, labels: bool = True,
             conf: bool = True) -> np.ndarray:
        """An RGB uint8 copy of the image with the boxes drawn. The pixels: `image`, else the ones
        kept (arrays, PIL images, `stream=True` frames), else the file at `path` read again."""
        from ..utils.visualize import draw_detections

        if image is None:
            image = self.image
        if image is None and self.path:
            from ..data.images import read_image

            image = read_image(self.path)
        if image is None:
            raise DataError("this result keeps no pixels (a video frame outside stream=True): pass them, "
                            "result.plot(frame)")
        if image.shape[:2] != tuple(self.shape):
            raise DataError(f"the image is {image.shape[1]}x{image.shape[0]}, the result is of a "
                            f"{self.shape[1]}x{self.shape[0]} image: pass the image it was predicted on")
        return draw_detections(image, self.detections(), line_width, not labels, not conf)

    def save(self, path, image: np.ndarray | None = None, **plot_options) -> Path:
        """Write `plot()` to `path` (.jpg, .png, ...); returns the path."""
        import cv2

        from ..errors import writing

        path = Path(path)
        drawn = self.plot(image, **plot_options)
        with writing(path, "choose a writable folder"):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
                raise DataError(f"cannot write {path}: give it an image extension such as .jpg or .png")
        return path


# --- backends: a batch of float CHW tensors in [0, 1] -> [(boxes, scores, labels 1..K)] ---------


class TorchBackend:
    name = "pytorch"

    def __init__(self, model: torch.nn.Module, device: torch.device, amp: str = "none"):
        self.model, self.device, self.amp = model.to(device).eval(), device, amp

    @torch.no_grad()
    def __call__(self, batch: list[torch.Tensor]) -> list[tuple]:
        from ..utils.precision import autocast

        with autocast(self.device, self.amp):
            out = self.model([t.to(self.device) for t in batch])
        return [(o["boxes"].float().cpu().numpy(), o["scores"].float().cpu().numpy(), o["labels"].cpu().numpy())
                for o in out]


class TorchScriptBackend(TorchBackend):
    name = "torchscript"

    @torch.no_grad()
    def __call__(self, batch):
        import warnings

        with warnings.catch_warnings():  # "always returns a (Losses, Detections) tuple in scripting"
            warnings.simplefilter("ignore", UserWarning)
            _, out = self.model([t.to(self.device) for t in batch])
        return [(o["boxes"].cpu().numpy(), o["scores"].cpu().numpy(), o["labels"].cpu().numpy()) for o in out]


class ONNXBackend:
    """ONNX Runtime on one image at a time (the exported graph takes a single image)."""

    name = "onnxruntime"

    def __init__(self, path: str, device: torch.device):
        self.device = device
        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError(f"{path}: running an .onnx file needs ONNX Runtime: pip install onnxruntime "
                                  "(or pip install 'detection[export]')") from None
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else \
            ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = torch.get_num_threads()  # the threads PyTorch uses: one setting, compared alike
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
        self.input = self.session.get_inputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch):
        results = []
        for t in batch:
            out = dict(zip(self.outputs, self.session.run(None, {self.input: t.numpy()})))
            results.append((out["boxes"], out["scores"], out["labels"]))
        return results


def openvino_module(path):
    try:
        import openvino
    except ImportError:
        raise CheckpointError(f"{path}: OpenVINO files need the openvino package: pip install openvino "
                              "(or pip install 'detection[openvino]')") from None
    return openvino


def openvino_core(path):
    """The one OpenVINO Core of this process, which reads and compiles every model here: a Core
    per model would make a CPU plugin instance per model, and two of them destroyed in the order
    they were made leave the main thread on an unmapped signal stack (see utils.signal_stack)."""
    return _shared_core(openvino_module(path))


@functools.cache
def _shared_core(ov):
    return ov.Core()


class OpenVINOBackend:
    """OpenVINO on the CPU, one image at a time (the converted graph takes a single image)."""

    name = "openvino"

    def __init__(self, path: str):
        core = openvino_core(path)
        try:
            self.model = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                               "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        except Exception as e:  # noqa: BLE001 - OpenVINO raises its own types
            raise CheckpointError(f"{path}: OpenVINO cannot load it ({str(e).splitlines()[0][:200]})") from None
        self.device = torch.device("cpu")

    @classmethod
    def of_compiled(cls, compiled) -> OpenVINOBackend:
        """A backend around a model OpenVINO has compiled already (NNCF's candidates)."""
        backend = cls.__new__(cls)
        backend.model, backend.device = compiled, torch.device("cpu")
        return backend

    def __call__(self, batch):
        results = []
        for t in batch:
            out = {k.get_any_name(): v for k, v in self.model([t.numpy()]).items()}
            results.append((out["boxes"], out["scores"], out["labels"]))
        return results


# --- the predictor ----------------------------------------------------------------------------


class Predictor:
    """Preprocess, run a backend in batches, filter, map boxes back: `predict(images) -> [Result]`."""

    def __init__(self, backend, class_names: list[str], min_size: int, max_size: int,
                 fixed_size: tuple[int, int] | None = None, source: str = "", thresholds: dict | None = None,
                 tile_size: int = 0):
        self.backend, self.class_names = backend, list(class_names)
        self.min_size, self.max_size, self.fixed_size, self.source = min_size, max_size, fixed_size, source
        self.thresholds = thresholds  # the stored operating point: {rule, split, per_class: {name: score}}
        self.tile_size = tile_size  # model.tile_size: trained on tiles of this many native px, so predicts sliced
        # (tile size, overlap): sliced inference (slicing.py); a tiled model's own unless set_slicing says
        self.slicing: tuple[int, float] | None = (tile_size, TILE_OVERLAP) if tile_size else None

    @property
    def temperature(self) -> float | None:
        """The calibration fitted on validation (eval.calibrate=temperature), or None."""
        return (self.thresholds or {}).get("temperature")

    def class_scores(self, score: float | None) -> np.ndarray:
        """The score each class must reach, as results show scores (calibrated when a temperature
        is stored): `score` for all when given, else the stored per-class thresholds (a class
        without one, and a model without any: DEFAULT_SCORE)."""
        from ..evaluation.calibration import apply_temperature
        from ..evaluation.operating_point import DEFAULT_SCORE

        if score is not None:
            return np.full(len(self.class_names), float(score))
        per_class = (self.thresholds or {}).get("per_class") or {}
        raw = [per_class.get(n) for n in self.class_names]  # stored on the model's own scores
        shown = apply_temperature([0.0 if t is None else t for t in raw], self.temperature)
        return np.array([DEFAULT_SCORE if t is None else float(v) for t, v in zip(raw, shown)])

    def describe_scores(self, score: float | None) -> str:
        """Which score thresholds a prediction uses, for the log."""
        if score is not None:
            return f"score >= {score:g} for every class (given)"
        if not self.thresholds:
            return "score >= 0.25 for every class (the model stores no thresholds; give --score to choose)"
        per = ", ".join(f"{n} {t:.3f}" for n, t in zip(self.class_names, self.class_scores(None)))
        calibrated = f", scores calibrated with temperature {self.temperature:.3f}" if self.temperature else ""
        return (f"the model's per-class thresholds ({self.thresholds['rule']} on {self.thresholds['split']}"
                f"{calibrated}): {per}")

    # construction (of a checkpoint or an exported file: loading.open_model) --------------------

    @classmethod
    def coco_pretrained(cls, device: torch.device | str = "cpu") -> Predictor:
        """torchvision's COCO Faster R-CNN (MobileNetV3), through the offline-aware weight loader."""
        from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_FPN_Weights as W
        from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

        from ..models.weights import load_state_dict, load_weights_into

        model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=91)
        load_weights_into(model, load_state_dict(W.COCO_V1), str(W.COCO_V1))
        # torchvision's list includes background and 'N/A' gaps at their label index
        return cls(TorchBackend(model, torch.device(device)), list(W.COCO_V1.meta["categories"])[1:],
                   model.transform.min_size[-1], model.transform.max_size, source="torchvision COCO_V1")

    @property
    def model(self) -> torch.nn.Module | None:
        return getattr(self.backend, "model", None)

    def set_size(self, size: int) -> None:
        """Another input size (shorter side; the longer side's cap scales with it). PyTorch only:
        an exported graph has its resize baked in."""
        if not isinstance(self.backend, TorchBackend) or isinstance(self.backend, TorchScriptBackend):
            raise CheckpointError(f"--size cannot change an exported model ({self.source}); export again with --size")
        if self.tile_size:
            log.warning("%s was trained on %d-px tiles fed at %d px; --size %d feeds them at another scale",
                        self.source, self.tile_size, self.min_size, size)
        self.max_size = round(self.max_size * size / self.min_size)
        self.min_size = size
        t = self.backend.model.transform
        t.min_size, t.max_size = (size,), self.max_size

    # prediction -----------------------------------------------------------------------------

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """(CHW float tensor at the model's input size, per-axis factors back to the image's pixels)."""
        h, w = image.shape[:2]
        if self.fixed_size:
            fh, fw = self.fixed_size
            s = min(fh / h, fw / w)
            new_w, new_h = max(1, min(fw, round(w * s))), max(1, min(fh, round(h * s)))
        else:
            new_w, new_h = target_size(w, h, self.min_size, self.max_size)
        image = resize_to(image, new_w, new_h)
        if self.fixed_size:
            padded = np.zeros((*self.fixed_size, 3), np.uint8)
            padded[:new_h, :new_w] = image
            image = padded
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        return tensor, np.array([w / new_w, h / new_h] * 2, np.float32)

    def predict(self, images: list[np.ndarray], paths: list | None = None, score: float | None = 0.25,
                classes: list[int] | None = None, max_det: int | None = None, batch: int = 1,
                extras: list[dict] | None = None, raw_scores: bool = False) -> list[Result]:
        """Results of RGB uint8 HxWx3 images (the pixels of `load_resized` when read from files).
        `score=None`: each class's stored threshold (`class_scores`). Scores are calibrated when
        a temperature is stored, unless `raw_scores` (evaluation scores the model's own)."""
        thresholds, results = self.class_scores(score), []
        temperature = None if raw_scores else self.temperature
        for start in range(0, len(images), max(1, batch)):
            chunk = images[start:start + max(1, batch)]
            for k, (boxes, scores, labels) in enumerate(self._outputs(chunk)):
                i = start + k
                results.append(self._result(boxes, apply_temperature(scores, temperature), labels,
                                            chunk[k].shape[:2], thresholds, classes, max_det,
                                            paths[i] if paths else None, extras[i] if extras else {}))
        return results

    def _outputs(self, images: list[np.ndarray]) -> list[tuple]:
        """(boxes in each image's pixels, scores, labels 1..K): one forward pass, or sliced."""
        if self.slicing is not None:
            as_trained = self.slicing[0] == self.tile_size  # tiles as in training: no whole-image pass
            return [sliced_outputs(self, im, *self.slicing, whole=not as_trained) for im in images]
        prepared = [self.preprocess(im) for im in images]
        return [(np.asarray(b, np.float32).reshape(-1, 4) * back, s, lab)
                for (b, s, lab), (_, back) in zip(self.backend([t for t, _ in prepared]), prepared)]

    def set_slicing(self, size: int | None, overlap: float | None = None) -> None:
        """Sliced inference with tiles of `size` pixels overlapping by `overlap`. `size` None: the
        model's own way (sliced into its training tiles when it was trained on tiles, at `overlap`
        when given); 0: whole images. Overriding a tiled model's slicing is said in the log."""
        if size is None:
            if self.tile_size and overlap is not None:
                check_slicing(self.tile_size, overlap)
                self.slicing = (self.tile_size, float(overlap))
            return
        if size:
            check_slicing(size, TILE_OVERLAP if overlap is None else overlap)
        if self.tile_size and size != self.tile_size:
            log.warning("%s was trained on tiles of %d px and predicts sliced into them; --slice %d overrides that "
                        "(%s)", self.source, self.tile_size, size, "whole images" if not size else "other tiles")
        self.slicing = (int(size), TILE_OVERLAP if overlap is None else float(overlap)) if size else None

    def describe_input(self) -> str:
        """How images are fed, for the log: whole at the input size, or sliced (and why)."""
        if self.slicing is None:
            return f"whole images at min_size {self.min_size}, max_size {self.max_size}"
        size, overlap = self.slicing
        why = " (as trained: model.tile_size)" if size == self.tile_size else ""
        return f"sliced into {size}-px tiles overlapping {overlap:g}, each at {self.min_size} px{why}"

    def _result(self, boxes, scores, labels, shape, thresholds, classes, max_det, path, extra) -> Result:
        phantom = phantom_rows(scores, labels, boxes)
        say_phantoms(int(phantom.sum()), self.source)
        labels = np.asarray(labels, np.int64).reshape(-1) - 1
        if (labels[~phantom] >= len(self.class_names)).any():
            raise CheckpointError(f"{self.source or 'the model'}: returned class label {int(labels.max()) + 1}, "
                                  f"outside its {len(self.class_names)} classes (labels 1..{len(self.class_names)}); "
                                  "the graph and its metadata disagree: export the checkpoint again")
        scores = np.asarray(scores, np.float32).reshape(-1)
        keep = ~phantom  # label 0 is background (sigmoid heads can emit it), never a class
        keep[keep] = scores[keep] >= thresholds[labels[keep]]
        if classes is not None:
            keep &= np.isin(labels, classes)
        order = np.argsort(-scores[keep], kind="stable")[:max_det]
        idx = np.flatnonzero(keep)[order]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[idx]
        h, w = shape
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Result(boxes, scores[idx], labels[idx], self.class_names, path, (h, w), dict(extra))

    def __call__(self, image: np.ndarray, conf: float = 0.25) -> list[dict]:
        """Detection dicts of one image above `conf` (the form drawing and JSON use)."""
        return self.predict([image], score=conf)[0].detections()

    def describe(self) -> str:
        return f"{self.source} ({self.backend.name}, {len(self.class_names)} classes)"


# --- the one streaming pipeline: the API's predict and infer.py both consume it ------------------


def class_indices(classes, names: list[str], what: str = "classes") -> list[int] | None:
    """The 0-based indices of the classes to keep: None (all), names or indices, one or a list, or
    infer.py's comma-separated text of them ("RBC,2"). A class the model lacks is one line."""
    if classes is None or (isinstance(classes, str) and not classes.strip()):
        return None
    if isinstance(classes, str):
        tokens = [int(t) if t.isdigit() else t for t in (t.strip() for t in classes.split(",")) if t]
    else:
        tokens = [classes] if isinstance(classes, (int, np.integer)) else list(classes)
    out = []
    for c in tokens:
        if isinstance(c, str) and c in names:
            out.append(names.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(names):
            out.append(int(c))
        else:
            raise DataError(f"{what}: {c!r} is not a class of this model ({', '.join(names[:20])})")
    return out


def stream_inference(predictor: Predictor, sources, score: float | None = None, classes: list[int] | None = None,
                     max_det: int | None = None, batch: int = 1, keep_images: bool = False):
    """(source, item, result) for every image or frame of `sources` (opened `sources.Source`s,
    each closed when done), in order and in batches of `batch` (`score=None`: each class's stored
    threshold); result is None for an item
    that could not be read (its `error` says why). `keep_images` keeps the pixels on the result
    (for `plot()`); without it a result holds only its detections."""
    for source in sources:
        try:
            for chunk in _batches(source, max(1, batch)):
                if chunk[0].error:
                    yield source, chunk[0], None
                    continue
                extras = [{"frame": it.frame} if it.frame is not None else {} for it in chunk]
                paths = [None if it.name.startswith("<") else it.name for it in chunk]
                results = predictor.predict([it.image for it in chunk], paths, score=score, classes=classes,
                                            max_det=max_det, batch=batch, extras=extras)
                for item, result in zip(chunk, results):
                    if keep_images:
                        result.image = item.image
                    yield source, item, result
        finally:
            source.close()


def _batches(source, size: int):
    """Lists of readable items, and each unreadable one alone as it comes (a one-item list)."""
    chunk = []
    for item in source:
        if item.error:
            yield [item]
            continue
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
