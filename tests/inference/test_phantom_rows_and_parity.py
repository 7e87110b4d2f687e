"""Rows a backend returns that are no detection never reach a user; an export is checked on real
images, not noise; the checkpoint's validation score is computed once per validation."""

import logging

import numpy as np
import pytest
import torch

from detection.evaluation.evaluator import DetectionEvaluator
from detection.inference.predictor import Predictor
from detection.utils.detections import phantom_rows


class _OpenVINOLike:
    """What OpenVINO's IR of the demo model returned on a blank image: one row, label 0,
    score -7.6e-14, beside whatever real rows there are."""

    name = "fake"
    device = torch.device("cpu")

    def __call__(self, batch):
        boxes = np.array([[0, 0, 0, 0], [1, 1, 9, 9], [2, 2, 8, 8], [1, 1, 5, 5]], np.float32)
        return [(boxes, np.array([-7.6e-14, 0.9, 0.0, 0.5], np.float32), np.array([0, 1, 2, 2])) for _ in batch]


def test_a_label_0_row_and_scores_at_or_under_0_never_reach_a_result(caplog):
    p = Predictor(_OpenVINOLike(), ["cat", "dog"], 16, 16, source="m.xml")
    with caplog.at_level(logging.WARNING):
        results = p.predict([np.zeros((16, 16, 3), np.uint8)] * 3, score=0.0)
    for r in results:
        assert r.names == ["cat", "dog"] and (r.scores > 0).all()
    assert caplog.text.count("row(s) that are no detection") == 1 and "m.xml returned 2 row(s)" in caplog.text


def test_the_evaluator_drops_the_same_rows():
    assert phantom_rows([0.5, -1e-13, 0.0, np.nan, 0.4], [1, 1, 1, 1, 0]).tolist() == [False, True, True, True, True]
    ev = DetectionEvaluator.__new__(DetectionEvaluator)
    ev.predictions = {}
    ev.add(0, np.array([[0, 0, 4, 4], [0, 0, 0, 0], [0, 0, np.inf, 3]]), np.array([0.9, -7.6e-14, 0.8]),
           np.array([1, 0, 1]))
    assert ev.predictions[0][2].tolist() == [1] and ev.predictions[0][1].tolist() == pytest.approx([0.9])


def test_the_export_is_checked_on_the_runs_validation_images(tiny_run, tmp_path):
    """Noise makes a trained model return nothing, so the check compared nothing with nothing."""
    from detection.checkpoint import load_checkpoint
    from detection.inference.export import parity_inputs

    ckpt = load_checkpoint(tiny_run / "weights" / "best.pt")
    inputs, where = parity_inputs(ckpt, 96, 96, None)
    assert where.endswith("validation images of the run") and len(inputs) == 4
    assert all(t.shape[0] == 3 and max(t.shape[1:]) == 96 for t in inputs)
    assert inputs[0].std() > 0.05  # real pictures, not a blank or a constant
    gone = {**ckpt, "config": {**ckpt["config"], "data": {**ckpt["config"]["data"], "format": "coco",
                                                                  "root": str(tmp_path / "none")}}}
    inputs, where = parity_inputs(gone, 96, 96, None)
    assert "synthetic images" in where and len(inputs) == 4


def test_a_backend_that_disagrees_on_real_images_is_refused(tiny_run, monkeypatch):
    pytest.importorskip("onnxruntime")
    import detection.inference.predictor as predictor_module
    from detection.checkpoint import load_checkpoint, model_from_checkpoint
    from detection.inference.export import ExportError, check_parity, parity_inputs

    ckpt = load_checkpoint(tiny_run / "weights" / "best.pt")
    model = model_from_checkpoint(ckpt).eval()
    inputs, where = parity_inputs(ckpt, 96, 96, None)
    with torch.no_grad():
        assert sum(len(model([t])[0]["scores"]) for t in inputs) > 0  # there is something to disagree on

    class Nothing:
        def __init__(self, *a, **k):
            pass

        def __call__(self, batch):
            return [(np.zeros((1, 4), np.float32), np.array([-7.6e-14], np.float32), np.array([0])) for _ in batch]

    monkeypatch.setattr(predictor_module, "ONNXBackend", Nothing)
    with pytest.raises(ExportError, match="validation images of the run"):
        check_parity(model, "x.onnx", "onnx", inputs, where)


def test_the_checkpoint_is_scored_once_while_its_validation_is_unchanged(tiny_run, monkeypatch):
    import detection.deploy.check as dc
    from detection.config import load_config
    from detection.inference.loading import open_model
    ckpt = tiny_run / "weights" / "best.pt"
    dc.checkpoint_score_file(ckpt).unlink(missing_ok=True)
    ref = open_model(ckpt, "cpu")
    cfg = load_config(None, base=ref.config)
    calls = []

    def evaluate(loaded, c):
        calls.append(1)
        return {"coco": {"AP": 0.25, "AP50": 0.5}}, None

    assert dc.checkpoint_score(ref, ckpt, cfg, evaluate)["coco"]["AP"] == 0.25
    assert dc.checkpoint_score(ref, ckpt, cfg, evaluate)["coco"]["AP50"] == 0.5 and len(calls) == 1
    other = load_config(None, {"eval": {"iou_thresh": 0.6}}, base=ref.config)  # another validation
    dc.checkpoint_score(ref, ckpt, other, evaluate)
    assert len(calls) == 2
    dc.checkpoint_score_file(ckpt).unlink()


def test_a_model_that_scored_nothing_is_said_to_be_weak_once(tiny_run, tmp_path, caplog):
    """AP 0.000: its stored thresholds drew 5,693 'fish' on 63 images without a word."""
    import shutil

    from detection.checkpoint import load_checkpoint, save_checkpoint
    from detection.inference.loading import open_model

    run = tmp_path / "weak"
    shutil.copytree(tiny_run, run)
    ckpt = load_checkpoint(run / "weights" / "best.pt")
    assert {"AP", "AP50"} <= set(ckpt["thresholds"])  # the validation that chose them travels with them
    ckpt["thresholds"] = {**ckpt["thresholds"], "AP": 0.0, "AP50": 0.0}
    save_checkpoint(run / "weights" / "best.pt", **ckpt)
    with caplog.at_level(logging.WARNING):
        open_model(run, "cpu")
        open_model(run, "cpu")
    assert caplog.text.count("too low for its thresholds") == 1
    caplog.clear()
    ckpt["thresholds"] = {**ckpt["thresholds"], "AP": 0.5, "AP50": 0.9}
    save_checkpoint(run / "weights" / "last.pt", **ckpt)
    with caplog.at_level(logging.WARNING):
        open_model(run / "weights" / "last.pt", "cpu")
    assert "too low" not in caplog.text
