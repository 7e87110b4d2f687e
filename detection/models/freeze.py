"""Freezing a pretrained trunk by stages, BatchNorm included.

A backbone is described as an ordered list of stages (stem first). `freeze_at=N`
freezes the stem and the first N-1 stages, as Detectron2's FREEZE_AT does; 0 trains
everything. Frozen parameters get `requires_grad=False`, so autograd records nothing
for those layers (the input image needs no gradient either), which is what makes a
frozen trunk cheap. BatchNorm is swapped for torchvision's FrozenBatchNorm2d, whose
statistics and affine terms are buffers: they cannot drift, and `model.train()` cannot
switch them back to batch statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import ConfigError


def _swap_bn(module: nn.Module, to_frozen: bool) -> nn.Module:
    """Return `module` with every BatchNorm2d frozen (or every FrozenBatchNorm2d unfrozen)."""
    if to_frozen and isinstance(module, nn.BatchNorm2d):
        new = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        new.weight.copy_(module.weight.detach())
        new.bias.copy_(module.bias.detach())
        new.running_mean.copy_(module.running_mean)
        new.running_var.copy_(module.running_var)
        return new
    if not to_frozen and isinstance(module, FrozenBatchNorm2d):
        new = nn.BatchNorm2d(module.weight.numel(), eps=module.eps)
        with torch.no_grad():
            new.weight.copy_(module.weight)
            new.bias.copy_(module.bias)
            new.running_mean.copy_(module.running_mean)
            new.running_var.copy_(module.running_var)
        return new
    for name, child in module.named_children():
        new_child = _swap_bn(child, to_frozen)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


def freeze_bn(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        return _swap_bn(module, True)


def unfreeze_bn(module: nn.Module) -> nn.Module:
    return _swap_bn(module, False)


# A stage: (name, names of the trunk's children that form it), stem first.
StageSpec = list[tuple[str, list[str]]]


def apply_freeze(trunk: nn.Module, stages: StageSpec, freeze_at: int, bn_policy: str = "all") -> None:
    """Freeze the first `freeze_at` stages of `trunk`; `bn_policy` all | frozen_stages.

    Re-applying with another `freeze_at` (staged fine-tuning) unfreezes what is no longer
    frozen; with `bn_policy=all` BatchNorm stays frozen everywhere (small batches give
    useless batch statistics), with `frozen_stages` it follows the stage.
    """
    if bn_policy not in ("all", "frozen_stages"):
        raise ValueError(f"model.freeze_bn must be all or frozen_stages, got {bn_policy!r}")
    if not 0 <= freeze_at <= len(stages):
        names = ", ".join(name for name, _ in stages)
        raise ConfigError(
            f"model.freeze_at={freeze_at} is out of range for this backbone: 0..{len(stages)} (stages: {names})"
        )
    for i, (_, children) in enumerate(stages):
        frozen = i < freeze_at
        for child_name in children:
            _set_frozen(trunk, child_name, frozen, freeze_norm=bn_policy == "all" or frozen)


def _set_frozen(root: nn.Module, path: str, frozen: bool, freeze_norm: bool) -> None:
    """(Un)freeze the submodule at dotted `path`, swapping its BatchNorm kind as asked."""
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    child = getattr(parent, name)
    child = freeze_bn(child) if freeze_norm else unfreeze_bn(child)
    setattr(parent, name, child)
    for p in child.parameters():
        p.requires_grad_(not frozen)


MODES = ("fine_tune", "feature_extraction")


def freeze_model(model: nn.Module, freeze_at: int, bn_policy: str = "all", mode: str = "fine_tune") -> int:
    """Apply a freezing policy to a detector built by `build_model`; returns the freeze_at used.

    `feature_extraction` freezes the whole trunk, and the neck (FPN / SSD extra layers) too
    when it came pretrained with the detector: only the new heads learn.
    """
    if mode not in MODES:
        raise ValueError(f"model.mode must be one of {MODES}, got {mode!r}")
    facts = model.facts
    if mode == "feature_extraction":
        freeze_at = len(facts.stages)
    apply_freeze(model.get_submodule(facts.trunk), facts.stages, freeze_at, bn_policy)
    neck_frozen = mode == "feature_extraction" and facts.neck_pretrained
    for path in facts.neck:  # a freshly initialised neck keeps live BatchNorm
        _set_frozen(model, path, neck_frozen,
                    freeze_norm=neck_frozen or (bn_policy == "all" and facts.neck_pretrained))
    return freeze_at


def freeze_policy(mcfg: dict, freeze_at: int | None = None, mode: str | None = None) -> dict:
    """The one freezing policy of a config (or of a stage that overrides freeze_at / mode).

    Pretrained weights are frozen as asked; random ones never (freezing them would only hurt).
    """
    if mcfg["weights"] == "none":
        return {"freeze_at": 0, "mode": "fine_tune", "freeze_bn": "frozen_stages"}
    return {"freeze_at": mcfg["freeze_at"] if freeze_at is None else freeze_at,
            "mode": mode or mcfg["mode"], "freeze_bn": mcfg["freeze_bn"]}


def apply_policy(model: nn.Module, policy: dict) -> dict:
    """Apply a policy from `freeze_policy` (or a checkpoint's `freeze`) to a built detector.

    The one way freezing reaches a model: at build, at a stage's start and when restoring
    a checkpoint. What was applied is kept as `model.facts.freeze`, which checkpoints record.
    """
    used = freeze_model(model, policy["freeze_at"], policy["freeze_bn"], policy["mode"])
    model.facts.freeze = {"freeze_at": used, "mode": policy["mode"], "freeze_bn": policy["freeze_bn"]}
    return model.facts.freeze


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts; FrozenBatchNorm buffers are not parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return trainable, frozen
