"""The few DDP helpers the trainer needs, on torch.distributed (torchrun sets the environment).

Without torchrun every helper degrades to the single-process answer, so the trainer has
one code path. Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init(device_name: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) for this process; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device_for(device_name, 0)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = device_for(device_name, local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def device_for(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from ..errors import DeviceError

        raise DeviceError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        from ..errors import DeviceError

        raise DeviceError(f"device={name} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (on every rank)."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_ranks(flag: bool, device: torch.device) -> bool:
    """True where `flag` holds on every rank. A step is skipped by all ranks or by none:
    a rank that skipped its backward would leave the others waiting in DDP's all-reduce."""
    if not active():
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_values(values: list, device: torch.device) -> list:
    """Rank 0's numbers (floats or flags) on every rank, in one small broadcast."""
    if not active():
        return list(values)
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def sync_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank: each rank updated its own
    from its own batches, and validation must use the weights rank 0 saves."""
    if active():
        for b in module.buffers():
            dist.broadcast(b, src=0)


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over the ranks: what every rank logs."""
    if not active() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def cleanup() -> None:
    if active():
        dist.destroy_process_group()
