import numpy as np
import pytest
import torch

from detection.data.dataset import DetectionDataset, collate
from detection.data.pixels import target_size
from detection.data.records import DatasetInfo, ImageRecord
from detection.data.sampler import GroupedBatchSampler, aspect_ratio_groups
from detection.data.transforms import apply_transforms, build_transforms, resize_scale


def test_train_transforms_keep_boxes_valid():
    tf = build_transforms("default", train=True)
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(40, 120, 2)
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        x1, y1 = rng.uniform(0, w - 6), rng.uniform(0, h - 6)
        boxes = np.array([[x1, y1, rng.uniform(x1 + 5, w), rng.uniform(y1 + 5, h)]], np.float32)
        out, b, labels, crowd = apply_transforms(tf, img, boxes, np.array([3]), np.array([False]))
        assert out.shape == (h, w, 3)  # scale jitter keeps the canvas
        assert len(b) == len(labels) == len(crowd)
        if len(b):
            assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
            assert (b >= 0).all() and (b[:, [0, 2]] <= w).all() and (b[:, [1, 3]] <= h).all()
            assert labels.tolist() == [3]


def test_horizontal_flip_moves_the_box():
    import albumentations as A

    tf = A.Compose([A.HorizontalFlip(p=1)], bbox_params=A.BboxParams("pascal_voc", ["labels", "iscrowd"]))
    _, b, _, _ = apply_transforms(tf, np.zeros((10, 100, 3), np.uint8), np.array([[10, 2, 30, 8]], np.float32),
                                  np.array([1]), np.array([False]))
    np.testing.assert_allclose(b, [[70, 2, 90, 8]])


def test_resize_follows_the_detector_rule():
    assert resize_scale(480, 640, 416, 640) == pytest.approx(416 / 480)
    assert resize_scale(100, 1000, 416, 640) == pytest.approx(0.64)  # long side capped
    assert target_size(640, 480, 240, 640) == (320, 240)
    assert target_size(640, 480, 480, 640) == (640, 480)  # native: untouched


def test_dataset_drops_crowd_in_training_and_records_scale(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((100, 200, 3), np.uint8))
    rec = ImageRecord(str(tmp_path / "a.png"), 200, 100, np.array([[0, 0, 50, 50], [10, 10, 90, 90]], np.float32),
                      np.array([1, 1]), np.array([False, True]), np.zeros(2, bool), 5)
    info = DatasetInfo(["a"], [1], "test")
    img, t = DetectionDataset([rec], info, train=True, min_size=50, max_size=1000, augment="none")[0]
    assert img.shape == (3, 50, 100) and img.dtype == torch.float32 and img.max() <= 1
    assert t["boxes"].tolist() == [[0, 0, 25, 25]] and t["labels"].tolist() == [1]
    assert t["orig_size"] == (100, 200) and t["scale"] == (0.5, 0.5)
    _, t = DetectionDataset([rec], info, train=False, min_size=50, max_size=1000)[0]
    assert len(t["boxes"]) == 2  # evaluation keeps crowd regions
    images, targets = collate([(img, t), (img, t)])
    assert len(images) == 2 and isinstance(targets, tuple)


def test_grouped_batch_sampler_covers_every_index_once_and_groups():
    sizes = [(640, 480)] * 7 + [(480, 640)] * 5
    groups = aspect_ratio_groups(sizes)
    assert len(set(groups)) == 2
    sampler = GroupedBatchSampler(groups, 3, seed=0)
    batches = [[i for i, _ in b] for b in sampler]
    assert sorted(i for b in batches for i in b) == list(range(12))
    assert len(batches) == len(sampler)
    full = [b for b in batches if len(b) == 3]
    assert sum(len({groups[i] for i in b}) == 1 for b in full) >= 3  # full batches are single-group


def test_sampler_is_a_function_of_seed_and_epoch_and_resumes_mid_epoch():
    groups = aspect_ratio_groups([(640, 480)] * 10 + [(480, 640)] * 10)
    a = GroupedBatchSampler(groups, 4, seed=5)
    epochs = []
    for e in range(3):
        a.set_epoch(e)
        epochs.append(list(a))
    assert epochs[0] != epochs[1]  # a new order each epoch, with new augmentation seeds
    b = GroupedBatchSampler(groups, 4, seed=5)
    b.set_epoch(1, skip_batches=2)
    assert list(b) == epochs[1][2:]


