"""The search space: what may change, drawn by a trial, checked like a config before any trial."""

import optuna
import pytest

from detection.config import load_config
from detection.errors import ConfigError
from detection.tuning.space import DEFAULT_SPACE, bundle_labels, check_space, kind, load_space, resolve, suggest


@pytest.fixture
def base():
    return load_config(None, {"data": {"format": "voc", "root": "x"},
                              "model": {"min_size": 480, "max_size": 640, "auto_size": True}})


def test_the_default_space_checks_on_the_shipped_configs(base):
    check_space(DEFAULT_SPACE, base, "the default space")
    check_space(DEFAULT_SPACE, load_config("configs/bccd_frcnn.yaml"), "the default space")
    assert [kind(k, v) for k, v in DEFAULT_SPACE.items()][:4] == ["bundle", "bundle", "choice", "factor"]


def test_a_trial_draws_bundles_then_keys_then_factors(base):
    space = {"optimizer": [{"train.optimizer": "sgd"}, {"train.optimizer": "adamw", "train.lr": 0.001}],
             "model.freeze_at": [2, 4], "train.lr": {"factor": [0.5, 2.0]},
             "model.min_size": {"factor": [0.5, 1.0], "step": 32}, "train.momentum": {"low": 0.8, "high": 0.95}}
    trial = optuna.trial.FixedTrial({"optimizer": "adamw", "model.freeze_at": 4, "train.lr*": 2.0,
                                     "model.min_size*": 0.75, "train.momentum": 0.9})
    changes = suggest(trial, space, base)
    assert changes["train.optimizer"] == "adamw" and changes["model.freeze_at"] == 4
    assert changes["train.lr"] == pytest.approx(0.002)  # the factor scales the bundle's lr, not the base's
    assert changes["model.min_size"] == 352 and changes["train.momentum"] == 0.9  # 480 * 0.75 = 360 -> 352 (step 32)
    cfg = resolve(base, changes)
    assert (cfg["model"]["min_size"], cfg["model"]["max_size"], cfg["model"]["auto_size"]) == (352, 469, False)
    assert bundle_labels(space["optimizer"]) == ["sgd", "adamw"]
    assert bundle_labels([{"a.b": 1}, {"a.b": 1, "c.d": 2}]) == ["1#0", "1#1"]


@pytest.mark.parametrize("space, words", [
    ({"train.lr": [0.01, -1.0]}, "train.lr"),
    ({"train.lrr": [0.01]}, "unknown config key"),
    ({"model.arch": ["fasterrcnn_mobilenet_v2_fpn", "yolo"]}, "model.arch"),
    ({"data.augment": {"low": 1, "high": 2}}, "data.augment"),
    ({"lr": [0.01]}, "not a config key"),
    ({"train.lr": {"factor": [2, 1]}}, "{factor: [lo, hi]}"),
    ({"train.optimizer": {"factor": [0.5, 2]}}, "a factor needs a number"),
])
def test_a_bad_space_entry_is_one_line_naming_it(base, space, words, tmp_path):
    with pytest.raises(ConfigError) as e:
        check_space(space, base, "space.yaml")
    msg = str(e.value)
    assert words in msg and "\n" not in msg
    (tmp_path / "s.yaml").write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_space(str(tmp_path / "s.yaml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_space(str(tmp_path / "missing.yaml"))
    assert load_space(None)[0] is DEFAULT_SPACE
