
import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from detection.models.builders import build_model
from detection.models.freeze import apply_freeze, count_parameters
from tests.models.test_zoo import fake_pretrained


def _step(model, n=2, size=128):
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    imgs = [torch.rand(3, size, size) for _ in range(2)]
    tgts = [{"boxes": torch.tensor([[10.0, 10, 60, 70], [70, 20, 120, 90]]), "labels": torch.tensor([1, 2])}] * 2
    for _ in range(n):
        loss = sum(model(imgs, tgts).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss


def test_freeze_survives_train_and_counts(tiny_model_cfg):
    mcfg = fake_pretrained(tiny_model_cfg, "fasterrcnn_mobilenet_v2_fpn", freeze_at=3, freeze_bn="frozen_stages")
    model = build_model(mcfg, ["a"])
    model.train()
    body = model.backbone.body
    assert all(isinstance(m, FrozenBatchNorm2d) for m in body.stem.modules() if "BatchNorm" in type(m).__name__)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in body.stage3.modules())
    trainable, frozen = count_parameters(model)
    stage_params = sum(p.numel() for s in ("stem", "stage1", "stage2") for p in getattr(body, s).parameters())
    assert frozen == stage_params and trainable == sum(p.numel() for p in model.parameters()) - frozen
    # re-applying with a lower freeze_at unfreezes (staged fine-tuning) and keeps BN statistics
    mean = body.stage2[0].conv[0][1].running_mean.clone()
    apply_freeze(body, model.facts.stages, 1, "frozen_stages")
    assert all(p.requires_grad for p in body.stage2.parameters())
    assert isinstance(body.stage2[0].conv[0][1], torch.nn.BatchNorm2d)
    assert torch.equal(body.stage2[0].conv[0][1].running_mean, mean)


def test_frozen_stages_build_no_autograd_graph(tiny_model_cfg):
    model = build_model(fake_pretrained(tiny_model_cfg, "fasterrcnn_mobilenet_v2_fpn", freeze_at=3), ["a", "b"])
    body, outputs = model.backbone.body, {}
    for name in ("stage2", "stage3"):
        getattr(body, name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
    _step(model, n=1)
    assert outputs["stage2"].grad_fn is None and not outputs["stage2"].requires_grad  # last frozen stage
    assert outputs["stage3"].grad_fn is not None  # first trained stage


def test_channels_last_trains_to_the_same_loss(tiny_model_cfg):
    losses = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = build_model(tiny_model_cfg, ["a", "b"])
        if channels_last:
            model.to(memory_format=torch.channels_last)
        torch.manual_seed(1)
        losses.append(_step(model, n=1).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # same math, another memory layout


def test_freeze_at_out_of_range_is_a_clear_error(tiny_model_cfg):
    with pytest.raises(ValueError, match=r"freeze_at=9 is out of range.*0\.\.5.*stem, stage1"):
        build_model(fake_pretrained(tiny_model_cfg, "fasterrcnn_mobilenet_v2_fpn", freeze_at=9), ["a"])


def test_new_head_has_k_plus_background_and_predicts(tiny_model_cfg):
    model = build_model(tiny_model_cfg, ["a", "b", "c"])
    pred = model.roi_heads.box_predictor
    assert pred.cls_score.out_features == 4 and pred.bbox_pred.out_features == 16
    loss = _step(model, n=1)
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 100, 140)])[0]
    assert set(out) == {"boxes", "labels", "scores"}
    assert out["labels"].numel() == 0 or out["labels"].max() <= 3


def test_unknown_arch_lists_choices():
    from detection.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="model.arch.*fasterrcnn_mobilenet_v2_fpn"):
        load_config(None, ["model.arch=yolo", "data.format=coco", "data.root=x"])
    with pytest.raises(ConfigError, match="did you mean `retinanet_mobilenet_v2_fpn`"):
        load_config(None, ["model.arch=retinanet_mobilenetv2_fpn", "data.format=coco", "data.root=x"])
