"""Broken and hostile input to api: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from detection.config import ConfigError
from detection.errors import DataError
from tests.bad_inputs import (
    _identity_predictor,
    _jpg,
)


def test_predict_on_an_empty_array_is_one_line():
    from detection.api import as_rgb

    with pytest.raises(DataError, match=r"at least one pixel, got shape \(0, 0, 3\)"):
        as_rgb(np.zeros((0, 0, 3), np.uint8))


def test_the_api_skips_and_names_a_missing_file_among_good_ones(tmp_path, caplog):
    from detection.api import Detector

    good = str(_jpg(tmp_path / "good.jpg"))
    detector = Detector(_identity_predictor())
    with caplog.at_level(logging.WARNING):
        results = detector.predict([good, str(tmp_path / "missing.jpg"), good], score=0)
    assert [Path(r.path).name for r in results] == ["good.jpg", "good.jpg"]
    assert "missing.jpg" in caplog.text and "--source" not in caplog.text
    with pytest.raises(ConfigError, match="batch must be a whole number of 1 or more, got 0"):
        detector.predict(good, batch=0)
