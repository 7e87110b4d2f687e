import os
import time

import pytest
import torch

from detection.checkpoint import load_checkpoint, new_run_dir, newest_run, run_checkpoint, save_checkpoint
from detection.errors import CheckpointError


def test_run_dirs_never_overwrite(tmp_path):
    a = new_run_dir(str(tmp_path), "exp")
    b = new_run_dir(str(tmp_path), "exp")
    assert (a.name, b.name) == ("exp", "exp-2")


def test_atomic_save_and_safe_load(tmp_path):
    path = tmp_path / "w" / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, config={"a": 1}, class_names=["x"], epoch=3)
    assert not list(path.parent.glob("*.tmp"))
    ck = load_checkpoint(path)
    assert ck["epoch"] == 3 and ck["versions"]["torch"] == str(torch.__version__)
    torch.save({"model": {}}, path)
    with pytest.raises(ValueError, match="not a checkpoint of this toolkit"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        load_checkpoint(path)


def test_newest_run_prefers_best(tmp_path):
    with pytest.raises(CheckpointError, match="no trained run"):
        newest_run(str(tmp_path))
    for name in ("old", "new"):
        save_checkpoint(tmp_path / name / "weights" / "last.pt", model={}, config={}, class_names=[])
        t = time.time() + (10 if name == "new" else 0)
        os.utime(tmp_path / name / "weights", (t, t))
    run = newest_run(str(tmp_path))
    assert run.name == "new" and run_checkpoint(run).name == "last.pt"
