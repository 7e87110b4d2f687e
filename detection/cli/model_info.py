"""python tools/model_info.py --cfg FILE [key.sub=value ...] [--size H W]

Shows, per trunk stage, the output shape, parameters, whether it is frozen, and GFLOPs,
plus the whole model's GFLOPs for one image: what `model.freeze_at` and `model.mode` do,
before any training. Builds the model without reading weight files.
"""

from __future__ import annotations

import argparse

from .common import add_config_args, config_from_args, setup_logging, user_errors_as_one_line


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Per-stage shapes, parameters, freezing and GFLOPs of a config's model.")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), help="input size (default: min_size square)")
    add_config_args(p, cfg_required=True)
    args = p.parse_args(argv)
    setup_logging()
    cfg = config_from_args(args)
    import torch

    from ..models.builders import build_model
    from ..models.model_info import count_flops, format_table, stage_table

    classes = cfg["data"]["classes"] or ["object"]
    mcfg = cfg["model"]
    model = build_model(mcfg, classes, load_pretrained=False, verbose=False)  # the freezing training applies
    if mcfg["weights"] == "none":
        print("model.weights=none: nothing is frozen (freezing random weights would only hurt)")
    h, w = args.size or (mcfg["min_size"], mcfg["min_size"])
    rows = stage_table(model, h, w)
    model.eval()
    total = count_flops(model, [torch.zeros(3, h, w)])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    f = model.facts.freeze
    print(f"{mcfg['arch']}  {len(classes)} classes  input {h}x{w}  mode {f['mode']}  freeze_at {f['freeze_at']}")
    print(format_table(rows, {"params": sum(p.numel() for p in model.parameters()), "trainable": trainable,
                              "gflops": total / 1e9}))


if __name__ == "__main__":
    main()
