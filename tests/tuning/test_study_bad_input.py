"""Broken and hostile input to study: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from tests.bad_inputs import (
    _tune,
    _tune_args,
)


def test_a_trial_too_short_to_validate_is_one_line(synthetic_root, tmp_path, fake_trials):
    said = _tune(_tune_args(synthetic_root, tmp_path, "--trial-minutes", "0.01"))
    assert "--trial-minutes 0.01: a trial must train and validate at least once; give 0.1 or more" in said
    fake_trials["res"] = {}  # a trial whose budget ended before its one validation
    said = _tune(_tune_args(synthetic_root, tmp_path, "--trial-minutes", "0.5"))
    assert said.startswith("config error: tune: trial 0 failed") and "validated nothing" in said


@pytest.mark.parametrize("storage,said", [
    ("not a url", "is not a storage URL"),
    ("sqlite:////nonexistent-folder/x/study.db", "cannot be opened: (sqlite3.OperationalError) unable to open"),
    ("postgresql://user:secret@localhost/db", "its database driver is not installed"),
])
def test_a_storage_that_cannot_be_opened_is_one_line(synthetic_root, tmp_path, fake_trials, storage, said):
    pytest.importorskip("sqlalchemy")
    if storage.startswith("postgresql"):
        try:
            import psycopg2  # noqa: F401
            pytest.skip("psycopg2 is installed here")
        except ImportError:
            pass
    line = _tune(_tune_args(synthetic_root, tmp_path, "--storage", storage))
    assert said in line and "\n" not in line and "secret" not in line


def test_a_study_db_that_is_not_a_database_is_one_line(synthetic_root, tmp_path, fake_trials):
    db = tmp_path / "runs" / "tune" / "tune" / "study.db"
    db.parent.mkdir(parents=True)
    db.write_text("this is no database")
    line = _tune(_tune_args(synthetic_root, tmp_path))
    assert "file is not a database" in line and f"move {db} away" in line


def test_a_study_continued_with_another_config_or_space_is_refused(synthetic_root, tmp_path, fake_trials):
    from detection.utils.runs import TuneFolder

    assert _tune(_tune_args(synthetic_root, tmp_path, "--trials", "2")) == ""
    best = (TuneFolder(tmp_path / "runs" / "tune" / "tune").best_yaml).read_text()
    other_cfg = _tune(_tune_args(synthetic_root, tmp_path, "--trials", "3") + ["train.lr=0.5"])
    assert "this study was made with another configuration (train.lr: 0.02 there, 0.5 here)" in other_cfg
    other_space = _tune(_tune_args(synthetic_root, tmp_path, "--trials", "3", space="model.freeze_at: [0, 2]\n"))
    assert "this study was made with another search space" in other_space
    assert (TuneFolder(tmp_path / "runs" / "tune" / "tune").best_yaml).read_text() == best  # the report untouched
    assert _tune(_tune_args(synthetic_root, tmp_path, "--trials", "3")) == ""  # the same: it continues
