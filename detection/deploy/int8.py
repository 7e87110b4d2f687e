"""INT8 files: ONNX Runtime's static quantization and OpenVINO's (NNCF), with the detector's
head kept in float and, for OpenVINO, accuracy control on the validation split.

What is quantized is the trunk, where the time goes: the backbone with its FPN, and the shared
convolutions of the heads (the RPN's 3x3 convolution, the box head's two fully connected layers,
RetinaNet's and FCOS's four-convolution towers). The layers that write the numbers the user sees
stay in float, and so does all arithmetic after them: the class and box outputs, the box
decoding, sigmoid and softmax, RoIAlign and NMS (`FLOAT_HEAD`). Quantizing the last layers moves
boxes and scores for little speed: in Ultralytics' exporter keeping the head's arithmetic in
float raised INT8 mAP50-95 from 35.7 to 36.3.

With a validation set, OpenVINO's INT8 goes through NNCF's `quantize_with_accuracy_control`: the
quantized model is scored on the run's validation images with the toolkit's own COCO AP, and
the layers that cost the most AP go back to float, one group at a time, until the loss is
within `max_drop` of the float file's AP, so the file written is the fastest NNCF can make
within the budget. The report lists every weighted layer left in float, read from the IR.
Weights are quantized per output channel, activations per tensor (NNCF's performance preset).
Both formats calibrate on training images, spread over the split, as the file is fed them (a
model trained on tiles: its tiles).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..inference.export import ExportError
from ..inference.metadata import META_KEY, read_metadata, write_onnx_metadata
from ..utils import signal_stack

log = logging.getLogger("detection.inference.export")

# module paths (the exported graphs' node names start with them) whose weighted layers are
# quantized; every other node stays in float: the heads' output layers and all that follows
QUANTIZED_TRUNK = {
    "fasterrcnn": ("/backbone/", "/rpn/head/conv/", "/roi_heads/box_head/"),
    "retinanet": ("/backbone/", "/head/classification_head/conv/", "/head/regression_head/conv/"),
    "fcos": ("/backbone/", "/head/classification_head/conv/", "/head/regression_head/conv/"),
    "ssdlite": ("/backbone/",),  # its heads are the output layers themselves
    "ssd": ("/backbone/",),
}
WEIGHTED_OV = ("Convolution", "GroupConvolution", "MatMul")  # OpenVINO op types with weights
WEIGHTED_ONNX = ("Conv", "Gemm", "MatMul")
ACCURACY_DROP = 0.01  # OpenVINO --int8: the AP its accuracy control may give up, without --max-drop
AC_IMAGES = 200  # validation images accuracy control scores on (evenly spread): each revert step scores them
RANKING_IMAGES = 50  # of those, the ones each group of quantizers is ranked on
# revert steps at most: each failed step ranks the remaining groups again (about 60 groups, each
# compiled and scored), minutes on a CPU; a file that does not reach the drop by then says so
AC_MAX_STEPS = 8


def trunk(arch: str) -> tuple[str, ...]:
    family = arch.split("_")[0]
    if family not in QUANTIZED_TRUNK:
        raise ExportError(f"--int8: no quantization scope is known for {arch} (known: "
                          f"{', '.join(QUANTIZED_TRUNK)})")
    return QUANTIZED_TRUNK[family]


def float_head_pattern(arch: str) -> str:
    """A regular expression (matched at the start of a node name) for every node outside the
    quantized trunk: NNCF's ignored scope."""
    return "(?!" + "|".join(re.escape(p) for p in trunk(arch)) + ")"


def in_trunk(name: str, arch: str) -> bool:
    return name.startswith(trunk(arch))


def float_layers(model) -> list[str]:
    """Names of the weighted layers of an OpenVINO model whose weights are float: quantized ones
    take theirs through a Convert of an int8 (or uint8) constant."""
    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in WEIGHTED_OV and not _int8_weights(op):
            out.append(op.get_friendly_name())
    return out


