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

from ..errors import ConfigError

NORM_TYPES = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.SyncBatchNorm)


def param_groups(model: nn.Module, lr: float, weight_decay: float, norm_weight_decay: float,
                 backbone_lr_mult: float) -> list[dict]:
    """Trainable parameters in up to four named groups with their lr and weight decay."""
    trunk = model.get_submodule(model.facts.trunk)
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


def fit_milestones(milestones: list, run_epochs: int) -> tuple[list, str | None]:
    """(milestones, note) for a run of `run_epochs`. Epoch milestones at or past the run's end
    would never lower the lr (train.epochs=3 under the default [8, 11]): then they are scaled
    to the run, at the shares they hold of the run they imply (the last one + 1 epochs), and
    the note says so. Fractions (< 1) fit any run as they are."""
    whole = [m for m in milestones if m >= 1]
    if not whole or max(whole) < run_epochs:
        return list(milestones), None
    implied = max(whole) + 1
    fitted = [round(m * run_epochs / implied, 3) if m >= 1 else m for m in milestones]
    note = (f"train.milestones {list(milestones)} fall at or past the end of this {run_epochs}-epoch run, where "
            f"the lr would never drop: scaled to epochs {fitted} (their shares of {implied} epochs). Give "
            f"train.milestones within the run, or as fractions of it ({[round(m / implied, 2) for m in whole]}), "
            "to set them yourself")
    return fitted, note


def milestone_iters(tcfg: dict, iters_per_epoch: int, start_epoch: int, run_epochs: int) -> list[int]:
    """Milestones as iterations from the stage's start: whole numbers are run epochs, numbers
    below 1 fractions of the whole run (so a schedule fits any run length)."""
    out = []
    for m in fit_milestones(tcfg["milestones"], run_epochs)[0]:
        epoch = m * run_epochs if m < 1 else m
        if epoch > start_epoch:
            out.append(round((epoch - start_epoch) * iters_per_epoch))
    return out


def lr_lambda(tcfg: dict, iters_per_epoch: int, epochs: int, warmup_iters: int, start_epoch: int = 0,
              run_epochs: int | None = None):
    """Multiplier of the base lr at iteration `it` of a stage that starts at `start_epoch`.

    Linear warmup (see `warmup_length`), then multistep (train.milestones) or cosine over the
    stage's `epochs`, ending at train.min_lr_ratio of the base lr. (A run planned by time
    follows the share of its time instead: `time_budget.share_lr_lambda`.)
    """
    total = max(1, epochs * iters_per_epoch)
    warmup = warmup_length(tcfg, warmup_iters, total)
    milestones = milestone_iters(tcfg, iters_per_epoch, start_epoch, run_epochs or start_epoch + epochs)

    def f(it: int) -> float:
        return lr_factor(tcfg, min(it, total) / total, sum(it >= m for m in milestones), it, warmup)

    return f


def lr_factor(tcfg: dict, progress: float, milestones_passed: int, it: int, warmup: int) -> float:
    """The schedule's multiplier: cosine at `progress` (0..1) down to train.min_lr_ratio, or gamma
    per milestone passed; times the linear warmup while `it < warmup`."""
    if tcfg["scheduler"] == "cosine":
        floor = tcfg["min_lr_ratio"]
        decay = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        decay = tcfg["gamma"] ** milestones_passed
    if it < warmup:
        alpha = it / warmup
        return decay * (tcfg["warmup_factor"] * (1 - alpha) + alpha)
    return decay


def milestone_shares(tcfg: dict, run_epochs: int) -> list[float]:
    """Milestones as shares of the run: epoch 9 of 12 is 0.75 (a run planned by time decays there)."""
    return [m if m < 1 else m / run_epochs for m in fit_milestones(tcfg["milestones"], run_epochs)[0]]


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
