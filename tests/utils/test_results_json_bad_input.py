"""Broken and hostile input to results_json: each case asserts the one line that names the file, the
field and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.errors import OutputError


def test_results_and_config_writes_fail_in_one_line(tmp_path):
    from detection.config import save_config
    from detection.training.results_log import ResultsLog

    gone = tmp_path / "no" / "such" / "folder"
    with pytest.raises(OutputError, match=r"cannot write .*results.csv"):
        ResultsLog(gone / "results.csv").append({"epoch": 1})
    with pytest.raises(OutputError, match=r"cannot write .*config.yaml"):
        save_config({"a": 1}, gone / "config.yaml")
