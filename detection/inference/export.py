"""Export a trained detector to ONNX, OpenVINO or TorchScript, with what it needs to run stored inside.

The whole torchvision detector goes into the file: normalisation, its resize, the network,
box decoding and NMS, so the file takes one RGB float image in [0, 1] (CHW) and returns
boxes, scores and labels. Class names, the input size and the preprocessing are stored in
the file (ONNX `metadata_props`, TorchScript extra files), so `infer.py --ckpt best.onnx`
and `Detector.from_checkpoint("best.onnx")` need nothing else. After writing, the file is
run once on a test image and its detections compared with PyTorch's; a mismatch is an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from ..errors import DetectionError
from ..utils.runs import model_file, score_file
from .metadata import META_KEY, check_thresholds, load_torchscript, metadata, write_onnx_metadata

log = logging.getLogger("detection.inference.export")

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "openvino": ".xml"}  # openvino: IR .xml + .bin
MIN_OPSET = 11  # torchvision's detectors need RoiAlign and NMS from opset 11 on


class ExportError(DetectionError):
    pass


def write_openvino(onnx_path: str, xml_path: str, meta: dict) -> None:
    """The OpenVINO IR (xml + bin, float32) of an exported ONNX file, with the metadata inside."""
    from .predictor import openvino_module

    ov = openvino_module(xml_path)
    model = ov.convert_model(onnx_path)
    model.set_rt_info(json.dumps(meta), [META_KEY])
    ov.save_model(model, xml_path, compress_to_fp16=False)


@torch.jit.unused
def _size_traced(image: Tensor, min_size: int, max_size: int) -> list[int]:
    """`ExactResize`'s output size as graph values (the graph keeps tensors; TorchScript is told ints)."""
    shape = torch._shape_as_tensor(image)[-2:]
    short, long = shape.min(), shape.max()
    by_short = min_size * long <= max_size * short
    num = torch.where(by_short, torch.tensor(min_size), torch.tensor(max_size))
    out = torch.div(shape * num, torch.where(by_short, short, long), rounding_mode="floor")
    return [out[0], out[1]]


class ExactResize(GeneralizedRCNNTransform):
    """The detector's transform as it is exported: the resized size in whole numbers. torchvision
    computes the resize scale in the graph as `float(min_size) / side`, which torch (and OpenVINO,
    for any float division) computes as a reciprocal times a product: 427 / 427 is 0.99999994 in
    float32, so the exported graph resized an image whose long side was already 427 to 426 px and
    every box moved (the search's 320-px exports of a 384 / 512 model failed their parity check
    so). The size torchvision means, floor(side * min(min_size / short, max_size / long)), is
    floor(side * num / den) in integers, exact in every runtime; eager PyTorch, the reference,
    divides Python floats and gets the same. Evaluation only: an export has no targets."""

    def resize(self, image: Tensor, target: Optional[dict[str, Tensor]] = None) \
            -> tuple[Tensor, Optional[dict[str, Tensor]]]:  # noqa: UP045 - TorchScript reads Optional
        if self.fixed_size is not None:
            size = [self.fixed_size[1], self.fixed_size[0]]
        elif torch.jit.is_scripting():
            h, w = image.shape[-2], image.shape[-1]
            short, long = min(h, w), max(h, w)
            num, den = (self.min_size[-1], short) if self.min_size[-1] * long <= self.max_size * short \
                else (self.max_size, long)
            size = [h * num // den, w * num // den]
        else:
            size = _size_traced(image, int(self.min_size[-1]), int(self.max_size))
        return torch.nn.functional.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0], target


@contextlib.contextmanager
def exact_resize(model):
    """`model`'s transform as `ExactResize` while it is traced or scripted; the parity check after
    compares the file with the model as PyTorch runs it, so it is put back."""
    t = model.transform
    model.transform = ExactResize(t.min_size, t.max_size, t.image_mean, t.image_std, t.size_divisible,
                                  t.fixed_size)
    try:
        yield
    finally:
        model.transform = t


def _example(min_size: int, max_size: int, fixed_size) -> torch.Tensor:
    h, w = fixed_size if fixed_size else (min_size, max_size)
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, h, w, generator=g)


