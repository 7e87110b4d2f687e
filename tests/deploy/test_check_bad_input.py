"""Broken and hostile input to check: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import json
import logging
import os

import pytest

from tests.bad_inputs import (
    _benchmarked_run,
)


def test_backend_auto_chooses_only_the_runs_own_files(tmp_path, caplog):
    from detection.cli.benchmark import fastest_file

    run = _benchmarked_run(tmp_path, [
        {"format": "pytorch", "file": "best.pt", "ips_1": "2.0", "AP": "0.500"},
        {"format": "onnx", "file": "best.onnx", "ips_1": "3.0", "AP": "0.498"},
        {"format": "onnx", "file": "../../evil.onnx", "ips_1": "90.0", "AP": "0.9"},
        {"format": "onnx", "file": str(tmp_path / "evil.onnx"), "ips_1": "99.0", "AP": "0.9"},
        {"format": "onnx int8", "file": "best.int8.onnx", "ips_1": "50.0", "AP": "nan"},
        {"format": "onnx int8", "file": "best.int8.onnx", "ips_1": "fast", "AP": "0.5"},
    ])
    with caplog.at_level(logging.WARNING):
        chosen = fastest_file(run)
    assert chosen == run.weights / "best.onnx"
    assert "4 of 6 rows skipped" in caplog.text


def test_a_benchmark_without_the_checkpoints_row_chooses_nothing(tmp_path):
    from detection.cli.benchmark import fastest_file

    run = _benchmarked_run(tmp_path, [{"format": "onnx", "file": "best.onnx", "ips_1": "3.0", "AP": "0.1"}])
    assert fastest_file(run) is None


@pytest.mark.parametrize("content,said", [
    ("{not json", "not a score file (JSONDecodeError)"),
    ('{"AP": "high"}', "its AP is 'high', not a number"),
    ('{"AP": NaN}', "its AP is nan, not a number"),
    ('{"AP50": 0.5}', "not a score file (KeyError)"),
    ("[1, 2]", "not a score file (TypeError)"),
])
def test_a_score_file_that_is_not_a_score_is_not_read_as_one(tmp_path, caplog, content, said):
    from detection.deploy.check import read_score
    from detection.utils.runs import score_file

    model = tmp_path / "best.onnx"
    model.write_bytes(b"model")
    score_file(model).write_text(content)
    with caplog.at_level(logging.WARNING):
        assert read_score(score_file(model), "AP", model) is None
    assert said in caplog.text and "scored again" in caplog.text


def test_an_orphaned_score_file_is_never_the_models_ap(tmp_path, caplog):

    from detection.cli.benchmark import scored_ap
    from detection.utils.runs import Run, score_file

    run = Run(tmp_path / "run")
    run.weights.mkdir(parents=True)
    ckpt = run.weights / "best.pt"
    ckpt.write_bytes(b"model")
    gone = run.weights / "best.onnx"
    score_file(gone).write_text(json.dumps({"AP": 0.9, "checkpoint_AP": 0.9}))
    assert scored_ap(ckpt, run) is None  # the export it came with was deleted
    gone.write_bytes(b"model")
    st = os.stat(score_file(gone))
    os.utime(gone, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert scored_ap(ckpt, run) == 0.9 and scored_ap(gone, run) == 0.9  # both there, scored after: trusted
    os.utime(gone, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # exported again after the score
    with caplog.at_level(logging.WARNING):
        assert scored_ap(gone, run) is None
    assert "changed after it was scored" in caplog.text
