"""model.anchors=auto: anchors at the sizes and shapes of the training boxes, pinned in the run."""

import copy

import numpy as np
import pytest
import yaml

from detection.cli import data_check
from detection.config import ConfigError, load_config
from detection.models.anchors import auto_size, fit_anchors
from tests.conftest import write_voc


def test_fitted_sizes_and_ratios_follow_known_boxes():
    rng = np.random.default_rng(0)
    # 300 platelets of ~20 px and 700 cells of ~100 px, cells a bit taller than wide
    w = np.concatenate([rng.normal(20, 2, 300), rng.normal(90, 8, 700)])
    h = np.concatenate([rng.normal(20, 2, 300), rng.normal(110, 8, 700)])
    sizes, ratios = fit_anchors(w, h, levels=4, per_level=2)
    flat = [s for level in sizes for s in level]
    assert len(sizes) == 4 and all(len(level) == 2 for level in sizes)
    assert flat == sorted(flat) and len(set(flat)) == 8
    assert 16 <= flat[0] <= 24 and 90 <= flat[-1] <= 120  # the smallest and largest populations
    assert ratios[0] < ratios[-1] and 1.0 <= ratios[1] <= 1.3  # mostly taller than wide
    tall, r = fit_anchors(np.full(50, 10.0), np.full(50, 40.0), levels=2, per_level=1)
    assert r == pytest.approx([4.0, 4.0, 4.0]) and tall[0][0] == 20  # sqrt(10 * 40)
    with pytest.raises(ConfigError, match="at least 8 training boxes"):
        fit_anchors(np.ones(3), np.ones(3), 4, 2)


def test_auto_is_refused_where_it_does_not_apply():
    with pytest.raises(ConfigError, match="model.anchors=auto is for"):
        load_config(None, {"data": {"format": "voc", "root": "x"},
                           "model": {"arch": "ssdlite_mobilenet_v2", "anchors": "auto"}})
    with pytest.raises(ConfigError, match="model.auto_size is for the Faster R-CNN and RetinaNet archs"):
        load_config(None, {"data": {"format": "voc", "root": "x"},
                           "model": {"arch": "ssdlite_mobilenet_v2", "auto_size": True}})


def test_auto_size_shrinks_until_the_small_boxes_reach_the_smallest_anchor():
    rng = np.random.default_rng(0)
    cells = rng.uniform(40, 120, 400)  # shorter sides at 480 px; 5% are under ~44
    size, max_size = auto_size(cells, 480, 640)
    q = np.quantile(cells, 0.05)
    assert size % 32 == 0 and q * size / 480 >= 32 > q * (size - 32) / 480  # the smallest size that keeps them
    assert max_size == round(640 * size / 480)
    assert auto_size(np.full(50, 20.0), 480, 640) == (480, 640)  # small objects: never shrunk, never grown
    assert auto_size(np.full(50, 400.0), 800, 1333) == (256, 427)  # large ones: down to the floor
    assert auto_size(np.zeros(0), 480, 640) == (480, 640)  # no boxes: as configured


def test_auto_size_sets_the_training_size_and_is_pinned(tmp_path):
    from detection.training.trainer import Trainer

    boxes = [("cell", 100, 100, 140, 150, 0), ("cell", 300, 200, 420, 330, 0)]  # shorter sides 40 and 120
    for split in ("train", "val"):
        write_voc(tmp_path / "voc", {f"{split}{i}": boxes for i in range(4)}, split, size=(640, 480))
    t = Trainer(load_config(None, {
        "name": "s", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "voc", "root": str(tmp_path / "voc"), "classes": ["cell"], "num_workers": 0},
        "model": {"weights": "none", "fpn_channels": 32, "min_size": 480, "max_size": 640, "auto_size": True}}))
    t.setup()
    assert (t.cfg["model"]["min_size"], t.cfg["model"]["max_size"]) == (384, 512)  # 40 px * 0.8 = 32
    assert t.loader.dataset[0][0].shape[1:] == (384, 512)  # the loader resizes to it
    saved = yaml.safe_load(t.run.config.read_text())["model"]
    assert (saved["min_size"], saved["max_size"], saved["auto_size"]) == (384, 512, False)  # a resume keeps it
    t.log.close()
    # the dataset doctor reports the box sizes at the size training would choose
    data_check.main(["--data", str(tmp_path / "voc"), "--format", "voc", "--out", str(tmp_path / "check"),
                            "data.classes=[cell]", "model.min_size=480", "model.max_size=640",
                    "model.auto_size=true"])
    assert "(min_size 384, max_size 512)" in (tmp_path / "check" / "report.md").read_text()


def test_auto_anchors_are_pinned_and_rebuilt_from_the_checkpoint(tmp_path, synthetic_root, tiny_model_cfg):
    from detection.checkpoint import load_checkpoint, model_from_checkpoint
    from detection.training.trainer import train

    cfg = load_config(None, {
        "name": "a", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": {**copy.deepcopy(tiny_model_cfg), "anchors": "auto"},
        "train": {"epochs": 1, "batch_size": 4, "warmup_iters": 1, "milestones": []}})
    run, _ = train(cfg)
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert len(saved["anchor_sizes"]) == 4 and len(saved["aspect_ratios"]) == 3
    model = model_from_checkpoint(load_checkpoint(run / "weights" / "best.pt"))
    gen = model.rpn.anchor_generator
    assert [list(s) for s in gen.sizes] == saved["anchor_sizes"]
    assert list(gen.aspect_ratios[0]) == pytest.approx(saved["aspect_ratios"])
