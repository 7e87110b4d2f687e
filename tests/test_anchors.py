"""model.anchors=auto: anchors at the sizes and shapes of the training boxes, pinned in the run."""

import copy

import numpy as np
import pytest
import yaml

from detection.config import ConfigError, load_config
from detection.models.anchors import fit_anchors


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


def test_auto_anchors_are_pinned_and_rebuilt_from_the_checkpoint(tmp_path, synthetic_root, tiny_model_cfg):
    from detection.checkpoint import load_checkpoint, model_from_checkpoint
    from detection.trainer import train

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
