"""Resume that says what it does: Ctrl-C saves the step it reached, a finished run says so, and
a resume extends a run (train.epochs / train.time) or refuses what it cannot apply, in one line."""

import copy
import csv
import logging
import os
import signal

import pytest
import torch

import detection.training.engine as engine_module
from detection.checkpoint import load_checkpoint
from detection.cli import train as train_cli
from detection.config import load_config
from detection.errors import ConfigError
from detection.training.trainer import train

TIMING = ("images_per_s", "epoch_s", "val_s", "elapsed_s")


def _cfg(tmp_path, synthetic_root, tiny_model_cfg, name="r", **train_kw):
    return load_config(None, {
        "name": name, "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": copy.deepcopy(tiny_model_cfg),
        "train": {"epochs": 2, "batch_size": 4, "warmup_iters": 2, "milestones": [2], "lr": 0.01, **train_kw}})


def _rows(run):
    with open(run / "results.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _resume(run, *overrides):
    return load_config(run / "config.yaml", [f"resume={run}", *overrides])


def test_ctrl_c_saves_the_step_it_reached_and_resume_finishes_the_run(tmp_path, synthetic_root, tiny_model_cfg,
                                                                     monkeypatch, capsys):
    whole, _ = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, name="whole"))
    real_step, steps = engine_module._backward_and_step, [0]

    def step(*args):
        out = real_step(*args)
        steps[0] += 1
        if steps[0] == 9:  # the third step of epoch 2
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(engine_module, "_backward_and_step", step)
    cfg = _cfg(tmp_path, synthetic_root, tiny_model_cfg, name="cut")
    args = [f"{k}={v}" for k, v in (("name", "cut"), ("output_dir", tmp_path / "runs"), ("data.format", "coco"),
                                    ("data.root", synthetic_root / "coco"), ("data.num_workers", 0))]
    args += [f"model.{k}={v}" for k, v in cfg["model"].items() if k in tiny_model_cfg and not isinstance(v, list)]
    args += [f"train.{k}={v}" for k, v in (("epochs", 2), ("batch_size", 4), ("warmup_iters", 2), ("milestones", [2]),
                                           ("lr", 0.01))]
    with pytest.raises(SystemExit) as e:
        train_cli.main(args_with_cfg(tmp_path, args))
    assert e.value.code == 130
    err = capsys.readouterr().err
    cut = tmp_path / "runs" / "cut"
    assert f"resume={cut}" in err and "epoch 2, iteration 3" in err
    assert "COCO bbox" not in err.split("Ctrl-C")[-1]  # no validation table printed again
    saved = load_checkpoint(cut / "weights" / "last.pt")
    assert (saved["epoch"], saved["iter_in_epoch"], saved["step"]) == (1, 3, 9)
    monkeypatch.setattr(engine_module, "_backward_and_step", real_step)
    train(_resume(cut))
    a, b = load_checkpoint(whole / "weights" / "last.pt"), load_checkpoint(cut / "weights" / "last.pt")
    assert b["step"] == a["step"] == 12
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert _rows(cut) == _rows(whole)


def args_with_cfg(tmp_path, overrides):
    """train_det.py needs --cfg or resume=: an empty YAML beside the run."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    return ["--cfg", str(empty), *overrides]


def test_a_finished_run_says_so_and_an_extended_one_continues(tmp_path, synthetic_root, tiny_model_cfg, caplog):
    run, _ = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, epochs=3, milestones=[8, 11]))
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["lr"]) < 0.01  # [8, 11] scaled to the 3-epoch run: the lr did drop
    with caplog.at_level(logging.INFO):
        again, results = train(_resume(run))
    assert results == {} and f"{run} is finished (3 epochs)" in caplog.text and "train.epochs=" in caplog.text
    assert _rows(run) == rows
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train(_resume(run, "train.epochs=5", "data.num_workers=1"))
    assert "resume: train.epochs 3 -> 5" in caplog.text and "extended" in caplog.text
    assert "epoch 5/5  mean loss" in caplog.text  # the summary says the loss is the epoch's mean
    extended = _rows(run)
    assert [r["epoch"] for r in extended] == ["1", "2", "3", "4", "5"] and extended[:3] == rows
    assert load_config(run / "config.yaml")["train"]["epochs"] == 5  # a later resume sees the new length
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 5


def test_resume_refuses_what_it_cannot_apply_naming_it(tmp_path, synthetic_root, tiny_model_cfg):
    run, _ = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, epochs=1))
    with pytest.raises(ConfigError) as e:
        train(_resume(run, "train.lr=0.5", "model.min_size=160"))
    msg = str(e.value)
    assert "train.lr (0.01 -> 0.5)" in msg and "model.min_size (128 -> 160)" in msg and "train.epochs=N" in msg
    with pytest.raises(ConfigError, match=r"train.time \(0.0 -> 1\)"):
        train(_resume(run, "train.time=1"))  # an epoch-planned run is extended by epochs


def test_resume_of_nothing_says_what_to_give(tmp_path):
    with pytest.raises(SystemExit, match=r"resume=.*nope does not exist: give a run folder"):
        train_cli.main([f"resume={tmp_path / 'nope'}"])
