"""What `freeze_at` does before training: per trunk stage, output shape, parameters, frozen or not, GFLOPs.

FLOPs are counted with the standard formulas (a multiply-add is 2 FLOPs): a convolution
costs 2 * Cout * Hout * Wout * (Cin / groups) * kh * kw, a linear layer 2 * in * out per
row, with Hout = floor((H + 2p - d(k - 1) - 1) / s) + 1. The tests check both against
torch (`torch.utils.flop_counter` and the shapes that really come out).
"""

from __future__ import annotations

import torch
from torch import nn


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_flops(conv: nn.Conv2d, h: int, w: int) -> tuple[int, tuple[int, int]]:
    """FLOPs of `conv` on an h x w input, and its output size."""
    ho = conv_out_size(h, conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0])
    wo = conv_out_size(w, conv.kernel_size[1], conv.stride[1], conv.padding[1], conv.dilation[1])
    kh, kw = conv.kernel_size
    return 2 * conv.out_channels * ho * wo * (conv.in_channels // conv.groups) * kh * kw, (ho, wo)


def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of the convolutions and linear layers that run in `module(x)`."""
    total = 0

    def on_conv(m, inp, out):
        nonlocal total
        flops, (ho, wo) = conv_flops(m, inp[0].shape[-2], inp[0].shape[-1])
        assert (ho, wo) == tuple(out.shape[-2:]), "conv output size formula disagrees with torch"
        total += flops * inp[0].shape[0]

    def on_linear(m, inp, out):
        nonlocal total
        total += 2 * m.in_features * m.out_features * inp[0].numel() // m.in_features

    hooks = [m.register_forward_hook(on_conv) for m in module.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(on_linear) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return total


def stage_table(model: nn.Module, height: int, width: int) -> list[dict]:
    """One row per trunk stage, on a 1 x 3 x height x width input (after the detector's normalisation)."""
    trunk = model.get_submodule(model.trunk)
    rows = []
    x = torch.zeros(1, 3, height, width)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for name, children in model.stages:
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
