"""tools/tune.py: trials on a split carved from the training images, pruned on their
validations, a study in SQLite that resumes and that several processes share."""

import json
import subprocess
import sys

import optuna
import pytest

import detection.tuning.study as study_module
from detection.cli import tune as tune_cli
from detection.config import load_config
from detection.data.splits import read_split_file
from detection.errors import ConfigError
from detection.tuning.report import report_text, trial_rows
from detection.tuning.study import carve_tuning_split, run_trials
from detection.utils.runs import TuneFolder


def _args(synthetic_root, tmp_path, *extra):
    return ["--cfg", "configs/demo.yaml", "--holdout", "0.4", "--space", str(_space(tmp_path)), *extra,
            "data.format=coco", f"data.root={synthetic_root / 'coco'}", f"output_dir={tmp_path / 'runs'}",
            "model.weights=none", "model.min_size=128", "model.max_size=160", "model.fpn_channels=32",
            "model.rpn_post_nms_top_n_train=100", "model.box_batch_size_per_image=64", "data.num_workers=0"]


def _space(tmp_path):
    p = tmp_path / "space.yaml"
    p.write_text("train.lr: {factor: [0.5, 2.0]}\nmodel.freeze_at: [0, 1]\n")
    return p


def _cfg(synthetic_root, tmp_path):
    return load_config(None, {"data": {"format": "coco", "root": str(synthetic_root / "coco")},
                              "output_dir": str(tmp_path / "runs")})


def test_the_tuning_split_is_carved_from_the_training_images_once(synthetic_root, tmp_path):
    folder = TuneFolder(tmp_path / "t")
    folder.dir.mkdir()
    split, classes = carve_tuning_split(_cfg(synthetic_root, tmp_path), folder, 0.4, seed=0)
    lists = read_split_file(split)
    assert sorted(classes) == ["circle", "cross", "square", "triangle"]
    assert len(lists["train"]) + len(lists["val"]) == 24 and not set(lists["train"]) & set(lists["val"])
    assert all(n.startswith("train_") for n in lists["train"] + lists["val"])  # the validation split is untouched
    before = folder.split.read_text()
    carve_tuning_split(_cfg(synthetic_root, tmp_path), folder, 0.9, seed=1)
    assert folder.split.read_text() == before  # written once: a resumed tune scores on the same images
    with pytest.raises(ConfigError, match="--holdout"):
        carve_tuning_split(_cfg(synthetic_root, tmp_path), TuneFolder(tmp_path / "u"), 0.1, seed=0)
    from detection.tuning.study import TRIAL_WARMUP, trial_config

    cfg = trial_config(_cfg(synthetic_root, tmp_path), {"train.lr": 0.01}, folder, 3, split, classes, 0.5, 3)
    t = cfg["train"]
    assert (t["lr"], t["time"], t["time_validations"], t["warmup_fraction"]) == (0.01, 0.5, 3, TRIAL_WARMUP)
    assert cfg["data"]["split_file"] == split and cfg["name"] == "trial_003"  # on the tuning split, in trials/


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_trial_reports_its_validations_and_is_pruned_there(monkeypatch, tmp_path):
    """The trainer's on_validation hook reports to the study; once two trials finished, a weak
    trial stops at its check (Optuna's TrialPruned out of the hook) and is recorded pruned."""
    calls = []

    def fake_train(cfg, on_validation=None):
        calls.append(cfg)
        for ap in (0.1, 0.2):
            on_validation(1, {"coco": {"AP": ap}})
        return tmp_path, {"coco": {"AP": 0.3, "AP50": 0.5}, "intervals": {"AP": {"low": 0.2, "high": 0.4}}}

    monkeypatch.setattr(study_module, "train", fake_train)
    monkeypatch.setattr(study_module, "trial_config", lambda *a, **k: {"train": {"time": 0.1}})
    study = optuna.create_study(direction="maximize", pruner=AlwaysPrune())
    folder = TuneFolder(tmp_path / "t")
    ctx = {"folder": folder, "split": "", "classes": [], "minutes": 0.0, "checks": 3, "state": None,
           "finished": (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)}
    opts = study_module.TuneOptions(minutes=1, trials=3)
    run_trials(optuna, study, {}, {"train.lr": [0.01, 0.02]}, ctx, opts, deadline=float("inf"))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert trials[0].value == 0.3 and trials[0].intermediate_values == {1: 0.1, 2: 0.2}
    assert trials[0].user_attrs["AP_low"] == 0.2 and trials[2].intermediate_values == {1: 0.1}


