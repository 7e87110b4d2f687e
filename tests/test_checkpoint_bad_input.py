"""Broken and hostile input to checkpoint: each case asserts the one line that names the file, the
field and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from detection.cli import evaluate as eval_cli
from detection.cli import infer as infer_cli
from detection.cli import train as train_cli
from detection.errors import OutputError
from tests.bad_inputs import (
    cli_error,
    train_args,
    voc_set,
)


def test_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from detection.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "weights" / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(1)}, config={}, class_names=["a"], epoch=1)

    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputError, match=r"cannot write checkpoint .*last.pt: the disk holding .*weights is full"):
        save_checkpoint(path, model={"w": torch.zeros(1)}, config={}, class_names=["a"], epoch=2)
    monkeypatch.undo()
    assert not list(path.parent.glob("*.tmp")) and load_checkpoint(path)["epoch"] == 1


def test_unwritable_output_dir_is_one_line(tmp_path, capsys):
    root = voc_set(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    msg = cli_error(train_cli.main, train_args(root, tmp_path, f"output_dir={blocker / 'runs'}"), capsys)
    assert msg.startswith("error: cannot create a folder in ") and "file/runs" in msg and "writable output_dir" in msg


def test_corrupt_or_foreign_checkpoints_in_eval_infer_and_resume(tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"garbage")
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((16, 16, 3), np.uint8))
    for main, argv in ((eval_cli.main, ["--ckpt", str(bad)]), (infer_cli.main, ["--image", str(img), "--ckpt",
                                                                                 str(bad)])):
        msg = cli_error(main, argv, capsys)
        assert "best.pt: not a loadable checkpoint" in msg
    torch.save({"w": torch.ones(1)}, bad)
    msg = cli_error(train_cli.main, [f"resume={bad}"], capsys)
    assert "no run there" in msg
    (tmp_path / "run" / "weights").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("data: {format: voc, root: x}\n")
    torch.save({"w": torch.ones(1)}, tmp_path / "run" / "weights" / "last.pt")
    msg = cli_error(train_cli.main, [f"resume={tmp_path / 'run'}"], capsys)
    assert "last.pt: not a checkpoint of this toolkit" in msg


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    from detection.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, config={}, class_names=["a"], epoch=1)

    def full_disk(obj, f):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputError, match="cannot write checkpoint .*last.pt: PytorchStreamWriter failed writing"):
        save_checkpoint(path, model={"w": torch.zeros(2)}, config={}, class_names=["a"], epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and not list(tmp_path.glob("*.tmp"))


def test_a_full_disk_at_the_zip_writers_end_of_file_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    """torch's writer fails at write_end_of_file with a message that names neither writing nor
    the disk: `[enforce fail at inline_container.cc:672] . unexpected pos ... vs ...`."""
    import shutil
    from collections import namedtuple

    import torch

    from detection.checkpoint import load_checkpoint, save_checkpoint
    from detection.errors import OutputError

    path = tmp_path / "weights" / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, config={}, class_names=["a"], epoch=1)

    def end_of_file_fails(obj, f):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3538816 vs 3538704")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", end_of_file_fails)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 4096))
    with pytest.raises(OutputError) as e:
        save_checkpoint(path, model={"w": torch.zeros(2)}, config={}, class_names=["a"], epoch=2)
    assert f"the disk holding {path.parent} is full" in str(e.value) and "previous checkpoint is kept" in str(e.value)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and not list(path.parent.glob("*.tmp"))


def test_a_runtime_error_that_is_not_the_writer_still_surfaces(tmp_path, monkeypatch):
    import torch

    from detection.checkpoint import save_checkpoint

    monkeypatch.setattr(torch, "save", lambda obj, f: (_ for _ in ()).throw(RuntimeError("a bug of ours")))
    with pytest.raises(RuntimeError, match="a bug of ours"):
        save_checkpoint(tmp_path / "last.pt", model={}, config={}, class_names=["a"])
