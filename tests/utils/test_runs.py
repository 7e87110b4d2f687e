"""The run folder as a value, and the one way every command opens a model."""

import os
import time

import pytest
import torch

from detection.checkpoint import save_checkpoint
from detection.errors import CheckpointError
from detection.utils.runs import Run, model_file, new_run_dir, newest_run


def test_run_dirs_never_overwrite(tmp_path):
    a = new_run_dir(str(tmp_path), "exp")
    b = new_run_dir(str(tmp_path), "exp")
    assert (a.name, b.name) == ("exp", "exp-2")


def test_evaluations_get_a_new_folder_each(tmp_path):
    run = Run(tmp_path / "r")
    run.dir.mkdir()
    assert [run.new_eval_dir().name for _ in range(3)] == ["eval", "eval-2", "eval-3"]


def test_newest_run_prefers_best(tmp_path):
    with pytest.raises(CheckpointError, match="no trained run"):
        newest_run(str(tmp_path))
    for name in ("old", "new"):
        save_checkpoint(tmp_path / name / "weights" / "last.pt", model={}, config={}, class_names=[])
        t = time.time() + (10 if name == "new" else 0)
        os.utime(tmp_path / name / "weights", (t, t))
    run = newest_run(str(tmp_path))
    assert run.name == "new" and run.checkpoint().name == "last.pt"


def test_a_model_is_named_four_ways(tmp_path):
    """A run folder, a .pt in it, an .onnx and a .torchscript: each resolves to (file, kind, run)."""
    run = Run(tmp_path / "r")
    run.weights.mkdir(parents=True)
    run.config.write_text("name: r\n")
    torch.save({}, run.last)
    assert model_file(run.dir) == (run.last, "checkpoint", run)  # no best.pt yet: last.pt
    torch.save({}, run.best)
    assert model_file(run.dir) == (run.best, "checkpoint", run)
    assert model_file(str(run.best)) == (run.best, "checkpoint", run)
    for suffix, kind in ((".onnx", "onnx"), (".torchscript", "torchscript"), (".xml", "openvino")):
        exported = run.weights / f"best{suffix}"
        exported.write_bytes(b"x")
        assert model_file(exported) == (exported, kind, run)
    loose = tmp_path / "model.onnx"
    loose.write_bytes(b"x")
    assert model_file(loose) == (loose, "onnx", None)  # outside a run: no run, no config
    assert model_file(None, tmp_path) == (run.best, "checkpoint", run)  # the newest run
    with pytest.raises(CheckpointError, match="without weights/best.pt"):
        model_file(tmp_path)
    with pytest.raises(CheckpointError, match="model not found"):
        model_file(tmp_path / "nope.pt")
