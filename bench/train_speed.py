"""Training images/s of one config under each precision, on this machine.

    python bench/train_speed.py --cfg configs/bccd_frcnn.yaml --iters 12 --amp none,bf16
    python bench/train_speed.py --cfg configs/bccd_frcnn.yaml --amp none train.channels_last=true

Times full training steps (forward, backward, optimizer) after 3 warm-up steps, on real
batches from the config's training data. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from detection.config import load_config  # noqa: E402
from detection.data.dataset import build_loader, get_dataset  # noqa: E402
from detection.models.builders import build_model  # noqa: E402
from detection.training.optim import build_optimizer  # noqa: E402
from detection.utils.precision import autocast, bf16_is_native  # noqa: E402


def measure(cfg: dict, amp: str, iters: int, device: torch.device) -> float:
    torch.manual_seed(0)
    ds = get_dataset(cfg, train=True)
    loader = build_loader(ds, cfg["train"]["batch_size"], True, 0, False)
    model = build_model(cfg["model"], ds.info.class_names, verbose=False).to(device).train()
    if cfg["train"]["channels_last"]:
        model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, cfg["train"], cfg["train"]["lr"], 1.0)
    batches = iter(loader)
    seen, t0 = 0, None
    for i in range(iters + 3):
        images, targets = next(batches)
        images = [im.to(device) for im in images]
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        if i == 3:
            seen, t0 = 0, time.perf_counter()
        with autocast(device, amp):
            loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cfg", default="configs/bccd_frcnn.yaml")
    p.add_argument("--iters", type=int, default=12)
    p.add_argument("--amp", default="none,bf16", help="comma-separated train.amp values to time")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_config(args.cfg, args.overrides)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU {torch.backends.cpu.get_cpu_capability()}"
    print(f"| {cfg['model']['arch']} @ {cfg['model']['min_size']} px, batch {cfg['train']['batch_size']}, "
          f"{where}, {torch.get_num_threads()} threads, native bf16: {bf16_is_native(device)} | images/s |\n|---|---|")
    for amp in args.amp.split(","):
        layout = ", channels_last" if cfg["train"]["channels_last"] else ""
        print(f"| train.amp={amp}{layout} | {measure(cfg, amp, args.iters, device):.2f} |", flush=True)


if __name__ == "__main__":
    main()