def _int8_weights(op) -> bool:
    node = op.input_value(1).get_node()
    for _ in range(6):  # Constant(i8) -> Convert -> [Subtract] -> Multiply -> [Reshape] -> the layer
        if node.get_type_name() == "Constant":
            return node.get_element_type().get_type_name() in ("i8", "u8")
        if node.get_input_size() == 0:
            return False
        node = node.input_value(0).get_node()
    return False


def layer_summary(names: list[str]) -> str:
    """`names` grouped by module (the path without its last two parts), for one log line."""
    groups: dict[str, int] = {}
    for n in names:
        key = "/".join(n.split("/")[:-2]) or n
        groups[key] = groups.get(key, 0) + 1
    return ", ".join(f"{k} ({v})" if v > 1 else k for k, v in groups.items())


# --- calibration and validation data -----------------------------------------------------------


def model_inputs(predictor, image: np.ndarray) -> list[np.ndarray]:
    """The tensors the file is fed for `image`: the image at the model's input, or, for a model
    that predicts sliced, its tiles at that input."""
    if predictor.slicing is None:
        return [predictor.preprocess(image)[0].numpy()]
    from ..data.tiles import tiles

    size, overlap = predictor.slicing
    h, w = image.shape[:2]
    return [predictor.preprocess(image[y0:y1, x0:x1])[0].numpy() for x0, y0, x1, y1 in tiles(h, w, size, overlap)]


def calibration_inputs(images: list[np.ndarray], predictor, count: int) -> list[np.ndarray]:
    """At most `count` model inputs of `images` (whole images, or tiles spread over them)."""
    inputs = [t for im in images for t in model_inputs(predictor, im)]
    picks = np.unique(np.linspace(0, len(inputs) - 1, min(count, len(inputs))).astype(int))
    return [inputs[i] for i in picks]


def calibration_images(cfg: dict, class_names: list[str], count: int) -> list[np.ndarray]:
    """`count` training images, evenly spread over the split (the same ones on every run)."""
    from ..data.dataset import read_split
    from ..data.images import read_record_image

    d = cfg["data"]
    records, _ = read_split(d, d["train_split"], True, class_names, cfg["seed"])
    picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).astype(int))
    return [read_record_image(records[i]) for i in picks]


@dataclass
class ValidationImages:
    """Validation images with their ground truth, scored by the toolkit's own COCO AP: what
    accuracy control measures each quantized candidate by."""

    images: list[np.ndarray]
    evaluator: object  # evaluation.evaluator.DetectionEvaluator of exactly these images
    source: str

    @classmethod
    def of_run(cls, cfg: dict, class_names: list[str], count: int = AC_IMAGES) -> ValidationImages:
        from ..data.dataset import read_split
        from ..data.images import read_record_image
        from ..evaluation.evaluator import DetectionEvaluator

        d, e = cfg["data"], cfg["eval"]
        records, info = read_split(d, d["val_split"], False, class_names, cfg["seed"])
        picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).astype(int))
        chosen = [records[i] for i in picks]
        ev = DetectionEvaluator(chosen, info, e["voc_metric"], e["iou_thresh"], e["backend"])
        return cls([read_record_image(r) for r in chosen], ev, f"{len(chosen)} images of {info.source}")

    def ap(self, predictor, items) -> float:
        """COCO AP of `predictor` on the images numbered `items` (NNCF ranks on subsets)."""
        self.evaluator.reset()
        for i in items:
            r = predictor.predict([self.images[int(i)]], score=0.0, max_det=None, raw_scores=True)[0]
            self.evaluator.add(int(i), r.boxes, r.scores, r.labels + 1)
        if not self.evaluator.predictions:
            return 0.0
        return float(self.evaluator.evaluate()["coco"]["AP"])


# --- ONNX Runtime ------------------------------------------------------------------------------


