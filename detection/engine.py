"""One epoch of training, one pass of evaluation, and the learning-rate schedule."""

from __future__ import annotations

import math
import time

import torch
from tqdm import tqdm


def lr_lambda(tcfg: dict, iters_per_epoch: int, epochs: int, warmup_iters: int, start_epoch: int = 0):
    """Multiplier of the base lr at iteration `it` of a stage that starts at `start_epoch`.

    Linear warmup over `warmup_iters`, then multistep (train.milestones are run epochs)
    or cosine over the stage's `epochs`.
    """
    total = max(1, epochs * iters_per_epoch)
    warmup = min(warmup_iters, total)
    milestones = [(m - start_epoch) * iters_per_epoch for m in tcfg["milestones"] if m > start_epoch]
    if tcfg["scheduler"] not in ("multistep", "cosine"):
        raise ValueError(f"train.scheduler must be multistep or cosine, got {tcfg['scheduler']!r}")

    def f(it: int) -> float:
        if tcfg["scheduler"] == "cosine":
            decay = 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
        else:
            decay = tcfg["gamma"] ** sum(it >= m for m in milestones)
        if it < warmup:
            alpha = it / warmup
            return decay * (tcfg["warmup_factor"] * (1 - alpha) + alpha)
        return decay

    return f


def _to_device(images, targets, device):
    images = [i.to(device, non_blocking=True) for i in images]
    targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
    return images, targets


class NonFiniteLossError(FloatingPointError):
    pass


def train_one_epoch(model, optimizer, scheduler, loader, device, epoch: int, epochs: int,
                    writer=None, start_step: int = 0) -> dict:
    """Train for one epoch; returns the mean of each loss and the images/s."""
    model.train()
    sums: dict[str, float] = {}
    n, seen, t0 = 0, 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True, disable=None)
    for images, targets in bar:
        images, targets = _to_device(images, targets, device)
        loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        if not torch.isfinite(loss):
            parts = ", ".join(f"{k} {v.item():.4g}" for k, v in loss_dict.items())
            raise NonFiniteLossError(
                f"loss is {loss.item()} at epoch {epoch + 1}, step {n + 1} ({parts}); "
                "lower train.lr or lengthen train.warmup_iters. The last checkpoint is kept."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        n += 1
        seen += len(images)
        for k, v in loss_dict.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        sums["loss"] = sums.get("loss", 0.0) + loss.item()
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4g}")
        if writer is not None:
            step = start_step + n
            writer.add_scalar("train/loss", loss.item(), step)
            writer.add_scalar("train/lr", lr, step)
            for k, v in loss_dict.items():
                writer.add_scalar(f"train/{k}", v.item(), step)
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out["images_per_s"] = seen / max(time.perf_counter() - t0, 1e-9)
    out["iters"] = n
    return out


@torch.no_grad()
def evaluate(model, loader, evaluator, device) -> dict:
    model.eval()
    evaluator.reset()
    for images, targets in tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=None):
        outputs = model([i.to(device, non_blocking=True) for i in images])
        evaluator.process(targets, outputs)
    return evaluator.evaluate()
