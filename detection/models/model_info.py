"""What `freeze_at` does before training: per trunk stage, output shape, parameters, frozen or not, GFLOPs.

FLOPs come from torch's own counter (`torch.utils.flop_counter`, a multiply-add is 2 FLOPs),
so every op torch knows is counted, not only convolutions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_flops(module: nn.Module, x) -> int:
    """FLOPs of `module(x)`, as torch counts them."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def stage_table(model: nn.Module, height: int, width: int) -> list[dict]:
    """One row per trunk stage, on a 1 x 3 x height x width input (after the detector's normalisation)."""
    trunk = model.get_submodule(model.facts.trunk)
    rows = []
    x = torch.zeros(1, 3, height, width)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for name, children in model.facts.stages:
            flops = 0
            params = trainable = 0
            for c in children:
                m = trunk.get_submodule(c)
                flops += count_flops(m, x)
                x = m(x)
                params += sum(p.numel() for p in m.parameters())
                trainable += sum(p.numel() for p in m.parameters() if p.requires_grad)
            rows.append({"stage": name, "output": tuple(x.shape[1:]), "params": params,
                         "trainable": trainable, "frozen": trainable == 0 and params > 0, "gflops": flops / 1e9})
    model.train(was_training)
    return rows


def format_table(rows: list[dict], totals: dict) -> str:
    lines = [f"{'stage':<10}{'output (C, H, W)':<22}{'params':>12}{'trainable':>12}  {'state':<8}{'GFLOPs':>8}"]
    for r in rows:
        state = "frozen" if r["frozen"] else ("train" if r["trainable"] else "-")
        lines.append(f"{r['stage']:<10}{str(r['output']):<22}{r['params']:>12,}{r['trainable']:>12,}  "
                     f"{state:<8}{r['gflops']:>8.3f}")
    lines.append(f"{'model':<10}{'':<22}{totals['params']:>12,}{totals['trainable']:>12,}  {'':<8}"
                 f"{totals['gflops']:>8.3f}")
    return "\n".join(lines)
