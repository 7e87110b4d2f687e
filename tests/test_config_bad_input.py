"""Broken and hostile input to config: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from detection.cli import infer as infer_cli
from detection.cli import train as train_cli
from detection.config import ConfigError, load_config
from detection.errors import CheckpointError
from tests.bad_inputs import (
    _laughs,
    cli_error,
)


@pytest.mark.parametrize("override, field", [("train.lr=.nan", "train.lr"), ("train.lr=-0.1", "train.lr"),
                                             ("train.epochs=0", "train.epochs"), ("eval.voc_metric=voc2007",
                                                                                    "eval.voc_metric"),
                                             ("train.momentum=1.5", "train.momentum"), ("device=gpu", "device")])
def test_bad_numbers_and_choices_stop_before_any_data_is_read(override, field, tmp_path, capsys):
    msg = cli_error(train_cli.main, ["--cfg", os.devnull, "data.format=voc", f"data.root={tmp_path / 'absent'}",
                                     override], capsys)
    assert msg.startswith("config error: ") and f"`{field}`" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((16, 16, 3), np.uint8))
    msg = cli_error(infer_cli.main, ["--image", str(img), "--device", "cuda"], capsys)
    assert "device=cuda but CUDA is not available" in msg


def test_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="train.max_nonfinite"):
        load_config(None, ["data.format=voc", "data.root=x", "train.max_nonfinite=0"])
    with pytest.raises(CheckpointError):
        from detection.checkpoint import load_checkpoint

        load_checkpoint("/nonexistent/last.pt")


def test_a_train_time_that_would_overflow_is_refused():
    with pytest.raises(ConfigError, match=r"`train.time` must be >= 0.0 and <= 1000000"):
        load_config(None, ["data.format=voc", "data.root=x", "train.time=1e308"])


def test_a_billion_laughs_config_is_refused_in_one_line(tmp_path):
    cfg = tmp_path / "laughs.yaml"
    cfg.write_text("name: x\ntrain:\n  time: 1\n" + "\n".join("x" + line for line in _laughs().splitlines()) + "\n")
    assert cfg.stat().st_size < 1000
    with pytest.raises(ConfigError, match="expand to more than 100,000 values") as e:
        load_config(str(cfg))
    assert str(cfg) in str(e.value) and "\n" not in str(e.value)


def test_a_self_referring_alias_is_refused(tmp_path):
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("train: &t\n  lr: 0.01\n  more: *t\n")
    with pytest.raises(ConfigError, match="refers to the value that holds it"):
        load_config(str(cfg))


@pytest.mark.parametrize("override, words", [
    ("model.tile_size=16", "at least 32 px"),
    ("model.tile_size=256", "set model.min_size = model.max_size"),
    ("recipe.keep=[model.lr]", "which the recipe does not choose"),
])
def test_tiles_and_the_recipe_keys_are_checked_when_loaded(override, words, tmp_path, capsys):
    msg = cli_error(train_cli.main, ["--cfg", os.devnull, "data.format=voc", f"data.root={tmp_path / 'absent'}",
                                     override], capsys)
    assert msg.startswith("config error: ") and words in msg


def test_slice_on_the_command_line_is_zero_or_a_real_tile(tmp_path, capsys):
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(SystemExit):
        infer_cli.main(["--image", str(img), "--slice", "8"])
    assert "must be 0 (whole images) or a tile of 32 px or more" in capsys.readouterr().err
