"""data.augment: none | light | default | heavy (mosaic, mixup, box-safe crop) | a user's
albumentations file. Every rung keeps boxes inside the image, never degenerate, with their
labels and crowd flags; mosaic and mixup follow the item's seed."""

import random

import albumentations as A
import cv2
import numpy as np
import pytest

from detection.config import load_config
from detection.data.dataset import DetectionDataset
from detection.data.mixing import mixup, mosaic
from detection.data.records import DatasetInfo, ImageRecord
from detection.data.transforms import apply_transforms, build_transforms
from detection.errors import ConfigError


def _sample(rng, n=6):
    """An image with boxes anywhere, edges included; label k is crowd when k is odd."""
    h, w = (int(v) for v in rng.integers(40, 160, 2))
    x1, y1 = rng.uniform(0, w - 3, n), rng.uniform(0, h - 3, n)
    x2, y2 = np.minimum(x1 + rng.uniform(2, w, n), w), np.minimum(y1 + rng.uniform(2, h, n), h)
    labels = rng.integers(1, 9, n)
    return (rng.integers(0, 255, (h, w, 3), dtype=np.uint8), np.stack([x1, y1, x2, y2], 1).astype(np.float32),
            labels.astype(np.int64), labels % 2 == 1)


def _assert_safe(sample, shape=None):
    image, boxes, labels, crowd = sample
    h, w = image.shape[:2]
    assert image.dtype == np.uint8 and image.ndim == 3 and (shape is None or image.shape[:2] == shape)
    assert boxes.shape == (len(labels), 4) and len(crowd) == len(labels)
    if len(boxes):
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all() and (boxes[:, [1, 3]] <= h).all()
        assert ((boxes[:, 2] - boxes[:, 0]) >= 1 - 1e-4).all() and ((boxes[:, 3] - boxes[:, 1]) >= 1 - 1e-4).all()
        assert (crowd == (labels % 2 == 1)).all()  # each box kept its own crowd flag


@pytest.mark.parametrize("augment", ["light", "default", "heavy"])
def test_each_preset_keeps_boxes_inside_and_flags_carried(augment):
    tf, rng = build_transforms(augment, train=True), np.random.default_rng(1)
    kept = 0
    for i in range(150):
        tf.set_random_seed(i)
        out = apply_transforms(tf, *_sample(rng))
        _assert_safe(out)
        kept += len(out[1])
    assert kept > 150  # most boxes survive
    assert build_transforms(augment, train=False) is None and build_transforms("none", train=True) is None


def test_mosaic_and_mixup_keep_boxes_inside_and_flags_carried():
    rng = np.random.default_rng(2)
    for i in range(60):
        a = _sample(rng)
        m = mosaic(a, [_sample(rng) for _ in range(3)], seed=i)
        _assert_safe(m, shape=a[0].shape[:2])  # the primary's canvas
        b = _sample(rng)
        x = mixup(m, b, random.Random(i))
        _assert_safe(x, shape=a[0].shape[:2])
        assert len(x[1]) >= len(m[1])  # the first image's boxes all stay, the second's join them
        assert x[2][:len(m[2])].tolist() == m[2].tolist()
    a = (np.full((40, 80, 3), 200, np.uint8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
    b = (np.zeros((80, 40, 3), np.uint8), np.array([[0, 0, 40, 80]], np.float32), np.array([2]), np.array([False]))
    image, boxes, labels, _ = mixup(a, b, random.Random(0))
    np.testing.assert_allclose(boxes, [[0, 0, 20, 40]])  # fitted into a's canvas at its own aspect ratio
    assert labels.tolist() == [2] and 60 < image[:40, :20].mean() < 140 and image[:, 20:].mean() > 100


def _dataset(tmp_path, augment, n=6):
    rng, records = np.random.default_rng(3), []
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
        records.append(ImageRecord(str(tmp_path / f"{i}.png"), 80, 60, np.array([[10, 10, 40, 40]], np.float32),
                                   np.array([1 + i % 2]), np.array([False]), np.zeros(1, bool), i))
    return DetectionDataset(records, DatasetInfo(["a", "b"], [1, 2], "test"), train=True, min_size=60,
                            max_size=100, augment=augment)


def test_heavy_mixes_images_the_same_way_for_the_same_seed(tmp_path):
    ds = _dataset(tmp_path, "heavy")
    counts = []
    for seed in range(40):
        img, t = ds[(0, seed)]
        again, t2 = ds[(0, seed)]
        assert (img == again).all() and (t["boxes"] == t2["boxes"]).all()  # a resumed run sees the same image
        h, w = img.shape[1:]
        b = t["boxes"]
        assert (b[:, 2:] <= b.new_tensor([w, h]) + 1e-4).all() and (b[:, :2] >= 0).all()
        counts.append(len(b))
    assert max(counts) > 1  # mosaic or mixup brought other images' boxes in
    assert ds.mixing and not _dataset(tmp_path, "default").mixing
    assert max(len(_dataset(tmp_path, "default")[(0, s)][1]["boxes"]) for s in range(20)) <= 1


def test_a_pipeline_file_runs_with_box_safety_and_bad_files_are_one_line(tmp_path, monkeypatch):
    path = tmp_path / "aug.yaml"
    A.save(A.Compose([A.VerticalFlip(p=1.0), A.Blur(p=0.5)]), str(path), data_format="yaml")
    tf = build_transforms(str(path), train=True)
    image, boxes, _, _ = apply_transforms(tf, np.zeros((50, 60, 3), np.uint8), np.array([[0, 0, 10, 20]], np.float32),
                                          np.array([1]), np.array([False]))
    np.testing.assert_allclose(boxes, [[0, 30, 10, 50]])
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "run.yaml").write_text("data: {format: voc, root: x, augment: ../aug.yaml}\n")
    assert load_config(str(tmp_path / "cfg" / "run.yaml"))["data"]["augment"] == str(path)  # beside the YAML

    (tmp_path / "bad.yaml").write_text("transform: {__class_fullname__: NoSuchTransform, p: 0.5}\n")
    A.save(A.Compose([A.Mosaic(p=1.0)]), str(tmp_path / "mosaic.yaml"), data_format="yaml")
    for name, words in [("bad.yaml", "not an albumentations pipeline"), ("mosaic.yaml", "data.augment=heavy"),
                        ("missing.yaml", "no such file")]:
        with pytest.raises(ConfigError) as e:
            build_transforms(str(tmp_path / name), train=True)
        assert str(tmp_path / name) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)