def test_sampler_shards_whole_batches_equally():
    groups = aspect_ratio_groups([(640, 480)] * 11 + [(480, 640)] * 6)
    ranks = [GroupedBatchSampler(groups, 2, seed=1, rank=r, world_size=2) for r in range(2)]
    got = [list(s) for s in ranks]
    assert len(got[0]) == len(got[1]) == len(ranks[0])
    flat = [i for batches in got for b in batches for i, _ in b]
    assert len(flat) == len(set(flat))  # no image on two ranks


def test_repeat_factors_follow_lvis():
    from detection.data.sampler import repeat_factors

    labels = [[1, 1]] * 9 + [[1, 2]]  # class 2 in 1 image of 10
    r = repeat_factors([np.array(x) for x in labels] + [np.zeros(0)], threshold=0.5)
    f2 = 1 / 11
    assert r[:9] == [1.0] * 9 and r[9] == pytest.approx((0.5 / f2) ** 0.5) and r[10] == 1.0  # a negative: once
    assert repeat_factors([np.array(x) for x in labels], threshold=0.001) == [1.0] * 10  # nothing that rare


def test_repeat_factor_sampling_is_exact_on_resume_shardable_and_repeats_as_often_as_asked():
    from detection.data.sampler import GroupedBatchSampler

    groups = aspect_ratio_groups([(640, 480)] * 12 + [(480, 640)] * 8)
    repeats = [1.0] * 18 + [2.5, 1.0]  # image 18: twice an epoch, a third time in half the epochs
    counts = []
    for epoch in range(400):
        s = GroupedBatchSampler(groups, 4, seed=3, repeats=repeats)
        s.set_epoch(epoch)
        items = [pair for b in s for pair in b]
        assert sorted({i for i, _ in items}) == list(range(20))  # every image, each index a real image
        counts.append(sum(i == 18 for i, _ in items))
        seeds = [seed for i, seed in items if i == 18]
        assert len(set(seeds)) == len(seeds)  # each copy augmented its own way
    assert set(counts) == {2, 3} and np.mean(counts) == pytest.approx(2.5, abs=0.08)
    a = GroupedBatchSampler(groups, 4, seed=3, repeats=repeats)
    a.set_epoch(7)
    whole = list(a)
    b = GroupedBatchSampler(groups, 4, seed=3, repeats=repeats)
    b.set_epoch(7, skip_batches=3)
    assert list(b) == whole[3:]  # the same epoch again after a resume
    ranks = [GroupedBatchSampler(groups, 2, seed=3, rank=r, world_size=2, repeats=repeats) for r in range(2)]
    for s in ranks:
        s.set_epoch(7)
    assert len(list(ranks[0])) == len(list(ranks[1]))
    positions = [(i, seed) for s in ranks for b in s for i, seed in b]
    assert len(positions) == len(set(positions))  # no copy on two ranks


def test_the_training_loader_repeats_rare_class_images_when_asked(synthetic_root, tiny_model_cfg, caplog):
    import logging

    from detection.config import load_config
    from detection.data.dataset import build_loader, get_dataset

    cfg = load_config(None, {"data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0,
                                      "sampler": "repeat_factor", "repeat_thresh": 0.9}, "model": tiny_model_cfg})
    ds = get_dataset(cfg, train=True)
    plain = build_loader(ds, 4, True, 0, False).batch_sampler
    with caplog.at_level(logging.INFO):
        rfs = build_loader(ds, 4, True, 0, False, repeat_thresh=0.9).batch_sampler
    assert "data.sampler=repeat_factor (data.repeat_thresh=0.9)" in caplog.text
    assert rfs.batches_per_epoch() > plain.batches_per_epoch()


def test_a_last_batch_of_one_image_joins_the_one_before():
    """205 BCCD images in batches of 4 left one image alone, and SSDlite's BatchNorm on its 1x1
    maps cannot train on it; every image is still seen once an epoch."""
    groups = aspect_ratio_groups([(640, 480)] * 9)
    batches = [[i for i, _ in b] for b in GroupedBatchSampler(groups, 4, seed=0)]
    assert [len(b) for b in batches] == [4, 5] and sorted(i for b in batches for i in b) == list(range(9))
    one = [[i for i, _ in b] for b in GroupedBatchSampler(aspect_ratio_groups([(640, 480)]), 4, seed=0)]
    assert one == [[0]]  # a data set of one image still trains
