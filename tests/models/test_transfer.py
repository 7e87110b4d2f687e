"""Staged fine-tuning, parameter groups, lr scaling, and COCO class knowledge in new heads."""

import copy

import pytest
import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.retinanet import RetinaNetClassificationHead

from detection.config import ConfigError, load_config
from detection.models.heads import coco_label_of, replace_heads
from detection.training.optim import build_optimizer, param_groups, plan_stages
from tests.models.test_zoo import fake_pretrained

COCO = ["__background__", "person", "bicycle", "car", "motorcycle", "airplane", "N/A", "couch", "tv",
        "dining table", "potted plant"]
VOC_NAMES = ["aeroplane", "motorbike", "sofa", "tvmonitor", "diningtable", "pottedplant", "person", "unicorn"]


def test_voc_synonyms_find_coco_categories():
    got = {n: coco_label_of(n, COCO) for n in VOC_NAMES}
    assert got == {"aeroplane": 5, "motorbike": 4, "sofa": 7, "tvmonitor": 8, "diningtable": 9,
                   "pottedplant": 10, "person": 1, "unicorn": None}
    # matched as carry_trained matches a trained model's names: case, underscores, runs of spaces
    names = COCO + ["traffic light"]
    assert [coco_label_of(n, names) for n in (" Dining__Table", "traffic   light", "Traffic_Light")] == [9, 11, 11]


def test_faster_rcnn_rows_are_copied_from_the_coco_head():
    torch.manual_seed(0)
    model = nn.Module()
    model.roi_heads = nn.Module()
    model.roi_heads.box_predictor = old = FastRCNNPredictor(16, len(COCO))
    carried = replace_heads(model, "frcnn", len(VOC_NAMES), COCO, VOC_NAMES)
    new = model.roi_heads.box_predictor
    assert carried == VOC_NAMES[:-1] and new.cls_score.out_features == len(VOC_NAMES) + 1
    for label, name in enumerate(VOC_NAMES, start=1):
        src = coco_label_of(name, COCO)
        if src is None:
            assert not torch.equal(new.cls_score.weight[label], old.cls_score.weight[0])
            continue
        assert torch.equal(new.cls_score.weight[label], old.cls_score.weight[src])
        assert torch.equal(new.cls_score.bias[label], old.cls_score.bias[src])
        assert torch.equal(new.bbox_pred.weight[4 * label:4 * label + 4], old.bbox_pred.weight[4 * src:4 * src + 4])
    assert torch.equal(new.cls_score.weight[0], old.cls_score.weight[0])  # background


def test_anchor_major_heads_copy_every_anchor():
    torch.manual_seed(0)
    model = nn.Module()
    model.head = nn.Module()
    model.head.classification_head = old = RetinaNetClassificationHead(8, 3, len(COCO))
    replace_heads(model, "retinanet", 2, COCO, ["sofa", "zebra"])
    new = model.head.classification_head
    assert new.num_classes == 3
    w_old = old.cls_logits.weight.view(3, len(COCO), 8, 3, 3)
    w_new = new.cls_logits.weight.view(3, 3, 8, 3, 3)
    for a in range(3):
        assert torch.equal(w_new[a, 1], w_old[a, 7])  # sofa <- couch, for each anchor
        assert not torch.equal(w_new[a, 2], w_old[a, 7])


def test_carry_over_through_the_builder_and_switch_off(tiny_model_cfg):
    from detection.models.builders import build_model

    mcfg = fake_pretrained(tiny_model_cfg, "ssdlite320_mobilenet_v3_large")
    model = build_model(mcfg, ["person", "unicorn", "sofa"], verbose=False)
    assert model.facts.carried_classes == ["person", "sofa"]
    model = build_model(dict(mcfg, carry_coco_classes=False), ["person"], verbose=False)
    assert model.facts.carried_classes == []


def _cfg(**train):
    return load_config(None, {"data": {"format": "voc", "root": "x"}, "train": train})