def test_trials_too_short_to_rank_recipes_are_named_once_and_in_the_report(monkeypatch, tmp_path, caplog):
    """A trial's steps (its results.csv) are recorded; under MIN_TRIAL_ITERS the tune warns once
    and report.md says so, since such trials rank how fast recipes start."""
    steps = iter([40, 60, 400])

    def fake_train(cfg, on_validation=None):
        run = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
        run.mkdir()
        (run / "results.csv").write_text(f"epoch,step,AP\n1,10,\n2,{next(steps)},0.3\n")
        return run, {"coco": {"AP": 0.3, "AP50": 0.5}, "intervals": {}}

    monkeypatch.setattr(study_module, "train", fake_train)
    monkeypatch.setattr(study_module, "trial_config", lambda *a, **k: {"train": {"time": 0.1}})
    study = optuna.create_study(direction="maximize")
    ctx = {"folder": TuneFolder(tmp_path / "t"), "split": "", "classes": [], "minutes": 0.0, "checks": 0,
           "state": None, "finished": (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)}
    with caplog.at_level("WARNING", logger="detection.tune"):
        run_trials(optuna, study, {}, {"train.lr": [0.01, 0.02]}, ctx, study_module.TuneOptions(minutes=1, trials=3),
                   deadline=float("inf"))
    assert [t.user_attrs["iterations"] for t in study.get_trials()] == [40, 60, 400]
    warnings = [r.getMessage() for r in caplog.records if "trained only" in r.getMessage()]
    assert len(warnings) == 1 and "trial 0 trained only 40 iterations" in warnings[0]
    text = report_text(trial_rows(study), study.best_trial, {}, None, ctx["folder"])
    assert "trained 40-400 iterations; under 150" in text
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.csv").write_text("epoch,step\n1,not-a-number\n")
    assert study_module.trained_iterations(broken) is None  # the trial's AP stands; its count is unknown
    assert study_module.trained_iterations(tmp_path / "absent") is None


@pytest.mark.slow
def test_a_two_trial_tune_writes_a_best_yaml_that_trains_and_resumes(synthetic_root, tmp_path):
    tune_cli.main(_args(synthetic_root, tmp_path, "--time", "2", "--trials", "1", "--trial-minutes", "0.15",
                        "--no-final", "--name", "s"))
    folder = TuneFolder(tmp_path / "runs" / "tune" / "s")
    used = json.loads(folder.state.read_text())["used_s"]
    # a process of this tune that died mid-trial left one RUNNING: the next start fails it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder.study_db}")
    orphan = study.ask()
    orphan.set_user_attr("host", __import__("socket").gethostname())
    orphan.set_user_attr("pid", dead.pid)

    tune_cli.main(_args(synthetic_root, tmp_path, "--time", "2", "--trials", "2", "--trial-minutes", "0.15",
                        "--no-final", "--name", "s"))  # the same name: continues the study
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{folder.study_db}").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[0].user_attrs.get("baseline") and not trials[2].user_attrs.get("baseline")
    assert json.loads(folder.state.read_text())["used_s"] > used  # the budget counts both sessions
    rows = folder.trials_csv.read_text().splitlines()
    assert len(rows) == 4 and rows[1].startswith("0,complete") and folder.history_png.is_file()
    assert "best: trial" in folder.report_md.read_text()
    assert sum(folder.trial(t.number).weights.is_dir() for t in trials) == 1  # only the best keeps its weights

    from detection.training.trainer import train

    best = load_config(str(folder.best_yaml), [f"output_dir={tmp_path / 'again'}", "train.time=0.05"])
    assert best["data"]["split_file"] == "" and best["data"]["root"] == str(synthetic_root / "coco")
    run, results = train(best)
    assert results["coco"]["AP"] >= 0 and (run / "weights" / "last.pt").is_file()


