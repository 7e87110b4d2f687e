"""Broken and hostile input to folds: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.config import ConfigError


def test_a_fold_that_holds_every_image_is_refused_not_reviewed_against_nothing():
    from detection.review.folds import check_folds, fold_of

    names = [f"img{i}.jpg" for i in range(3)]
    which = [0, 0, 0]  # what a name hash can give three images and two folds
    with pytest.raises(ConfigError, match="put all 3 training images in fold 1"):
        check_folds(which, 2, 3)
    check_folds([fold_of(n, 5, 0) for n in [f"im{i}" for i in range(200)]], 5, 200)  # spread: fine
    assert len({fold_of(n, 2, 0) for n in names}) >= 1