def quantize_int8(fp32: Path, out: Path, images: list[np.ndarray], predictor, arch: str) -> Path:
    """`out`: the INT8 (QDQ) version of the ONNX file `fp32`, calibrated on `images` as the
    file's own preprocessing feeds them, the trunk's convolutions quantized per channel and
    every node outside it excluded (ONNX Runtime has no accuracy-controlled search)."""
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise ExportError("--int8 needs onnxruntime and onnx: pip install 'detection[export]'") from None

    inputs = calibration_inputs(images, predictor, len(images))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": t} for t in inputs])

        def get_next(self):
            return next(self.items, None)

    graph = onnx.load(str(fp32), load_external_data=False).graph
    excluded = [n.name for n in graph.node if n.op_type in WEIGHTED_ONNX and not in_trunk(n.name, arch)]
    logging.disable(logging.WARNING)  # its notes on bias copies and pre-processing, a line a layer
    try:
        quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=excluded)
    finally:
        logging.disable(logging.NOTSET)
    meta = read_metadata(fp32, "onnx")
    meta["quantized"] = (f"int8 (ONNX Runtime static QDQ, the trunk's convolutions, per channel; {len(inputs)} "
                         f"calibration inputs; {len(excluded)} weighted layers of the head kept in float)")
    meta["float_layers"] = excluded
    write_onnx_metadata(out, meta)
    log.info("INT8 ONNX: %d weighted layers kept in float: %s", len(excluded), layer_summary(excluded))
    return out


# --- OpenVINO (NNCF) ---------------------------------------------------------------------------


def quantize_openvino_int8(fp32: Path, out: Path, images: list[np.ndarray], predictor, arch: str,
                           validation: ValidationImages | None = None, max_drop: float = 0.01,
                           steps: int = AC_MAX_STEPS) -> Path:
    """`out`: the INT8 OpenVINO IR of `fp32` (NNCF post-training quantization), calibrated on
    `images`, the head in float; with `validation`, NNCF's accuracy control puts layers back
    into float until the AP on it is within `max_drop` of the float file's."""
    try:
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedAccuracyRestorerParameters,
            AdvancedQuantizationParameters,
            QuantizationParameters,
        )
    except ImportError:
        raise ExportError("--format openvino --int8 needs NNCF: pip install nncf (the openvino extra)") from None
    from ..inference.predictor import openvino_core, openvino_module

    ov = openvino_module(fp32)
    nncf.set_log_level(logging.ERROR)
    core = openvino_core(fp32)
    model = core.read_model(str(fp32))
    calib = nncf.Dataset(calibration_inputs(images, predictor, len(images)))
    common = {"subset_size": len(images), "ignored_scope": nncf.IgnoredScope(patterns=[float_head_pattern(arch)],
                                                                             validate=False),
              "preset": nncf.QuantizationPreset.PERFORMANCE,
              "advanced_parameters": AdvancedQuantizationParameters(
                  weights_quantization_params=QuantizationParameters(per_channel=True))}
    meta = read_metadata(fp32, "openvino")
    with signal_stack.kept():  # NNCF makes and drops OpenVINO Cores of its own
        if validation is None:
            quantized = nncf.quantize(model, calib, **common)
            how = "post-training quantization"
        else:
            quantized = _with_accuracy_control(nncf, model, calib, common, predictor, validation, max_drop,
                                               AdvancedAccuracyRestorerParameters, steps)
            meta["accuracy_control"] = control_report(core, model, quantized, predictor, validation, max_drop)
            how = f"accuracy control within {max_drop:g} AP on {validation.source}"
    kept = float_layers(quantized)
    meta["quantized"] = (f"int8 (OpenVINO NNCF, {how}; weights per channel; {len(images)} calibration images; "
                         f"{len(kept)} weighted layers in float)")
    meta["float_layers"] = kept
    quantized.set_rt_info(json.dumps(meta), [META_KEY])
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    log.info("INT8 OpenVINO: %d weighted layers in float: %s", len(kept), layer_summary(kept))
    return out


def _candidate(compiled, predictor):
    """A Predictor like `predictor` around a compiled OpenVINO model."""
    from ..inference.predictor import OpenVINOBackend, Predictor

    candidate = Predictor(OpenVINOBackend.of_compiled(compiled), predictor.class_names, predictor.min_size,
                          predictor.max_size, predictor.fixed_size, tile_size=predictor.tile_size)
    candidate.slicing = predictor.slicing
    return candidate


