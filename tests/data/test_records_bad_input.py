"""Broken and hostile input to records: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from detection.cli import train as train_cli
from detection.data.records import MAX_BOXES_PER_IMAGE, DatasetInfo, RawImage, build_records
from detection.errors import CheckpointError
from tests.bad_inputs import (
    _Graph,
    _info,
    _jpg,
    cli_error,
    train_args,
)
from tests.conftest import write_voc


def test_a_set_without_boxes_is_refused(tmp_path, capsys):
    root = write_voc(tmp_path / "voc", {"a": [], "b": []})
    msg = cli_error(train_cli.main, train_args(root, tmp_path, "data.classes=[cat]", "data.val_split=train"), capsys)
    assert "no boxes at all" in msg and not list((tmp_path / "runs").glob("*/weights/best.pt"))


def test_an_image_with_too_many_boxes_trains_on_the_cap_and_names_the_file(tmp_path, caplog):
    image = _jpg(tmp_path / "dense.jpg", 200, 200)
    n = MAX_BOXES_PER_IMAGE + 700
    xs = np.random.default_rng(1).uniform(0, 150, (n, 2))
    raw = RawImage(str(image), "dense.xml", 1, None, boxes=[[x, y, x + 20, y + 20] for x, y in xs], labels=[1] * n)
    with caplog.at_level(logging.WARNING):
        [train] = build_records([raw], _info(), {})
    assert len(train.boxes) == MAX_BOXES_PER_IMAGE
    assert f"700 boxes dropped: over {MAX_BOXES_PER_IMAGE} in one image" in caplog.text and "dense.xml" in caplog.text
    [val] = build_records([raw], _info(), {}, strict=True)  # validation keeps every box: the metric counts them
    assert len(val.boxes) == n


def test_labels_outside_the_classes_are_refused_and_background_is_never_a_class():
    from detection.evaluation.evaluator import DetectionEvaluator
    from detection.inference.predictor import Predictor

    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(CheckpointError, match=r"m.onnx: returned class label 3, outside its 2 classes"):
        Predictor(_Graph([1, 3]), ["cat", "dog"], 16, 16, source="m.onnx").predict([image])
    [result] = Predictor(_Graph([0, 2]), ["cat", "dog"], 16, 16, source="m.onnx").predict([image], score=0)
    assert result.names == ["dog"]  # label 0 (background) was named 'dog', the last class, through index -1
    ev = DetectionEvaluator.__new__(DetectionEvaluator)
    ev.predictions = {}
    ev.add(0, np.ones((2, 4)), np.array([0.9, 0.8]), np.array([0, 1]))
    assert ev.predictions[0][2].tolist() == [1]  # scored as the last category before


def test_a_validation_label_file_of_100k_boxes_is_left_out_counted_and_named(tmp_path, caplog):
    """It trained on the cap, then scoring held all 100,000 boxes against every detection
    (870 MB more; OpenBLAS gave up under a 4 GiB limit)."""
    from detection.data.records import MAX_VAL_BOXES_PER_IMAGE, RawImage, build_records

    dense, plain = _jpg(tmp_path / "dense.jpg", 200, 200), _jpg(tmp_path / "plain.jpg", 200, 200)
    n = 100_000
    xs = np.random.default_rng(1).uniform(0, 150, (n, 2))
    raws = [RawImage(str(dense), "dense.txt", 1, None, boxes=[[x, y, x + 20, y + 20] for x, y in xs], labels=[1] * n),
            RawImage(str(plain), "plain.txt", 2, None, boxes=[[5, 5, 50, 50]], labels=[1])]
    info = DatasetInfo(class_names=["a"], cat_ids=[1], source="val")
    with caplog.at_level(logging.WARNING):
        val = build_records(raws, info, {}, strict=True)
    assert [r.path.rsplit("/", 1)[-1] for r in val] == ["plain.jpg"]
    assert f"1 validation images left out: over {MAX_VAL_BOXES_PER_IMAGE} labelled boxes" in caplog.text
    assert "dense.txt" in caplog.text and info.skipped["too_many_boxes"] == 1
    [train, _] = build_records(raws, DatasetInfo(class_names=["a"], cat_ids=[1], source="train"), {})
    assert len(train.boxes) == 1000  # training keeps the capped image
