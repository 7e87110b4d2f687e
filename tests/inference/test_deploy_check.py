"""Exported files are scored before they are kept; INT8 ONNX files run everywhere a model does."""

import json

import pytest

from detection.cli import evaluate as eval_cli
from detection.cli import export as export_cli
from detection.inference.metadata import read_metadata

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


def test_a_file_that_loses_more_than_max_drop_is_not_kept(tiny_run, monkeypatch):
    import detection.deploy.check as deploy_check

    perfect = {"coco": {"AP": 1.0, "AP50": 1.0}}  # a checkpoint no export can match
    monkeypatch.setattr(deploy_check, "checkpoint_score", lambda *a, **k: perfect)
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--ckpt", str(tiny_run), "--format", "torchscript", "--max-drop", "0"])
    assert "more than --max-drop 0.0" in str(e.value.code) and "\n" not in str(e.value.code)
    assert not (tiny_run / "weights" / "best.torchscript").exists()
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--ckpt", str(tiny_run), "--format", "torchscript", "--int8"])
    assert "--format onnx" in str(e.value.code)


@pytest.mark.slow
def test_benchmark_tables_every_format_and_backend_auto_picks_from_it(tiny_run, tmp_path, capsys):
    import csv
    import shutil

    from detection.cli import benchmark as bench_cli
    from detection.cli import infer as infer_cli

    export_cli.main(["--ckpt", str(tiny_run), "--format", "onnx", "--no-validate"])
    bench_cli.main(["--ckpt", str(tiny_run), "--images", "3", "--batches", "1,2"])
    rows = list(csv.DictReader(open(tiny_run / "benchmark.csv")))
    assert rows[0]["format"] == "pytorch" and "onnx" in {r["format"] for r in rows}
    assert all(float(r["ips_1"]) > 0 and float(r["p95_ms"]) >= float(r["p50_ms"]) for r in rows)
    assert "images/s" in (tiny_run / "benchmark.md").read_text()
    ref = float(rows[0]["AP"])
    want = max((r for r in rows if float(r["AP"]) >= ref - 0.01), key=lambda r: float(r["ips_1"]))["file"]
    images = tmp_path / "img"
    images.mkdir()
    shutil.copy(next((tiny_run.parent.parent / "data" / "coco" / "val").glob("*.jpg")), images)
    capsys.readouterr()
    infer_cli.main(["--ckpt", str(tiny_run), "--backend", "auto", "--source", str(images), "--no-save",
                    "--out", str(tmp_path / "o")])
    assert f"--backend auto: {want}" in capsys.readouterr().err


@pytest.mark.slow
def test_openvino_export_matches_pytorch_and_runs_everywhere_a_model_does(tiny_run, tmp_path):
    pytest.importorskip("openvino")
    from detection.cli import infer as infer_cli

    pytest.importorskip("nncf")
    export_cli.main(["--ckpt", str(tiny_run), "--format", "openvino", "--int8", "--calib", "4"])  # checked, scored
    xml = tiny_run / "weights" / "best.xml"
    assert xml.with_suffix(".bin").is_file() and read_metadata(xml, "openvino")["validation"]["AP"] >= 0
    int8 = tiny_run / "weights" / "best.int8.xml"
    meta = read_metadata(int8, "openvino")
    assert "NNCF, accuracy control within 0.01 AP on 6 images" in meta["quantized"]  # the run's validation split
    assert "/roi_heads/box_predictor/cls_score/Gemm/WithoutBiases" in meta["float_layers"]
    assert (tiny_run / "weights" / "best.int8.xml.eval.json").is_file()
    assert int8.with_suffix(".bin").stat().st_size < 0.5 * xml.with_suffix(".bin").stat().st_size
    infer_cli.main(["--ckpt", str(xml), "--source", str(next((tiny_run.parent.parent / "data" / "coco" / "val")
                                                             .glob("*.jpg"))), "--out", str(tmp_path / "p")])
    eval_cli.main(["--ckpt", str(xml), "--out", str(tmp_path / "e")])
    assert json.loads((tmp_path / "e" / "report.json").read_text())["coco"]["AP"] >= 0


def test_without_the_runs_data_an_export_is_kept_unscored_unless_max_drop_asks(tmp_path, capsys):
    from .test_model_out import _checkpoint

    ckpt = _checkpoint(tmp_path / "run" / "weights" / "best.pt")  # its config's data.root does not exist here
    export_cli.main(["--ckpt", str(ckpt), "--format", "torchscript"])
    assert (tmp_path / "run" / "weights" / "best.torchscript").is_file()
    assert "were not scored on the validation split" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        export_cli.main(["--ckpt", str(ckpt), "--format", "torchscript", "--max-drop", "0.01"])
    assert "does not exist" in str(e.value.code)
