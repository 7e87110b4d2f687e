"""Exported files are scored before they are kept; INT8 ONNX files run everywhere a model does."""

import json

import pytest

from detection.cli import evaluate as eval_cli
from detection.cli import export as export_cli
from detection.inference.export import read_metadata

pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_int8_export_is_scored_written_and_runs_like_any_model(tiny_run, tmp_path):
    export_cli.main(["--ckpt", str(tiny_run), "--format", "onnx", "--int8", "--calib", "6"])
    w = tiny_run / "weights"
    for name in ("best.onnx", "best.int8.onnx"):
        report = json.loads((w / f"{name}.eval.json").read_text())
        meta = read_metadata(w / name, "onnx")
        assert meta["validation"] == report and report["AP_drop"] == pytest.approx(
            report["checkpoint_AP"] - report["AP"])
    assert "int8" in read_metadata(w / "best.int8.onnx", "onnx")["quantized"]
    assert (w / "best.int8.onnx").stat().st_size < 0.7 * (w / "best.onnx").stat().st_size
    eval_cli.main(["--ckpt", str(w / "best.int8.onnx"), "--out", str(tmp_path / "e")])  # scored like any model
    assert json.loads((tmp_path / "e" / "report.json").read_text())["coco"]["AP"] >= 0


def test_a_file_that_loses_more_than_max_drop_is_not_kept(tiny_run):
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--ckpt", str(tiny_run), "--format", "torchscript", "--max-drop", "-1"])
    assert "more than --max-drop -1" in str(e.value.code) and "\n" not in str(e.value.code)
    assert not (tiny_run / "weights" / "best.torchscript").exists()
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--ckpt", str(tiny_run), "--format", "torchscript", "--int8"])
    assert "--format onnx" in str(e.value.code)
