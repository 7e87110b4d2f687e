"""Sliced inference: tiles that cover the image, a merge that keeps one box an object, and small
objects found that a downsized whole image loses."""

import cv2
import numpy as np
import pytest
import torch

from detection.errors import ConfigError
from detection.inference.predictor import Predictor
from detection.inference.slicing import merge, tiles


def test_tiles_cover_the_image_with_the_overlap_asked():
    t = tiles(1000, 1500, 640, 0.2)
    assert (0, 0, 640, 640) in t and t[-1] == (860, 360, 1500, 1000)  # the last tiles end at the edges
    covered = np.zeros((1000, 1500), bool)
    for x0, y0, x1, y1 in t:
        covered[y0:y1, x0:x1] = True
        assert x1 - x0 == 640 and y1 - y0 == 640
    assert covered.all()
    assert tiles(300, 400, 640, 0.2) == [(0, 0, 400, 300)]  # smaller than a tile: the image itself


def test_merge_keeps_one_box_an_object_and_every_class():
    boxes = np.array([[10, 10, 50, 50], [11, 10, 51, 50],  # the same object seen by two tiles
                      [10, 10, 30, 50],  # its part, cut by a tile's edge
                      [10, 10, 50, 50],  # another class at the same place
                      [100, 100, 140, 140]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    labels = np.array([1, 1, 1, 2, 1])
    assert merge(boxes, scores, labels).tolist() == [0, 3, 4]


class SmallBlind:
    """A backend that finds the bright squares in its input and, like a real detector, misses
    those under 10 pixels there."""

    def __call__(self, batch):
        out = []
        for t in batch:
            mask = (t[0] > 0.8).numpy().astype(np.uint8)
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            found = [(x, y, x + w, y + h) for x, y, w, h, _ in stats[1:] if min(w, h) >= 10]
            out.append((np.array(found, np.float32).reshape(-1, 4), np.full(len(found), 0.9, np.float32),
                        np.ones(len(found), np.int64)))
        return out


def test_slicing_finds_small_objects_a_downsized_image_loses():
    image = np.zeros((1024, 1024, 3), np.uint8)
    truth = [(100 + 200 * i, 150 + 180 * j) for i in range(4) for j in range(4)]
    for x, y in truth:
        image[y:y + 16, x:x + 16] = 255  # 16 px squares: 4 px once the image is resized to 256
    p = Predictor(SmallBlind(), ["square"], min_size=256, max_size=256)
    assert len(p.predict([image], score=0.5)[0].boxes) == 0
    p.set_slicing(256, 0.2)
    boxes = p.predict([image], score=0.5)[0].boxes
    assert len(boxes) == 16  # each found once, though the tiles overlap
    for x, y in truth:
        assert np.abs(boxes - np.array([x, y, x + 16, y + 16])).sum(1).min() <= 2  # in the image's pixels
    with pytest.raises(ConfigError):
        p.set_slicing(8)
    p.set_slicing(None)  # the model's own way: this one was trained on whole images, so slicing stays as set
    assert p.slicing == (256, 0.2)
    p.set_slicing(0)
    assert p.slicing is None and torch.is_tensor(p.preprocess(image)[0])


def test_a_model_trained_on_tiles_predicts_sliced_without_a_flag(caplog):
    image = np.zeros((1024, 1024, 3), np.uint8)
    for i in range(4):
        image[100:116, 100 + 200 * i:116 + 200 * i] = 255
    p = Predictor(SmallBlind(), ["square"], min_size=256, max_size=256, tile_size=256)
    assert p.slicing == (256, 0.2) and "as trained" in p.describe_input()
    assert len(p.predict([image], score=0.5)[0].boxes) == 4
    p.set_slicing(None, 0.5)  # --overlap alone keeps the trained tiles
    assert p.slicing == (256, 0.5)
    with caplog.at_level("WARNING"):
        p.set_slicing(0)  # --slice 0: whole images, and the log says it overrides the training tiles
    assert p.slicing is None and "trained on tiles of 256 px" in caplog.text
    assert len(p.predict([image], score=0.5)[0].boxes) == 0


def test_an_exported_file_moved_to_another_device_keeps_the_slicing_asked(tiny_run, tmp_path):
    """eval_det.py sets --slice, then opens the file again on the GPU (`on_device`): the slicing
    went with the old session. Moved here to the CPU from a session that says it is elsewhere."""
    pytest.importorskip("onnxruntime")
    from detection.inference.export import export
    from detection.inference.loading import on_device, open_model

    loaded = open_model(export(tiny_run, "onnx", out=str(tmp_path / "m.onnx")), "cpu")
    loaded.predictor.set_slicing(64, 0.25)
    loaded.predictor.backend.device = torch.device("cuda")  # as if it had been opened on a GPU
    moved = on_device(loaded, torch.device("cpu"))
    assert moved is not loaded and moved.predictor.backend.device == torch.device("cpu")
    assert moved.predictor.slicing == (64, 0.25)
