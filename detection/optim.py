"""Optimizer parameter groups, the learning-rate schedule and the staged fine-tuning plan.

Groups: trunk vs the rest (the trunk may learn slower: `backbone_lr_mult`), and within
each, norm weights and biases apart so they can skip weight decay (`norm_weight_decay`).
A stage of `train.stages` re-applies freezing and gets a fresh optimizer, so weights
that were just unfrozen carry no stale momentum, and its own warmup.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import ConfigError

NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)


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
    if tcfg["optimizer"] == "adamw":  # typical lr 1e-4 .. 1e-3, weight_decay 0.05
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=tcfg["momentum"])  # the choice is checked in config


def warmup_length(tcfg: dict, stage_warmup_iters: int, total: int) -> int:
    """Warmup iterations of a stage of `total` iterations: `train.warmup_fraction` of it (capped at
    the stage's warmup_iters) when set, else warmup_iters; never the whole stage."""
    frac = tcfg["warmup_fraction"]
    n = min(stage_warmup_iters, round(frac * total)) if frac > 0 else stage_warmup_iters
    return min(n, total - 1) if total > 1 else 0


def milestone_iters(tcfg: dict, iters_per_epoch: int, start_epoch: int, run_epochs: int) -> list[int]:
    """Milestones as iterations from the stage's start: whole numbers are run epochs, numbers
    below 1 fractions of the whole run (so a schedule fits any run length)."""
    out = []
    for m in tcfg["milestones"]:
        epoch = m * run_epochs if m < 1 else m
        if epoch > start_epoch:
            out.append(round((epoch - start_epoch) * iters_per_epoch))
    return out


def lr_lambda(tcfg: dict, iters_per_epoch: int, epochs: int, warmup_iters: int, start_epoch: int = 0,
              run_epochs: int | None = None, total_iters: int | None = None):
    """Multiplier of the base lr at iteration `it` of a stage that starts at `start_epoch`.

    Linear warmup (see `warmup_length`), then multistep (train.milestones) or cosine over the
    stage's `epochs`, ending at train.min_lr_ratio of the base lr. `total_iters` (a stage planned
    by time) lays it over that many iterations instead; milestones then fall at the same share of
    the stage as they would of the configured epochs (epoch 9 of 12: three quarters in).
    """
    total = max(1, total_iters or epochs * iters_per_epoch)
    warmup = warmup_length(tcfg, warmup_iters, total)
    if total_iters:
        configured = run_epochs or epochs
        milestones = [round((m if m < 1 else m / configured) * total) for m in tcfg["milestones"]]
    else:
        milestones = milestone_iters(tcfg, iters_per_epoch, start_epoch, run_epochs or start_epoch + epochs)
    floor = tcfg["min_lr_ratio"]

    def f(it: int) -> float:
        if tcfg["scheduler"] == "cosine":
            decay = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
        else:
            decay = tcfg["gamma"] ** sum(it >= m for m in milestones)
        if it < warmup:
            alpha = it / warmup
            return decay * (tcfg["warmup_factor"] * (1 - alpha) + alpha)
        return decay

    return f


def plan_iterations(budget_s: float, elapsed_s: float, shares: list[float], stage: int, seconds_per_iter: float,
                    safety: float = 0.97) -> int:
    """Iterations of `stage` that fit its part of what is left of the budget.

    What is left (`budget_s - elapsed_s`) is split among this stage and those after it by
    their shares, so a stage that ran long leaves the later ones less, never the run more."""
    left = max(0.0, budget_s - elapsed_s)
    part = left * shares[stage] / max(sum(shares[stage:]), 1e-9)
    return max(1, int(part * safety / max(seconds_per_iter, 1e-9)))


def plan_stages(cfg: dict) -> list[dict]:
    """The run as a list of stages (checked in config.check_values); a run without `train.stages` is one."""
    t, m = cfg["train"], cfg["model"]
    default = {"epochs": t["epochs"], "freeze_at": m["freeze_at"], "mode": m["mode"], "lr": t["lr"],
               "backbone_lr_mult": t["backbone_lr_mult"], "warmup_iters": t["warmup_iters"]}
    stages = [{**default, **st} for st in (t["stages"] or [{}])]
    if t["auto_scale_lr"]:
        for st in stages:
            st["lr"] = st["lr"] * t["batch_size"] / t["base_batch_size"]
    return stages
