"""Broken and hostile input to slicing: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.config import ConfigError
from detection.errors import DataError


def test_tiles_that_step_a_pixel_apart_are_refused_saying_how_many_they_would_make():
    from detection.inference.slicing import check_slicing

    with pytest.raises(ConfigError, match=r"1 px apart, 370,881 tiles for a 640-px image") as e:
        check_slicing(32, 0.99)
    assert "--overlap" in str(e.value)
    check_slicing(640, 0.2)  # the documented settings pass


def test_an_image_that_would_need_too_many_tiles_is_one_line_before_any_runs():
    from detection.inference.slicing import MAX_TILES, tile_count, tiles

    assert len(tiles(640, 640, 320, 0.2)) == tile_count(640, 640, 320, 0.2) == 9
    with pytest.raises(DataError, match=r"a 20000x20000 image would make 640,000 tiles"):
        tiles(20000, 20000, 32, 0.2)  # each legal, together unbounded
    assert tile_count(20000, 20000, 640, 0.2) <= MAX_TILES  # an aerial photo in the usual tiles fits
