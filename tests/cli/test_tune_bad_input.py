"""Broken and hostile input to tune: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from tests.bad_inputs import (
    _tune,
    _tune_args,
)


@pytest.mark.parametrize("flag,value,said", [("--workers", "10000", "this machine gives this process"),
                                             ("--time", "1e308", "must be > 0 and <= 1e+06"),
                                             ("--trial-minutes", "1e308", "must be > 0 and <= 1e+06")])
def test_tune_refuses_counts_the_machine_cannot_hold(synthetic_root, tmp_path, capsys, flag, value, said):
    args = _tune_args(synthetic_root, tmp_path, flag, value)
    assert _tune(args)  # argparse's exit
    assert said in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
