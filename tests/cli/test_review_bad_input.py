"""Broken and hostile input to review: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("minutes", ["nan", "-1", "0", "inf"])
def test_review_fold_minutes_that_are_no_budget_are_refused_before_any_fold(tmp_path, capsys, minutes):
    from detection.cli import review as review_cli

    with pytest.raises(SystemExit):
        review_cli.main(["--ckpt", str(tmp_path / "none"), "--folds", "3", "--fold-minutes", minutes])
    assert "--fold-minutes: must be > 0 and <= 1e+06 minutes" in capsys.readouterr().err


def test_review_with_one_fold_is_refused_in_one_line(tmp_path):
    from detection.cli import review as review_cli

    with pytest.raises(SystemExit) as e:
        review_cli.main(["--ckpt", str(tmp_path / "none"), "--folds", "1", "--runs", str(tmp_path / "runs")])
    assert "--folds 1: one fold holds every image" in str(e.value.code)
    assert not (tmp_path / "runs").exists()