def test_param_groups_lr_mult_and_no_decay_on_norm_and_bias(tiny_model_cfg):
    from detection.models.builders import build_model

    model = build_model(dict(tiny_model_cfg, freeze_bn="frozen_stages"), ["a"], verbose=False)
    groups = {g["name"]: g for g in param_groups(model, 0.1, 1e-4, 0.0, 0.1)}
    assert set(groups) == {"backbone_weights", "backbone_norm_bias", "heads_weights", "heads_norm_bias"}
    assert groups["backbone_weights"]["lr"] == pytest.approx(0.01) and groups["heads_weights"]["lr"] == 0.1
    assert groups["backbone_norm_bias"]["weight_decay"] == 0.0 and groups["heads_weights"]["weight_decay"] == 1e-4
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(grouped) == sorted(trainable)  # each trainable parameter exactly once


def test_plan_stages_and_auto_scale_lr():
    stages = plan_stages(_cfg(stages=[{"epochs": 2, "freeze_at": 5}, {"epochs": 3, "freeze_at": 2, "lr": 0.002,
                                                                       "backbone_lr_mult": 0.1}]))
    assert [s["epochs"] for s in stages] == [2, 3]
    assert stages[0]["lr"] == 0.02 and stages[1]["backbone_lr_mult"] == 0.1 and stages[1]["mode"] == "fine_tune"
    assert plan_stages(_cfg(auto_scale_lr=True, batch_size=8, base_batch_size=16, lr=0.02))[0]["lr"] == 0.01
    with pytest.raises(ConfigError, match=r"train.stages\[1\]: unknown key\(s\) \['lrr'\]"):
        plan_stages(_cfg(stages=[{"epochs": 1}, {"epochs": 1, "lrr": 1}]))
    with pytest.raises(ConfigError, match=r"train.stages\[0\] needs `epochs`"):
        plan_stages(_cfg(stages=[{"lr": 1}]))


def test_everything_frozen_is_a_clear_error(tiny_model_cfg):
    from detection.models.builders import build_model

    model = build_model(tiny_model_cfg, ["a"], verbose=False)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="nothing to train"):
        build_optimizer(model, _cfg()["train"], 0.1, 1.0)


@pytest.mark.slow
def test_two_stage_run_unfreezes_and_continues(tiny_model_cfg, synthetic_root, tmp_path, caplog):
    import logging

    from detection.checkpoint import load_checkpoint, model_from_checkpoint
    from detection.training.trainer import train

    mcfg = fake_pretrained(tiny_model_cfg, "fasterrcnn_mobilenet_v2_fpn", freeze_bn="frozen_stages")
    cfg = load_config(None, {
        "name": "staged", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": copy.deepcopy(mcfg),
        "train": {"batch_size": 4, "warmup_iters": 2, "milestones": [], "stages": [
            {"epochs": 1, "freeze_at": 5, "lr": 0.01},
            {"epochs": 1, "freeze_at": 2, "lr": 0.002, "backbone_lr_mult": 0.1}]},
    })
    with caplog.at_level(logging.INFO):
        run, _ = train(cfg)
    assert "stage 2/2 from epoch 2: fine_tune, freeze_at 2 (stem, stage1 frozen), lr 0.002" in caplog.text
    rows = (run / "results.csv").read_text().splitlines()
    assert [r.split(",")[1] for r in rows[1:]] == ["1", "2"]  # the stage column
    ckpt = load_checkpoint(run / "weights" / "last.pt")
    assert ckpt["freeze"] == {"freeze_at": 2, "mode": "fine_tune", "freeze_bn": "frozen_stages"}
    lrs = {g["lr"] for g in ckpt["optimizer"]["param_groups"]}
    assert max(lrs) == pytest.approx(0.002) and min(lrs) == pytest.approx(0.0002)
    # stage 2's trunk stages 2..4 trained: BatchNorm there is live again, and the checkpoint reloads
    model = model_from_checkpoint(ckpt)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.body.stage3.modules())
    assert all(p.requires_grad for p in model.backbone.body.stage2.parameters())