def control_report(core, model, quantized, predictor, validation: ValidationImages, max_drop: float) -> dict:
    """The float and INT8 APs on the accuracy-control images, scored here (not NNCF's numbers),
    and whether the drop was reached; a warning when it was not."""
    aps = [validation.ap(_candidate(core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}), predictor),
                         range(len(validation.images))) for m in (model, quantized)]
    report = {"float_AP": round(aps[0], 4), "int8_AP": round(aps[1], 4), "max_drop": max_drop,
              "reached": aps[1] >= aps[0] - max_drop, "images": validation.source}
    if not report["reached"]:
        log.warning("INT8 accuracy control did not reach the drop in its steps: AP %.3f against the float file's "
                    "%.3f on %s (more than %g); --max-drop decides whether the file is kept", aps[1], aps[0],
                    validation.source, max_drop)
    return report


def _with_accuracy_control(nncf, model, calib, common: dict, predictor, validation: ValidationImages,
                           max_drop: float, restorer_params, steps: int):
    """NNCF's quantize_with_accuracy_control, the candidates scored by `validation.ap` through a
    Predictor around the compiled candidate (the file's own preprocessing, slicing and mapping)."""
    def validate(compiled, items) -> tuple[float, None]:
        return validation.ap(_candidate(compiled, predictor), list(items)), None

    n = len(validation.images)
    dataset = nncf.Dataset(list(range(n)), lambda i: model_inputs(predictor, validation.images[i])[0])
    log.info("INT8 with accuracy control: scoring candidates on %s (max drop %g AP); this takes minutes",
             validation.source, max_drop)
    return nncf.quantize_with_accuracy_control(
        model, calib, dataset, validate, max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
        subset_size=common["subset_size"], ignored_scope=common["ignored_scope"], preset=common["preset"],
        advanced_quantization_parameters=common["advanced_parameters"],
        advanced_accuracy_restorer_parameters=restorer_params(ranking_subset_size=min(n, RANKING_IMAGES),
                                                             num_ranking_workers=1, max_num_iterations=steps))


def make_int8(ckpt: Path, fp32: Path, calib: int, max_drop: float | None, controlled: bool) -> Path:
    """`<fp32 stem>.int8.onnx` (or `.xml`) beside the float file `fp32` exported from `ckpt`,
    calibrated on `calib` training images of the checkpoint's run; OpenVINO's with accuracy
    control on the run's validation split when `controlled`, within `max_drop` (default
    ACCURACY_DROP) of the float file's AP."""
    from ..config import load_config
    from ..errors import DataError
    from ..inference.loading import open_model
    from ..utils.runs import score_file

    loaded = open_model(fp32, "cpu")
    ref = open_model(ckpt, "cpu")
    if ref.config is None:
        raise ExportError(f"{ckpt} is outside a run folder: --int8 calibrates on its run's training images")
    cfg = load_config(None, base=ref.config)
    arch = cfg["model"]["arch"]
    images = calibration_images(cfg, loaded.class_names, calib)
    out = fp32.with_name(fp32.stem + ".int8" + fp32.suffix)
    log.info("quantizing to INT8 on %d training images -> %s", len(images), out)
    score_file(out).unlink(missing_ok=True)  # the score of the file this one replaces
    if fp32.suffix != ".xml":
        return quantize_int8(fp32, out, images, loaded.predictor, arch)
    validation = None
    if controlled:
        try:
            validation = ValidationImages.of_run(cfg, loaded.class_names)
        except DataError as e:
            if max_drop is not None:
                raise
            log.warning("INT8 without accuracy control: the run's validation images cannot be read here (%s)",
                        str(e).split(";")[0])
    return quantize_openvino_int8(fp32, out, images, loaded.predictor, arch, validation,
                                  ACCURACY_DROP if max_drop is None else max_drop)
