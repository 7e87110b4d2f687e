"""Numeric precision for training and inference: autocast, and whether bf16 pays off here."""

from __future__ import annotations

import torch


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


def choose_amp(device: torch.device, time_step) -> tuple[str, str]:
    """train.amp=auto: (precision, why). CUDA: bf16 where the GPU has it, else fp16. A CPU without
    native bf16: fp32. A CPU with it: whichever of fp32 and bf16 `time_step(amp)` (seconds a
    training iteration; the trainer times 5 after 2 warm-ups) measures faster, bf16 only when at
    least 10% faster (its rounding costs a little accuracy, so a tie goes to fp32)."""
    if device.type == "cuda":
        return ("bf16", "the GPU has bf16") if torch.cuda.is_bf16_supported() else ("fp16", "the GPU has no bf16")
    capability = torch.backends.cpu.get_cpu_capability()
    if not bf16_is_native(device):
        return "none", f"this CPU ({capability}) has no native bf16"
    fp32, bf16 = time_step("none"), time_step("bf16")
    choice = "bf16" if bf16 < 0.9 * fp32 else "none"
    return choice, f"this CPU ({capability}) measured {fp32:.2f} s an iteration in fp32, {bf16:.2f} s in bf16"


def autocast(device: torch.device, amp: str):
    """torch.autocast for train.amp (checked in config.validate); fp16 only on CUDA, where
    the config check cannot know the device yet."""
    from ..errors import ConfigError

    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; on the CPU use train.amp=bf16 or none")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=amp != "none")
