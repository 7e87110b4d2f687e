"""Broken and hostile input to convert: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.errors import DataError
from tests.conftest import write_voc


def test_converting_into_a_folder_inside_the_input_is_refused(tmp_path):
    from detection.data.convert import convert

    root = write_voc(tmp_path / "voc", {"i0": [("cat", 5, 5, 40, 30, 0)]})
    with pytest.raises(DataError, match="is inside the data set being converted"):
        convert("voc", "coco", str(root), str(root / "as_coco"))
    assert not (root / "as_coco").exists()
