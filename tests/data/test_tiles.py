"""Tiles of training images: the window stays in the image, boxes cut by it follow the box-safety
rules (clipped, dropped under 30% kept, crowd flags kept with their boxes), objects are drawn most
of the time, and the same seed cuts the same tile (exact resume)."""

import random

import numpy as np
import pytest
import torch

from detection.data.tiles import MIN_VISIBLE, crop_to_tile, tile_window


def _random_sample(rng: np.random.Generator):
    h, w = int(rng.integers(40, 700)), int(rng.integers(40, 700))
    n = int(rng.integers(0, 25))
    x0, y0 = rng.uniform(-20, w, n), rng.uniform(-20, h, n)
    boxes = np.stack([x0, y0, x0 + rng.uniform(0.5, 120, n), y0 + rng.uniform(0.5, 120, n)], 1).astype(np.float32)
    edge = rng.random(n) < 0.3  # a third touch or cross an image edge exactly
    boxes[edge, 0], boxes[edge, 3] = 0.0, h
    boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)  # records hold boxes clipped to the image
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return image, boxes, np.arange(1, n + 1, dtype=np.int64), rng.random(n) < 0.2


def _visible_share(box, window) -> tuple[float, float, float]:
    """(share of the box's area inside the window, clipped width, clipped height), box by box."""
    iw = max(0.0, min(box[2], window[2]) - max(box[0], window[0]))
    ih = max(0.0, min(box[3], window[3]) - max(box[1], window[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return (iw * ih / area if area > 0 else 0.0), iw, ih


@pytest.mark.parametrize("seed", range(40))
def test_a_tile_keeps_the_boxes_the_safety_rules_keep_and_only_those(seed):
    rng = np.random.default_rng(seed)
    image, boxes, labels, crowd = _random_sample(rng)
    tile = int(rng.integers(16, 800))
    window = tile_window(*image.shape[:2], boxes, tile, random.Random(seed))
    x0, y0, x1, y1 = window
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    assert (x1 - x0, y1 - y0) == (min(tile, image.shape[1]), min(tile, image.shape[0]))
    pixels, out_boxes, out_labels, out_crowd = crop_to_tile(image, boxes, labels, crowd, window)
    assert np.array_equal(pixels, image[y0:y1, x0:x1])
    expected = [k for k, b in enumerate(boxes)
                if (v := _visible_share(b, window))[0] >= MIN_VISIBLE and v[1] >= 1 and v[2] >= 1]
    assert list(out_labels - 1) == expected  # the labels name the boxes kept, in order
    assert np.array_equal(out_crowd, crowd[expected])  # crowd flags travel with their boxes
    assert out_boxes.dtype == np.float32 and out_boxes.shape == (len(expected), 4)
    if len(expected):
        assert (out_boxes[:, :2] >= 0).all() and (out_boxes[:, 2:] <= [x1 - x0, y1 - y0]).all()
        assert ((out_boxes[:, 2:] - out_boxes[:, :2]) >= 1).all()
        inside = np.clip(boxes[expected], [x0, y0, x0, y0], [x1, y1, x1, y1]) - [x0, y0, x0, y0]
        assert np.allclose(out_boxes, inside, atol=1e-4)  # clipped, not moved


def test_tiles_are_drawn_around_objects_most_of_the_time_and_the_seed_fixes_them():
    boxes = np.array([[600, 440, 606, 446]], np.float32)  # one small object in a corner of 640x480
    rng = random.Random(0)
    windows = [tile_window(480, 640, boxes, 160, rng) for _ in range(2000)]
    holding = np.mean([w[0] <= 603 <= w[2] and w[1] <= 443 <= w[3] for w in windows])
    assert 0.78 < holding < 0.86  # 80% around an object, plus the uniform draws that happen to hold it
    assert len({w for w in windows}) > 50  # background tiles vary
    assert [tile_window(480, 640, boxes, 160, random.Random(s)) for s in range(5)] == \
        [tile_window(480, 640, boxes, 160, random.Random(s)) for s in range(5)]
    assert tile_window(100, 90, np.zeros((0, 4), np.float32), 160, random.Random(1)) == (0, 0, 90, 100)


def test_a_tiled_dataset_cuts_native_tiles_in_training_from_the_seed_and_keeps_validation_whole(tmp_path):
    import cv2

    from detection.data.dataset import DetectionDataset
    from detection.data.records import DatasetInfo, ImageRecord

    rng = np.random.default_rng(0)
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    boxes = np.array([[10, 10, 30, 30], [350, 250, 390, 290], [190, 140, 210, 160]], np.float32)
    rec = ImageRecord(str(path), 400, 300, boxes, np.array([1, 2, 1]), np.zeros(3, bool), np.zeros(3, bool), 0)
    info = DatasetInfo(["a", "b"], [1, 2], "t")
    train = DetectionDataset([rec], info, True, 256, 256, augment="none", tile=100)
    image, target = train[(0, 7)]
    assert image.shape[1:] == (100, 100)  # a native tile: the detector's transform scales it to 256
    again, target_again = train[(0, 7)]
    assert torch.equal(image, again) and torch.equal(target["boxes"], target_again["boxes"])  # exact resume
    assert any(not torch.equal(image, train[(0, s)][0]) for s in range(8, 12))  # other seeds, other tiles
    b = target["boxes"]
    assert ((b[:, :2] >= 0) & (b[:, 2:] <= 100)).all()
    whole, _ = DetectionDataset([rec], info, False, 256, 256, tile=100)[0]
    assert whole.shape[1:] == (300, 400)  # validation: the native image, scored sliced
