"""One epoch of training, one pass of evaluation, and the learning-rate schedule."""

from __future__ import annotations

import math
import time

import torch
from tqdm import tqdm

from . import distributed as dist


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


def progress(iterable, desc: str):
    """A tqdm bar on rank 0 only (and only on a terminal): one bar, not one per process."""
    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, disable=None if dist.is_main() else True)


def memory_in_use(device: torch.device) -> str:
    """Peak CUDA memory, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}G"
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f}G"  # KiB on Linux


class NonFiniteLossError(FloatingPointError):
    pass


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 runs in hardware: a CUDA GPU that supports it, or a CPU with AVX512/AMX
    bf16 kernels in oneDNN. Elsewhere (AVX2-only CPUs) bf16 is emulated and much slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def amp_warning(device: torch.device, amp: str) -> str | None:
    """A line for the log when the chosen precision is likely to slow training down."""
    if amp == "bf16" and not bf16_is_native(device):
        what = "this GPU" if device.type == "cuda" else f"this CPU ({torch.backends.cpu.get_cpu_capability()})"
        return (f"train.amp=bf16: {what} has no native bf16, so bf16 is emulated and slower than fp32 "
                "(7-11x slower in this project's runs on an AVX2 CPU); use train.amp=none, "
                "or time both with bench/train_speed.py")
    return None


def autocast(device: torch.device, amp: str):
    """torch.autocast for train.amp; fp16 needs CUDA (CPU fp16 autocast is slow and unscaled)."""
    if amp not in ("none", "bf16", "fp16"):
        raise ValueError(f"train.amp must be none, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp=fp16 needs CUDA; on the CPU use train.amp=bf16 or none")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=amp != "none")


def train_one_epoch(model, optimizer, scheduler, loader, device, epoch: int, epochs: int, *, amp: str = "none",
                    scaler=None, clip_grad_norm: float = 0.0, ema=None, max_nonfinite: int = 5, writer=None,
                    start_step: int = 0, on_step=None, sums: dict | None = None) -> dict:
    """Train for one epoch (or what is left of it); returns mean losses, images/s and counts.

    A non-finite loss skips its step (nothing is applied) and is counted; `max_nonfinite`
    in a row stop the run. Under DDP a non-finite loss on any rank skips the step on all.
    `on_step(step)` runs after each optimizer step (periodic checkpoints).
    `sums` holds the epoch's running loss sums and counts, updated in place: a checkpoint
    taken mid-epoch saves it, so a resumed epoch reports the mean over all its steps.
    """
    model.train()
    sums = {} if sums is None else sums
    in_a_row = 0
    grad_norm = None
    seen = 0
    t0 = time.perf_counter()
    step = start_step
    params = [p for g in optimizer.param_groups for p in g["params"]]
    bar = progress(loader, f"epoch {epoch + 1}/{epochs}")
    for images, targets in bar:
        images, targets = _to_device(images, targets, device)
        with autocast(device, amp):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if not dist.all_ranks(bool(torch.isfinite(loss)), device):
            sums["skipped"] = sums.get("skipped", 0) + 1
            in_a_row += 1
            if in_a_row >= max_nonfinite:
                parts = ", ".join(f"{k} {v.item():.4g}" for k, v in loss_dict.items())
                raise NonFiniteLossError(
                    f"{in_a_row} non-finite losses in a row at epoch {epoch + 1}, step {step} ({parts}); "
                    "lower train.lr or lengthen train.warmup_iters. The last good checkpoint is kept.")
            scheduler.step()
            continue
        in_a_row = 0
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if clip_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip_grad_norm))
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        sums["n"] = sums.get("n", 0) + 1
        seen += len(images)
        for k, v in loss_dict.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        sums["loss"] = sums.get("loss", 0.0) + loss.item()
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4g}", img_s=f"{seen / (time.perf_counter() - t0):.1f}",
                        mem=memory_in_use(device))
        if writer is not None:
            writer.add_scalar("train/loss", loss.item(), step)
            writer.add_scalar("train/lr", lr, step)
            for k, v in loss_dict.items():
                writer.add_scalar(f"train/{k}", v.item(), step)
        if on_step is not None:
            on_step(step)
    counts = ("n", "skipped")
    out = {k: v / max(sums.get("n", 0), 1) for k, v in sums.items() if k not in counts}
    out["images_per_s"] = seen / max(time.perf_counter() - t0, 1e-9)  # of this process's part of the epoch
    out.update(iters=step - start_step, skipped_nonfinite=sums.get("skipped", 0))
    if grad_norm is not None:
        out["grad_norm"] = grad_norm  # of the last step, before clipping
    return out


@torch.no_grad()
def predict_into(model, loader, evaluator, device, amp: str = "none") -> None:
    """Run `model` over `loader`, handing every batch to `evaluator.process`."""
    model.eval()
    for images, targets in progress(loader, "eval"):
        with autocast(device, amp):
            outputs = model([i.to(device, non_blocking=True) for i in images])
        evaluator.process(targets, outputs)


def evaluate(model, loader, evaluator, device, amp: str = "none") -> dict:
    evaluator.reset()
    predict_into(model, loader, evaluator, device, amp)
    return evaluator.evaluate()
