"""Broken and hostile input to splits: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import json

import pytest

from detection.config import load_config
from detection.errors import DataError
from tests.conftest import write_voc


@pytest.mark.parametrize("lists, words", [
    ({"train": ["a.jpg", 3], "val": ["b.jpg"]}, "are not (e.g. 3)"),
    ({"train": ["a.jpg", "b.jpg"], "val": [{"x": 1}]}, "`val` must list file names"),
    ({"train": ["a.jpg", "b.jpg"], "val": ["b.jpg"]}, "1 images are in both `train` and `val` (e.g. 'b.jpg')"),
])
def test_a_tampered_split_file_is_one_line(tmp_path, lists, words):
    from detection.data.splits import read_split_file

    path = tmp_path / "split.json"
    path.write_text(json.dumps(lists))
    with pytest.raises(DataError) as e:
        read_split_file(str(path))
    assert str(path) in str(e.value) and words in str(e.value)


def test_a_split_file_whose_sides_overlap_stops_training(tmp_path):
    from detection.data.dataset import read_split

    root = write_voc(tmp_path / "voc", {f"i{k}": [("cat", 5, 5, 40, 30, 0)] for k in range(4)})
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["i0.jpg", "i1.jpg", "i2.jpg"], "val": ["i2.jpg", "i3.jpg"]}))
    cfg = load_config(None, ["data.format=voc", f"data.root={root}", f"data.split_file={split}"])
    with pytest.raises(DataError, match="in both `train` and `val` .*'i2.jpg'"):
        read_split(cfg["data"], "train", True)


def test_an_empty_training_side_says_which_way_to_turn_the_knob(tmp_path):
    from detection.data.dataset import read_split

    root = write_voc(tmp_path / "voc", {f"i{k}": [("cat", 5, 5, 40, 30, 0)] for k in range(3)})
    cfg = load_config(None, ["data.format=voc", f"data.root={root}", "data.val_fraction=0.999"])
    with pytest.raises(DataError, match=r"no images on the train side; lower data.val_fraction \(it is 0.999\)"):
        read_split(cfg["data"], "train", True)
