"""model.stride4_level: a /4 FPN level on the MobileNetV2 Faster R-CNN, with its anchors and RoI pooling."""

import copy

import pytest
import torch
import yaml

from detection.config import ConfigError, load_config
from detection.models.builders import build_model


def test_the_level_is_there_with_its_anchors_and_small_boxes_pool_from_it(tiny_model_cfg):
    plain = build_model(tiny_model_cfg, ["a", "b"], verbose=False).eval()
    fine = build_model({**tiny_model_cfg, "stride4_level": True}, ["a", "b"], verbose=False).eval()
    x = torch.rand(1, 3, 128, 160)
    maps = fine.backbone(x)
    assert list(maps) == ["0", "1", "2", "3", "pool"]
    assert [m.shape[-1] for m in maps.values()] == [40, 20, 10, 5, 3]  # /4 ... /32, and the max-pooled /64
    assert list(plain.backbone(x)) == ["0", "1", "2", "pool"]
    assert [s[0] for s in fine.rpn.anchor_generator.sizes] == [16, 32, 64, 128, 256]
    assert [s[0] for s in plain.rpn.anchor_generator.sizes] == [32, 64, 128, 256]
    with torch.no_grad():
        fine([x[0]])  # sets up the pooler's scales from the maps it meets
    pool = fine.roi_heads.box_roi_pool
    assert pool.scales == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 120.0, 120.0]])]
    assert pool.map_levels(boxes).tolist() == [0, 1]  # a 20-px box from /4, a 120-px one from /8


def test_it_trains_predicts_and_is_rebuilt_from_the_checkpoint_with_fitted_anchors(tmp_path, synthetic_root,
                                                                                    tiny_model_cfg):
    from detection.checkpoint import load_checkpoint, model_from_checkpoint
    from detection.training.trainer import train

    cfg = load_config(None, {
        "name": "p2", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": {**copy.deepcopy(tiny_model_cfg), "anchors": "auto", "stride4_level": True},
        "train": {"epochs": 1, "batch_size": 4, "warmup_iters": 1, "milestones": []}})
    run, _ = train(cfg)
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["stride4_level"] is True and len(saved["anchor_sizes"]) == 5  # one list per level, /4 included
    model = model_from_checkpoint(load_checkpoint(run / "weights" / "best.pt")).eval()
    assert [list(s) for s in model.rpn.anchor_generator.sizes] == saved["anchor_sizes"]
    assert list(model.backbone(torch.rand(1, 3, 128, 128))) == ["0", "1", "2", "3", "pool"]
    with torch.no_grad():
        out = model([torch.rand(3, 128, 128)])[0]
    assert set(out) == {"boxes", "labels", "scores"}


def test_other_archs_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="model.stride4_level` adds a /4 level to fasterrcnn_mobilenet_v2_fpn only"):
        load_config(None, {"data": {"format": "voc", "root": "x"},
                           "model": {"arch": "retinanet_mobilenet_v2_fpn", "stride4_level": True}})