@pytest.mark.slow
def test_two_workers_share_one_study(synthetic_root, tmp_path):
    tune_cli.main(_args(synthetic_root, tmp_path, "--time", "2", "--trials", "3", "--trial-minutes", "0.15",
                        "--workers", "2", "--no-final", "--name", "w"))
    folder = TuneFolder(tmp_path / "runs" / "tune" / "w")
    trials = optuna.load_study(study_name="w", storage=f"sqlite:///{folder.study_db}").get_trials()
    finished = [t for t in trials if t.state.is_finished()]
    assert 3 <= len(finished) <= 4  # each process checks the count before it starts one
    assert len({t.user_attrs["pid"] for t in finished}) == 2  # both processes ran trials of the one study
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    assert folder.best_yaml.is_file()


def _row(trial, ap, low, high, baseline=False, changes=""):
    return {"trial": trial, "state": "complete", "AP": ap, "AP_low": low, "AP_high": high, "AP50": "",
            "iterations": 400, "last_check": "", "minutes": 1.0, "baseline": baseline, "changes": changes}


def test_the_report_says_how_sure_the_winner_is_and_what_to_do(tmp_path):
    """report.md answers "how sure, and what now": a winner whose interval holds the baseline's
    AP is not clearly better; a baseline that wins is to be trained as it is; tied importances
    are not ranked."""
    from types import SimpleNamespace

    from detection.tuning.report import stands_out

    folder = TuneFolder(tmp_path / "t")
    base, close, clear = _row(0, 0.50, 0.45, 0.55, True), _row(1, 0.52, 0.47, 0.57, changes="a=1"), \
        _row(2, 0.70, 0.65, 0.75, changes="a=2")
    text = report_text([base, close], SimpleNamespace(number=1), {}, None, folder)
    assert "not clearly better" in text and "no setting stood out in 2 complete trials" in text
    text = report_text([base, clear], SimpleNamespace(number=2), {"a": 0.8, "b": 0.2}, None, folder)
    assert "not clearly better" not in text and "what mattered most: a 0.80" in text
    assert "train it as it is" in report_text([base, close], SimpleNamespace(number=0), {}, None, folder)
    assert not stands_out({f"p{i}": 0.1 for i in range(10)}) and stands_out({"a": 0.6, "b": 0.2, "c": 0.2})


@pytest.mark.parametrize("final_from", ["trial", "pretrained"])
def test_the_final_training_starts_from_the_best_trials_weights(monkeypatch, synthetic_root, tmp_path, final_from):
    """The final training's model.init is the best trial's run folder (its weights are the ones
    keep_best_weights kept); --final-from pretrained, or a best trial whose weights are gone,
    starts it from the configured weights. best.yaml stays the configuration alone."""
    from pathlib import Path

    from detection.utils.runs import Run

    trained = []

    def fake_train(cfg, on_validation=None):
        trained.append(cfg)
        run = Run(Path(cfg["output_dir"]) / cfg["name"])
        run.weights.mkdir(parents=True, exist_ok=True)
        run.last.write_bytes(b"weights")
        ap = {"trial_000": 0.5, "trial_001": 0.3}.get(cfg["name"], 0.4)  # the baseline wins
        return run.dir, {"coco": {"AP": ap, "AP50": ap}, "intervals": {}}

    monkeypatch.setattr(study_module, "train", fake_train)
    cfg = load_config("configs/demo.yaml", {"data": {"format": "coco", "root": str(synthetic_root / "coco")},
                                            "output_dir": str(tmp_path / "runs")})
    folder = study_module.tune(cfg, study_module.TuneOptions(minutes=10, trials=2, trial_minutes=0.1, holdout=0.4,
                                                             final_from=final_from),
                               {"train.lr": [0.01, 0.02]}, "a space", "f")
    names = [c["name"] for c in trained]
    assert names == ["trial_000", "trial_001", "final"]
    expected = str(folder.trial(0).dir) if final_from == "trial" else ""
    assert trained[-1]["model"]["init"] == expected
    assert load_config(str(folder.best_yaml))["model"]["init"] == ""
    assert ("final/ went on from its trial's weights" in folder.report_md.read_text()) == (final_from == "trial")
    if final_from == "trial":  # the best trial's weights gone: the final starts from the pretrained ones
        import shutil

        shutil.rmtree(folder.trial(0).weights)
        best = optuna.load_study(study_name="f", storage=f"sqlite:///{folder.study_db}").best_trial
        assert study_module.final_start(folder, best, "trial") == ""
