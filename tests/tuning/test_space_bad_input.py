"""Broken and hostile input to space: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.config import ConfigError
from tests.bad_inputs import (
    _laughs,
    _tune,
    _tune_args,
)


def test_a_billion_laughs_search_space_is_refused_before_any_trial(tmp_path):
    from detection.tuning.space import load_space

    space = tmp_path / "space.yaml"
    space.write_text(_laughs() + "train.lr: [0.01, 0.02]\n")
    with pytest.raises(ConfigError, match=r"--space .*expand to more than 100,000"):
        load_space(str(space))


@pytest.mark.parametrize("space,said", [
    ("train.lr: {low: 0, high: 0.1, log: true}\n", "a log range must start above 0"),
    ("model.fpn_channels: {low: 0, high: 64, log: true}\n", "at 1 or more for whole numbers"),
    ("train.lr: {low: 0.01, high: 0.1, step: 0}\n", "step must be a number above 0"),
])
def test_a_range_optuna_would_refuse_is_named_before_the_first_trial(synthetic_root, tmp_path, fake_trials,
                                                                     space, said):
    assert said in _tune(_tune_args(synthetic_root, tmp_path, space=space))
    assert not list((tmp_path / "runs").rglob("trial_*"))
