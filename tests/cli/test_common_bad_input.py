"""Broken and hostile input to common: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.cli import train as train_cli
from tests.bad_inputs import (
    train_args,
    voc_set,
)


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    from detection.training import trainer

    root = voc_set(tmp_path)
    monkeypatch.setattr(trainer, "train", lambda cfg: (_ for _ in ()).throw(ValueError("a bug, not the user's")))
    with pytest.raises(ValueError, match="a bug"):
        train_cli.main(train_args(root, tmp_path))
