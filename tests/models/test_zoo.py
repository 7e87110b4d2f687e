"""Every architecture: a training step, a prediction, K-class heads; freezing per family."""

import copy

import pytest
import torch
from torchvision.models import mobilenet_v2

from detection.models.builders import ARCHS, build_model
from detection.models.freeze import count_parameters, freeze_model
from detection.models.weights import cache_path

HEAVY = {"fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "retinanet_resnet50_fpn",
         "retinanet_resnet50_fpn_v2", "fcos_resnet50_fpn", "ssd300_vgg16"}


def class_columns(model) -> int:
    if model.facts.family == "frcnn":
        return model.roi_heads.box_predictor.cls_score.out_features
    head = model.head.classification_head
    return head.num_columns if model.facts.family in ("ssd", "ssdlite") else head.num_classes


def train_step(model, size=128):
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    imgs = [torch.rand(3, size, size) for _ in range(2)]
    tgts = [{"boxes": torch.tensor([[10.0, 10, 60, 70], [64, 30, 120, 100]]), "labels": torch.tensor([1, 3])}] * 2
    losses = model(imgs, tgts)
    loss = sum(losses.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.slow) if a in HEAVY else a for a in ARCHS])
def test_every_arch_trains_and_predicts_with_k_class_heads(tiny_model_cfg, arch):
    torch.manual_seed(0)
    model = build_model(dict(tiny_model_cfg, arch=arch), ["a", "b", "c"], verbose=False)
    assert class_columns(model) == 4
    assert torch.isfinite(train_step(model))
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 96, 128)])[0]
    assert out["boxes"].shape[1] == 4 and (out["labels"] <= 3).all()


@torch.no_grad()
def calibrated(net, trunk, size=128):
    """Random weights with BatchNorm statistics measured on random images, as pretrained ones have.

    Frozen at their initial (0, 1) statistics, random BatchNorms let activations vanish
    through a deep trunk and gradients fall below float32 resolution.
    """
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    net.train()
    for _ in range(3):
        trunk(torch.rand(2, 3, size, size))
    return net.state_dict()


def fake_pretrained(mcfg, arch, **kw):
    """Random 'pretrained' weights where the loader looks: freezing and COCO transfer apply, no download."""
    if "mobilenet_v2" in arch:
        from torchvision.models import MobileNet_V2_Weights

        path = cache_path(MobileNet_V2_Weights.IMAGENET1K_V1)
        net = mobilenet_v2()
        trunk = net.features
    else:
        b = ARCHS[arch]
        path = cache_path(b.weights)
        net = b.builder(weights=None, weights_backbone=None, num_classes=91)
        trunk = net.backbone
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(calibrated(net, trunk, 320 if arch == "ssd300_vgg16" else 128), path)  # SSD300's extras need it
    return dict(copy.deepcopy(mcfg), arch=arch, weights="pretrained", **kw)


LIGHT_FAMILIES = ["fasterrcnn_mobilenet_v2_fpn", "retinanet_mobilenet_v2_fpn", "ssdlite_mobilenet_v2",
                  "fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"]


@pytest.mark.parametrize("arch", LIGHT_FAMILIES)
@pytest.mark.parametrize("freeze_at", [0, 1, 3, 5])
def test_frozen_parameters_and_bn_buffers_are_bit_identical(tiny_model_cfg, arch, freeze_at):
    check_freezing(tiny_model_cfg, arch, freeze_at)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["fcos_resnet50_fpn", "ssd300_vgg16"])
def test_freezing_of_the_resnet_and_vgg_families(tiny_model_cfg, arch):
    check_freezing(tiny_model_cfg, arch, 2)


def check_freezing(tiny_model_cfg, arch, freeze_at):
    """After optimizer steps: frozen stages and all BatchNorm statistics bit-identical, the rest changed."""
    torch.manual_seed(0)
    model = build_model(fake_pretrained(tiny_model_cfg, arch, freeze_at=freeze_at), ["a", "b", "c"], verbose=False)
    trunk = model.get_submodule(model.facts.trunk)
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    head = model.roi_heads.box_predictor.cls_score if model.facts.family == "frcnn" else model.head.classification_head
    head_before = [p.detach().clone() for p in head.parameters()]
    for _ in range(2):
        train_step(model)
    after = trunk.state_dict()
    for i, (stage, children) in enumerate(model.facts.stages):
        keys = [k for k in before if any(k.startswith(c + ".") for c in children)]
        assert keys, stage
        changed = [k for k in keys if not torch.equal(before[k], after[k])]
        if i < freeze_at:
            assert not changed, f"{arch}: frozen {stage} changed: {changed[:3]}"
        else:
            assert changed, f"{arch}: trainable {stage} did not change"
    stats = [k for k in before if "running_" in k]  # none in VGG16, which has no BatchNorm
    assert all(torch.equal(before[k], after[k]) for k in stats)  # freeze_bn=all
    assert stats or arch == "ssd300_vgg16"
    assert any(not torch.equal(b, p) for b, p in zip(head_before, head.parameters()))  # the new class head learns


@pytest.mark.parametrize("arch", LIGHT_FAMILIES)
def test_feature_extraction_trains_only_new_layers(tiny_model_cfg, arch):
    model = build_model(fake_pretrained(tiny_model_cfg, arch, mode="feature_extraction"), ["a"], verbose=False)
    trunk = model.get_submodule(model.facts.trunk)
    assert not any(p.requires_grad for p in trunk.parameters())
    neck_trainable = any(p.requires_grad for n in model.facts.neck for p in model.get_submodule(n).parameters())
    assert neck_trainable == (not model.facts.neck_pretrained)  # a COCO-pretrained neck is frozen too
    assert count_parameters(model)[0] > 0
    model.train()  # freezing survives train(): the trunk has no BatchNorm left to switch to batch statistics
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())


def test_unfreezing_stage_by_stage_grows_the_trainable_count(tiny_model_cfg):
    model = build_model(fake_pretrained(tiny_model_cfg, "fasterrcnn_mobilenet_v2_fpn", freeze_at=5), ["a"],
                        verbose=False)
    counts = []
    for fa in (5, 4, 3, 2, 1, 0):
        freeze_model(model, fa, "all")
        counts.append(count_parameters(model)[0])
    assert counts == sorted(counts) and len(set(counts)) == 6
