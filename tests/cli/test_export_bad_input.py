"""Broken and hostile input to export: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("drop", ["nan", "-0.01", "inf", "2"])
def test_export_max_drop_must_be_an_ap_budget(drop, capsys):
    from detection.cli import export as export_cli

    with pytest.raises(SystemExit):
        export_cli.main(["--ckpt", "x", "--max-drop", drop])
    assert "--max-drop: must be in [0, 1]" in capsys.readouterr().err
