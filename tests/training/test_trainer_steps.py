"""The trainer's steps, each alone with fakes, and the config, output and plot rules of issue 13."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from detection.checkpoint import Checkpointer, load_checkpoint
from detection.config import CONFIG_DIR, load_config
from detection.models.facts import ModelFacts
from detection.training.engine import TrainParts
from detection.training.trainer import TrainState, keep_best


def test_keep_best_and_patience():
    state = TrainState()
    assert keep_best(state, 0.3, patience=2) == (True, False) and state.best == 0.3
    assert keep_best(state, 0.2, patience=2) == (False, False) and state.bad_evals == 1
    assert keep_best(state, 0.3, patience=2) == (False, True)  # equal is not better
    assert keep_best(state, 0.5, patience=2) == (True, False) and state.bad_evals == 0
    assert keep_best(state, 0.1, patience=0) == (False, False)  # 0 = never stop


def test_checkpointer_round_trips_the_train_state_and_parts(tmp_path):
    model = torch.nn.Linear(2, 1)
    freeze = {"freeze_at": 0, "mode": "fine_tune", "freeze_bn": "all"}
    model.facts = ModelFacts("frcnn", "", [], [], False, freeze=freeze)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 ** i)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    sched.step()
    state = TrainState(epoch=3, iter_in_epoch=2, step=17, stage=1, best=0.4, bad_evals=1, epoch_sums={"n": 2})
    ckpt = Checkpointer({"config": {"a": 1}, "class_names": ["x"]})
    path = ckpt.save(tmp_path / "last.pt", ckpt.snapshot(TrainParts(model, opt, sched), state, {"r": 1}, {"AP": 0.4}))
    loaded = load_checkpoint(path)
    assert TrainState.from_checkpoint(loaded) == state
    model2 = torch.nn.Linear(2, 1)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda i: 0.5 ** i)
    Checkpointer.restore_parts(loaded, TrainParts(model2, opt2, sched2))
    assert sched2.last_epoch == 1 and opt2.param_groups[0]["lr"] == pytest.approx(0.05)
    momentum = [o.state_dict()["state"][0]["momentum_buffer"] for o in (opt, opt2)]
    assert torch.equal(*momentum)
    assert loaded["freeze"] == model.facts.freeze and loaded["metrics"] == {"AP": 0.4}
    assert Checkpointer({}, enabled=False).save(tmp_path / "x.pt", {}) is None  # ranks > 0 write nothing


def test_results_csv_adds_a_column_first_seen_later(tmp_path):
    from detection.training.results_log import ResultsLog, plot_results

    log = ResultsLog(tmp_path / "results.csv")
    log.append({"epoch": 1, "loss": 1.0})
    log.append({"epoch": 2, "loss": 0.5, "AP": 0.3})
    log.append({"epoch": 3, "loss": 0.4})
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["AP"] for r in rows] == ["", "0.3", ""]
    again = ResultsLog(tmp_path / "results.csv", keep_until_epoch=2)  # resume after epoch 2
    again.append({"epoch": 3, "loss": 0.45, "AP": 0.35})
    with open(tmp_path / "results.csv") as f:
        assert [r["loss"] for r in csv.DictReader(f)] == ["1.0", "0.5", "0.45"]
    plot_results(tmp_path / "results.csv", tmp_path / "results.png")
    assert (tmp_path / "results.png").stat().st_size > 1000


def test_progress_prints_lines_with_eta_when_not_a_terminal(caplog):
    import io

    from detection.utils.progress import Progress

    bar = Progress(range(10), "epoch 1/2", every=4, stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="detection.utils.progress"):
        for _ in bar:
            bar.update(loss="0.5")
    lines = [r.message for r in caplog.records]
    assert [ln.split()[2] for ln in lines] == ["4/10", "8/10", "10/10"]
    assert all("loss 0.5" in ln and "ETA" in ln for ln in lines)


def test_exponent_floats_and_paths_relative_to_the_config_file(tmp_path, monkeypatch):
    cfg_dir = tmp_path / "project" / "cfgs"
    cfg_dir.mkdir(parents=True)
    (cfg_dir / "base.yaml").write_text("data: {format: voc, root: ../data/voc}\ntrain: {lr: 1e-3}\n")
    (cfg_dir / "run.yaml").write_text("_base_: base.yaml\ntrain: {weight_decay: 5e-4}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(cfg_dir / "run.yaml", ["train.momentum=9e-1"])
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["weight_decay"] == 5e-4 and cfg["train"]["momentum"] == 0.9
    assert cfg["data"]["root"] == str(tmp_path / "project" / "data" / "voc")  # beside the file, not the cwd
    cfg = load_config(cfg_dir / "run.yaml", ["data.root=mine"])
    assert cfg["data"]["root"] == str(elsewhere / "mine")  # the command line: the current folder
    assert yaml.safe_load(yaml.safe_dump(cfg))["train"]["lr"] == 1e-3  # saved configs read back as floats


def test_shipped_configs_find_their_data_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    repo = CONFIG_DIR.parent
    assert load_config(CONFIG_DIR / "demo.yaml")["data"]["root"] == str(repo / "datasets" / "synthetic")
    assert load_config(CONFIG_DIR / "voc_frcnn.yaml")["data"]["root"] == str(repo / "datasets" / "VOCdevkit" /
                                                                             "VOC2007")
    assert load_config(CONFIG_DIR / "bccd_frcnn.yaml")["data"]["root"] == str(
        repo.parent / "shared" / "datasets" / "bccd_voc" / "BCCD")


@pytest.mark.parametrize("key, value", [("eval.voc_metric", "voc2007"), ("eval.backend", "cocoapi"),
                                        ("train.scheduler", "linear"), ("data.augment", "strong"),
                                        ("model.freeze_bn", "some"), ("train.amp", "fp8")])
def test_every_choice_is_checked_at_load(key, value):
    from detection.config import ConfigError

    with pytest.raises(ConfigError, match=f"`{key}` must be one of"):
        load_config(None, ["data.format=voc", "data.root=x", f"{key}={value}"])


def test_confusion_matrix_is_row_normalised_and_readable_at_80_classes(tmp_path):
    from detection.evaluation.analysis import _most_confused, confusion_figure

    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, (81, 81)) + np.diag(rng.integers(50, 100, 81))
    small, names = _most_confused(cm, [f"c{i}" for i in range(80)] + ["background"], 30)
    assert small.shape == (32, 32) and names[-2:] == ["other", "background"] and small.sum() == cm.sum()
    fig = confusion_figure(cm, [f"c{i}" for i in range(80)])
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == 32 and not ax.texts  # no cell text at this size
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown.sum(axis=1)[shown.sum(axis=1) > 0], 1.0)


def test_worst_image_view_labels_only_errors():
    from detection.data.records import ImageRecord
    from detection.evaluation.analysis import draw_errors, match_boxes

    r = ImageRecord("x", 100, 100, np.array([[10, 10, 40, 40], [50, 50, 90, 90]], np.float32), np.array([1, 2]),
                    np.zeros(2, bool), np.zeros(2, bool), 0)
    boxes = np.array([[10, 10, 40, 40], [0, 60, 20, 80]], np.float32)  # a hit, and a false positive
    pairs, extra, missed = match_boxes(r, boxes, np.array([1, 1]), 0.5)
    assert pairs == [(0, 0)] and extra == [1] and missed == [1]
    img = draw_errors(np.zeros((100, 100, 3), np.uint8), r, (boxes, np.array([0.9, 0.8]), np.array([1, 1])),
                      ["a", "b"], 0.5, 0.25)
    assert tuple(img[10, 25]) == (40, 200, 40)  # the hit: a thin green box
    assert tuple(img[45, 60]) != (0, 0, 0) or tuple(img[50, 70]) != (0, 0, 0)  # the miss is drawn


def test_resume_without_cfg_uses_the_runs_own_config(tmp_path, capsys):
    from detection.cli import train as train_cli

    run = tmp_path / "runs" / "exp"
    (run / "weights").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"format": "voc", "root": str(tmp_path)}}))
    with pytest.raises(SystemExit) as e:
        train_cli.main([f"resume={run}"])
    assert "last.pt" in str(e.value)  # it got as far as the checkpoint: the run's config was read
    with pytest.raises(SystemExit) as e:
        train_cli.main([])
    assert "give --cfg FILE, or resume=" in str(e.value)


def test_freezing_reaches_the_model_through_one_policy(tiny_model_cfg):
    from detection.checkpoint import restore_model
    from detection.models.builders import build_model
    from detection.models.freeze import apply_policy, freeze_policy

    mcfg = dict(tiny_model_cfg, weights="pretrained", freeze_at=3)
    assert freeze_policy(mcfg) == {"freeze_at": 3, "mode": "fine_tune", "freeze_bn": "all"}
    assert freeze_policy(dict(mcfg, weights="none"))["freeze_at"] == 0
    model = build_model(tiny_model_cfg, ["a"], verbose=False)
    staged = apply_policy(model, freeze_policy(mcfg, freeze_at=5))
    assert staged["freeze_at"] == 5
    fresh = build_model(tiny_model_cfg, ["a"], verbose=False)
    restore_model(fresh, {"model": model.state_dict(), "freeze": model.facts.freeze})
    assert fresh.facts.freeze == model.facts.freeze
    assert [p.requires_grad for p in fresh.parameters()] == [p.requires_grad for p in model.parameters()]


def test_no_function_in_the_package_is_much_longer_than_a_screen():
    import ast

    long = []
    for path in (Path(__file__).resolve().parents[2] / "detection").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60 and "long:" not in (ast.get_docstring(node) or ""):
                    long.append(f"{path.name}:{node.name} ({n} lines)")
    assert not long, long
