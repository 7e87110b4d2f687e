"""INT8 files: the head stays in float (read back from the written files), and OpenVINO's
accuracy control keeps the validation AP within the drop it is given."""

import numpy as np
import pytest

from detection.deploy.int8 import ValidationImages, float_layers, in_trunk, quantize_int8, quantize_openvino_int8
from detection.inference.export import export
from detection.inference.loading import open_model

ARCH = "fasterrcnn_mobilenet_v2_fpn"  # tiny_run's


def _images(n: int, size: int = 96, seed: int = 0) -> list[np.ndarray]:
    from detection.data.synthetic import make_image

    rng = np.random.default_rng(seed)
    return [make_image(rng, size)[0] for _ in range(n)]


def test_the_head_stays_float_and_the_trunk_is_int8_in_both_formats(tiny_run, tmp_path):
    """The ignored scope, read from the files: every weighted layer outside the trunk (the RPN's
    and the box predictor's outputs) keeps float weights; every one inside has int8 weights."""
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    xml = export(tiny_run, "openvino", out=str(tmp_path / "m.xml"))
    fp32 = open_model(xml, "cpu").predictor
    out = quantize_openvino_int8(xml, tmp_path / "m.int8.xml", _images(4), fp32, ARCH)
    weighted = [op.get_friendly_name() for op in ov.Core().read_model(str(xml)).get_ordered_ops()
                if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul")]
    head = [n for n in weighted if not in_trunk(n, ARCH)]
    assert len(head) == 10 and "/roi_heads/box_predictor/bbox_pred/Gemm/WithoutBiases" in head
    assert float_layers(ov.Core().read_model(str(out))) == head  # all of the head, none of the trunk
    assert len(float_layers(ov.Core().read_model(str(xml)))) == len(weighted)  # the float file: every layer

    path = export(tiny_run, "onnx", out=str(tmp_path / "m.onnx"))
    q = quantize_int8(path, tmp_path / "m.int8.onnx", _images(4), open_model(path, "cpu").predictor, ARCH)
    graph = onnx.load(str(q)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    int8 = {n.name for n in convs if n.input[1] in dequantized}
    assert int8 and all(in_trunk(n, ARCH) for n in int8)
    assert {n.name for n in convs if not in_trunk(n.name, ARCH)} == {n.name for n in convs} - int8
    assert open_model(q, "cpu").predictor.predict(_images(1), score=0.0)  # and it runs


def _pseudo_truth(predictor, images: list[np.ndarray], per_image: int = 4) -> ValidationImages:
    """A validation set whose ground truth is the float model's own best detections: the float
    file scores near 1 on it, and what quantization moves shows in its AP."""
    from detection.data.records import DatasetInfo, ImageRecord
    from detection.evaluation.evaluator import DetectionEvaluator

    records = []
    for i, (im, r) in enumerate(zip(images, predictor.predict(images, score=0.0, raw_scores=True))):
        top = np.argsort(-r.scores)[:per_image]
        h, w = im.shape[:2]
        records.append(ImageRecord(f"img{i}.png", w, h, r.boxes[top].astype(np.float32),
                                   (r.labels[top] + 1).astype(np.int64), np.zeros(len(top), bool),
                                   np.zeros(len(top), bool), i + 1))
    names = predictor.class_names
    info = DatasetInfo(list(names), list(range(1, len(names) + 1)), "the float model's detections")
    return ValidationImages(images, DetectionEvaluator(records, info), f"{len(images)} images")


@pytest.mark.slow
def test_accuracy_control_keeps_the_ap_within_the_drop_or_says_it_did_not(tiny_run, tmp_path):
    """On a validation set the float file scores near 1 on, quantizing the whole trunk loses AP;
    accuracy control puts layers back into float, and the file's metadata holds the float and
    INT8 APs, which scoring the written files again reproduces: within the drop when it says so."""
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from detection.inference.metadata import read_metadata

    xml = export(tiny_run, "openvino", out=str(tmp_path / "m.xml"))
    fp32 = open_model(xml, "cpu").predictor
    images = _images(6, seed=1)
    validation = _pseudo_truth(fp32, images)
    everything = range(len(images))
    reference = validation.ap(fp32, everything)
    plain = quantize_openvino_int8(xml, tmp_path / "plain.int8.xml", _images(4), fp32, ARCH)
    controlled = quantize_openvino_int8(xml, tmp_path / "ac.int8.xml", _images(4), fp32, ARCH, validation,
                                        max_drop=0.05, steps=2)
    report = read_metadata(controlled, "openvino")["accuracy_control"]
    ap = validation.ap(open_model(controlled, "cpu").predictor, everything)
    assert reference > 0.5 and report["float_AP"] == pytest.approx(reference, abs=1e-3)
    assert report["int8_AP"] == pytest.approx(ap, abs=1e-3)  # the numbers are the written file's
    assert report["reached"] == (ap >= reference - 0.05)
    if validation.ap(open_model(plain, "cpu").predictor, everything) < reference - 0.05:
        assert len(float_layers(ov.Core().read_model(str(controlled)))) > 10  # layers went back to float
