"""One epoch of training, and the step-time measurement train.time starts from.

Everything around them (the schedule, precision, progress output, checkpoints) lives in
its own module; these functions only iterate, step and hand outputs on. (The evaluation
pass is `evaluation.loop.evaluate`.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..errors import DetectionError
from ..utils import distributed as dist
from ..utils.precision import autocast
from ..utils.progress import Progress, memory_in_use


class NonFiniteLossError(DetectionError, FloatingPointError):
    pass


@dataclass
class TrainParts:
    """What a training step changes: the model and what steps it."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None


@dataclass
class StepOptions:
    """How a step runs: train.amp, train.clip_grad_norm, train.max_nonfinite."""

    amp: str = "none"
    clip_grad_norm: float = 0.0
    max_nonfinite: int = 5

    @classmethod
    def from_config(cls, tcfg: dict) -> StepOptions:
        return cls(tcfg["amp"], tcfg["clip_grad_norm"], tcfg["max_nonfinite"])


def _to_device(images, targets, device):
    images = [i.to(device, non_blocking=True) for i in images]
    targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
    return images, targets


def _skip_step(parts: TrainParts, sums: dict, in_a_row: int, max_nonfinite: int, where: str, loss_dict) -> None:
    """A non-finite loss: nothing is applied, the skip is counted, the lr schedule moves on; the
    run stops at `max_nonfinite` in a row."""
    sums["skipped"] = sums.get("skipped", 0) + 1
    if in_a_row >= max_nonfinite:
        raise NonFiniteLossError(
            f"{in_a_row} non-finite losses in a row at {where} "
            f"({', '.join(f'{k} {v.item():.4g}' for k, v in loss_dict.items())}); "
            "lower train.lr or lengthen train.warmup_iters. The last good checkpoint is kept.")
    parts.scheduler.step()


def train_one_epoch(parts: TrainParts, loader, device: torch.device, opts: StepOptions, *, desc: str = "train",
                    start_step: int = 0, sums: dict | None = None, on_step=None, should_stop=None,
                    nonfinite_streak: int = 0, time_left=None) -> dict:
    """Train for one epoch (or what is left of it); returns mean losses, images/s and counts.

    A non-finite loss skips its step (nothing is applied) and is counted; `max_nonfinite`
    in a row stop the run, counted across epochs (`nonfinite_streak`: the row the epoch before
    ended with; the result's `nonfinite_streak` the row this one ends with), so a diverged run of
    short epochs stops too. Under DDP a non-finite loss on any rank skips the step on all.
    `on_step(step, losses, lr)` runs after each applied step (logging, periodic checkpoints);
    `losses` holds each loss and their sum `loss` as floats.
    `sums` holds the epoch's running loss sums and counts, updated in place: a checkpoint
    taken mid-epoch saves it, so a resumed epoch reports the mean over all its steps.
    `should_stop()`, asked after every step, ends the epoch there (a time budget, Ctrl-C);
    `time_left()` (seconds, or None) caps the progress line's ETA at the budget's deadline.
    """
    model, optimizer = parts.model, parts.optimizer
    model.train()
    sums = {} if sums is None else sums
    in_a_row, grad_norm, seen, step = nonfinite_streak, None, 0, start_step
    t0 = time.perf_counter()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    bar = Progress(loader, desc, time_left=time_left)
    for images, targets in bar:
        images, targets = _to_device(images, targets, device)
        with autocast(device, opts.amp):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if not dist.all_ranks(bool(torch.isfinite(loss)), device):
            in_a_row += 1
            _skip_step(parts, sums, in_a_row, opts.max_nonfinite, f"{desc}, step {step}", loss_dict)
            if should_stop is not None and should_stop():
                break
            continue
        in_a_row = 0
        grad_norm = _backward_and_step(parts, loss, params, opts.clip_grad_norm)
        seen += len(images)
        sums["n"] = sums.get("n", 0) + 1
        losses = {**{k: v.item() for k, v in loss_dict.items()}, "loss": loss.item()}  # one sync each
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        lr = optimizer.param_groups[0]["lr"]
        bar.update(loss_last=f"{losses['loss']:.3f}", loss_mean=f"{sums['loss'] / sums['n']:.3f}", lr=f"{lr:.4g}",
                   img_s=f"{seen / (time.perf_counter() - t0):.1f}", mem=memory_in_use(device))
        if on_step is not None:
            on_step(step, losses, lr)
        if should_stop is not None and should_stop():
            break
    bar.close()
    out = {k: v / max(sums.get("n", 0), 1) for k, v in sums.items() if k not in ("n", "skipped")}
    out["images_per_s"] = seen / max(time.perf_counter() - t0, 1e-9)  # of this process's part of the epoch
    out.update(iters=step - start_step, skipped_nonfinite=sums.get("skipped", 0), nonfinite_streak=in_a_row)
    if grad_norm is not None:
        out["grad_norm"] = grad_norm  # of the last step, before clipping
    return out


def measure_step_time(model, loader, device: torch.device, amp: str = "none", steps: int = 4,
                      warmup: int = 1) -> float:
    """Seconds per training iteration (loading, forward, backward) on real batches, leaving the
    weights as they were: no optimizer step, gradients cleared, buffers restored. For planning a
    run by time. The batches come from an epoch number no training epoch uses."""
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sampler = loader.batch_sampler
    sampler.set_epoch(10**6, limit=steps + warmup)
    model.train()
    t0, n = None, 0
    for i, (images, targets) in enumerate(loader):
        if i == warmup:
            t0 = time.perf_counter()
        images, targets = _to_device(images, targets, device)
        with autocast(device, amp):
            loss = sum(model(images, targets).values())
        loss.backward()
        model.zero_grad(set_to_none=True)
        n += i >= warmup
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.load_state_dict(saved)
    if t0 is None or n == 0:  # fewer batches than the warm-up: time what there was
        return measure_step_time(model, loader, device, amp, steps, 0) if warmup else 1.0
    return (time.perf_counter() - t0) / n


def _backward_and_step(parts: TrainParts, loss, params, clip_grad_norm: float) -> float | None:
    """Backward, optional clipping (of unscaled gradients under fp16), step, schedule, EMA."""
    scaler, grad_norm = parts.scaler, None
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(parts.optimizer)
    else:
        loss.backward()
    if clip_grad_norm > 0:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip_grad_norm))
    if scaler is not None:
        scaler.step(parts.optimizer)
        scaler.update()
    else:
        parts.optimizer.step()
    parts.scheduler.step()
    if parts.ema is not None:
        parts.ema.update_parameters(parts.model)
    return grad_norm