def _write_onnx(model, example, path: str, opset: int, dynamic: bool, outputs: list[str], meta: dict) -> None:
    try:
        import onnx  # noqa: F401 - checked before the export, used by write_onnx_metadata
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime "
                          "(or pip install 'detection[export]')") from None
    axes = {k: {0: "detections"} for k in outputs}
    if dynamic:
        axes["image"] = {1: "height", 2: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python values: the parity check below decides
        torch.onnx.export(model, ([example],), path, opset_version=opset, input_names=["image"],
                          output_names=outputs, dynamic_axes=axes, dynamo=False)
    write_onnx_metadata(path, meta)


def _write_torchscript(model, path: str, meta: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice and the (losses, detections) note
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, path, _extra_files={META_KEY: json.dumps(meta)})


def test_candidates(model) -> int:
    """The candidates a detector keeps at test time before its last NMS: the RPN's proposals of
    a two-stage model, the top-scoring anchors (or points) per level of a one-stage one."""
    return model.rpn._post_nms_top_n["testing"] if hasattr(model, "rpn") else model.topk_candidates


def set_test_candidates(model, n: int) -> None:
    """Keep `n` candidates at test time (`test_candidates`); the RPN's per-level pre-NMS count
    scales with it. Fewer is faster (RoIAlign and the box head run on each proposal) and may
    cost AP: `tools/benchmark.py --search` measures both."""
    if hasattr(model, "rpn"):
        pre, post = model.rpn._pre_nms_top_n["testing"], model.rpn._post_nms_top_n["testing"]
        model.rpn._pre_nms_top_n["testing"] = max(n, round(pre * n / post))
        model.rpn._post_nms_top_n["testing"] = n
    else:
        model.topk_candidates = n


def export(ckpt_path, fmt: str, opset: int = 17, dynamic: bool = True, size: int | None = None,
           out: str | None = None, check: bool = True, candidates: int | None = None) -> Path:
    """Write `<checkpoint stem>.onnx|.torchscript` beside the checkpoint (or `out`); returns its path.
    `size` and `candidates` (`set_test_candidates`) override the model's own at test time."""
    from ..checkpoint import load_checkpoint, model_from_checkpoint
    from ..config import load_config

    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx" and opset < MIN_OPSET:
        raise ExportError(f"--opset {opset}: torchvision's detectors need opset {MIN_OPSET} or newer")
    ckpt_path, kind, _ = model_file(ckpt_path)
    if kind != "checkpoint":
        raise ExportError(f"{ckpt_path} is already an exported {kind} file: export from its checkpoint")
    ckpt = load_checkpoint(ckpt_path)
    model = model_from_checkpoint(ckpt, ckpt_path).eval()
    m = load_config(base=ckpt["config"])["model"]
    min_size, max_size = m["min_size"], m["max_size"]
    if size:
        min_size, max_size = size, round(max_size * size / min_size)
        model.transform.min_size, model.transform.max_size = (min_size,), max_size
    if candidates:
        set_test_candidates(model, candidates)
    fixed = None if dynamic or fmt != "onnx" else (min_size, max_size)
    check_thresholds(ckpt_path, ckpt.get("thresholds"), ckpt["class_names"])  # refused before anything is written
    meta = metadata(ckpt["class_names"], min_size, max_size, m["arch"], fixed, str(ckpt_path), ckpt.get("thresholds"),
                    m["tile_size"], test_candidates(model))
    target = Path(out) if out else ckpt_path.with_suffix(FORMATS[fmt])
    example = _example(min_size, max_size, fixed)  # traces the graph; the parity check uses real images
    with torch.no_grad():
        outputs = list(model([example])[0].keys())
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=FORMATS[fmt], dir=str(target.parent))
    os.close(fd)
    try:
        try:
            with exact_resize(model):
                if fmt == "onnx":
                    _write_onnx(model, example, tmp, opset, dynamic, outputs, meta)
                elif fmt == "openvino":  # through ONNX, which OpenVINO converts
                    _write_onnx(model, example, tmp + ".onnx", opset, dynamic, outputs, meta)
                    write_openvino(tmp + ".onnx", tmp, meta)
                else:
                    _write_torchscript(model, tmp, meta)
        except (RuntimeError, TypeError, ValueError, NotImplementedError, torch.jit.Error) as e:
            raise ExportError(f"{m['arch']} cannot be exported to {fmt} with torch {torch.__version__} / "
                              f"torchvision {_tv_version()}: {str(e).splitlines()[0][:300]}") from None
        if check:
            check_parity(model, tmp, fmt, *parity_inputs(ckpt, min_size, max_size, fixed))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the export is an ordinary file
        if fmt == "openvino":  # the weights first: an .xml never points at a missing .bin
            os.replace(Path(tmp).with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(tmp, target)
        score_file(target).unlink(missing_ok=True)  # the score of the file this one replaced
    finally:
        for leftover in (tmp, tmp + ".onnx", str(Path(tmp).with_suffix(".bin"))):
            if os.path.exists(leftover):
                os.remove(leftover)
    return target


def _tv_version() -> str:
    import torchvision

    return torchvision.__version__


def match(ref: tuple, other: tuple, iou: float = 0.99, score_tol: float = 1e-3, top: int | None = None) -> float:
    """Share of the reference detections (the `top` best) that `other` has: same label, IoU > `iou`,
    score within `score_tol`. Both are (boxes, scores, labels) arrays."""
    from torchvision.ops import box_iou

    rb, rs, rl = (np.asarray(a) for a in ref)
    ob, os_, ol = (np.asarray(a) for a in other)
    order = np.argsort(-rs, kind="stable")[:top]
    if not len(order):
        return 1.0 if not len(os_) else 0.0
    if not len(os_):
        return 0.0
    ious = box_iou(torch.as_tensor(rb[order], dtype=torch.float32), torch.as_tensor(ob, dtype=torch.float32)).numpy()
    same = np.abs(rb[order][:, None, :] - ob[None, :, :]).max(-1) <= 0.01  # also empty boxes (IoU 0 with anything)
    ok = ((ious > iou) | same) & (rl[order][:, None] == ol[None, :]) & \
        (np.abs(rs[order][:, None] - os_[None, :]) <= score_tol)
    return float(ok.any(1).mean())


PARITY_IMAGES = 4  # images the exported file is checked on against PyTorch


def parity_inputs(ckpt: dict, min_size: int, max_size: int, fixed) -> tuple[list[torch.Tensor], str]:
    """Up to PARITY_IMAGES images as the exported file is fed them, and what they are: the run's
    validation images where they can be read here, else seeded synthetic shape images. Noise checks
    nothing: a trained model finds nothing in it, so two files that disagree on every real image
    both return nothing there."""
    from ..config import load_config
    from ..data.dataset import read_split
    from ..data.images import read_record_image
    from ..data.synthetic import make_image
    from ..errors import ConfigError, DataError
    from .predictor import Predictor

    images, where = [], ""
    try:
        cfg = load_config(None, base=ckpt["config"])
        d = cfg["data"]
        records, _ = read_split(d, d["val_split"], False, ckpt["class_names"], cfg["seed"])
        picks = np.unique(np.linspace(0, len(records) - 1, min(PARITY_IMAGES, len(records))).astype(int))
        images = [read_record_image(records[i]) for i in picks]
        where = f"{len(images)} validation images of the run"
    except (DataError, ConfigError, OSError, KeyError, TypeError):
        images = []
    if not images:
        rng = np.random.default_rng(0)
        images = [make_image(rng, max(min_size, 64))[0] for _ in range(PARITY_IMAGES)]
        where = f"{PARITY_IMAGES} synthetic images (the run's validation images cannot be read here)"
    feed = Predictor(None, ckpt["class_names"], min_size, max_size, fixed_size=fixed)
    return [feed.preprocess(im)[0] for im in images], where


def check_parity(model, path: str, fmt: str, inputs: list[torch.Tensor], where: str = "a test image",
                 need: float = 0.95) -> None:
    """The exported file's detections on `inputs` against the model's, rows that are no detection
    (`detections.phantom_rows`) left out of both: an error when they differ."""
    from ..utils.detections import phantom_rows
    from .predictor import ONNXBackend, OpenVINOBackend, TorchScriptBackend

    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            log.warning("onnxruntime is not installed: the export was not checked (pip install onnxruntime)")
            return
    backend = ONNXBackend(path, torch.device("cpu")) if fmt == "onnx" else OpenVINOBackend(path) \
        if fmt == "openvino" else TorchScriptBackend(load_torchscript(path), torch.device("cpu"))
    shares, found = [], 0
    for example in inputs:
        with torch.no_grad():
            o = model([example])[0]
        ref = _real((o["boxes"].numpy(), o["scores"].numpy(), o["labels"].numpy()), phantom_rows)
        got = _real(backend([example])[0], phantom_rows)
        found += len(ref[1])
        shares.append(match(ref, got, top=50))
    share = float(np.mean(shares))
    if share < need:
        raise ExportError(f"the exported {fmt} file disagrees with PyTorch: {share:.0%} of the 50 best detections "
                          f"match on {where}; the export is not kept")
    log.info("%s export checked against PyTorch on %s: %.0f%% of the 50 best detections match (%d detections)",
             fmt, where, share * 100, found)


def _real(rows: tuple, phantom_rows) -> tuple:
    boxes, scores, labels = (np.asarray(a) for a in rows)
    keep = ~phantom_rows(scores, labels, boxes)
    return boxes.reshape(-1, 4)[keep], scores.reshape(-1)[keep], labels.reshape(-1)[keep]
