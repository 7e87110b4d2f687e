"""Optimizer parameter groups, learning-rate scaling and the staged fine-tuning plan.

Groups: trunk vs the rest (the trunk may learn slower: `backbone_lr_mult`), and within
each, norm weights and biases apart so they can skip weight decay (`norm_weight_decay`).
A stage of `train.stages` re-applies freezing and gets a fresh optimizer, so weights
that were just unfrozen carry no stale momentum, and its own warmup.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ConfigError

NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)
STAGE_KEYS = ("epochs", "freeze_at", "mode", "lr", "backbone_lr_mult", "warmup_iters")


def param_groups(model: nn.Module, lr: float, weight_decay: float, norm_weight_decay: float,
                 backbone_lr_mult: float) -> list[dict]:
    """Trainable parameters in up to four named groups with their lr and weight decay."""
    trunk = model.get_submodule(model.trunk)
    trunk_ids = {id(p) for p in trunk.parameters()}
    no_decay_ids = {id(m.weight) for m in model.modules() if isinstance(m, NORM_TYPES) and m.weight is not None}
    groups: dict[str, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if id(p) in trunk_ids else "heads"
        plain = id(p) in no_decay_ids or name.endswith(".bias")
        key = f"{part}_{'norm_bias' if plain else 'weights'}"
        if key not in groups:
            groups[key] = {"name": key, "params": [],
                           "lr": lr * (backbone_lr_mult if part == "backbone" else 1.0),
                           "weight_decay": norm_weight_decay if plain else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def build_optimizer(model: nn.Module, tcfg: dict, lr: float, backbone_lr_mult: float) -> torch.optim.Optimizer:
    groups = param_groups(model, lr, tcfg["weight_decay"], tcfg["norm_weight_decay"], backbone_lr_mult)
    if not groups:
        raise ConfigError("nothing to train: every parameter is frozen (check model.freeze_at / model.mode)")
    if tcfg["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=tcfg["momentum"])
    if tcfg["optimizer"] == "adamw":  # typical lr 1e-4 .. 1e-3, weight_decay 0.05
        return torch.optim.AdamW(groups, lr=lr)
    raise ConfigError(f"train.optimizer must be sgd or adamw, got {tcfg['optimizer']!r}")


def plan_stages(cfg: dict) -> list[dict]:
    """The run as a list of stages; a run without `train.stages` is one stage."""
    t, m = cfg["train"], cfg["model"]
    default = {"epochs": t["epochs"], "freeze_at": m["freeze_at"], "mode": m["mode"], "lr": t["lr"],
               "backbone_lr_mult": t["backbone_lr_mult"], "warmup_iters": t["warmup_iters"]}
    stages = []
    for i, st in enumerate(t["stages"] or [{}]):
        if not isinstance(st, dict):
            raise ConfigError(f"train.stages[{i}] must be a mapping with keys {STAGE_KEYS}, got {st!r}")
        unknown = [k for k in st if k not in STAGE_KEYS]
        if unknown:
            raise ConfigError(f"train.stages[{i}]: unknown key(s) {unknown}; allowed: {', '.join(STAGE_KEYS)}")
        if t["stages"] and "epochs" not in st:
            raise ConfigError(f"train.stages[{i}] needs `epochs`")
        stage = {**default, **st}
        for k in ("epochs", "freeze_at", "warmup_iters"):
            if not isinstance(stage[k], int) or stage[k] < 0:
                raise ConfigError(f"train.stages[{i}].{k} must be a non-negative integer, got {stage[k]!r}")
        if t["auto_scale_lr"]:
            stage["lr"] = stage["lr"] * t["batch_size"] / t["base_batch_size"]
        stages.append(stage)
    return stages
