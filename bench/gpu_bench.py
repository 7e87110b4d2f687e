"""The measured half of bench/gpu_check.sh: training speed, a trained-and-scored run and
inference speed, on CUDA (or, with --dry-run, on the CPU at tiny sizes, so the steps cannot rot).

    python bench/gpu_bench.py --out OUT [--dry-run] [--data DIR]

Writes OUT/summary.json and prints a Markdown table:
- the demo recipe (synthetic set) trained for a fixed number of steps with train.amp=auto and
  with fp32: images/s, peak GPU memory, the share of each step spent waiting for the loader;
- a fixed number of epochs trained by the real trainer and evaluated (BCCD when --data names a
  VOC copy of it, else the synthetic set at a larger size): AP, AP50, seconds;
- inference images/s at batch 1 and 8.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from detection.config import load_config, with_values  # noqa: E402
from detection.data.dataset import build_loader, get_dataset  # noqa: E402
from detection.models.builders import build_model  # noqa: E402
from detection.training.optim import build_optimizer  # noqa: E402
from detection.utils.precision import autocast, choose_amp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_speed(cfg: dict, amp: str, steps: int, device: torch.device, workers: int) -> dict:
    """images/s over `steps` timed steps (after 3 warm-ups), peak memory, the loader's share."""
    torch.manual_seed(0)
    ds = get_dataset(cfg, train=True)
    loader = build_loader(ds, cfg["train"]["batch_size"], True, workers, device.type == "cuda")
    model = build_model(cfg["model"], ds.info.class_names, verbose=False).to(device).train()
    opt = build_optimizer(model, cfg["train"], cfg["train"]["lr"], 1.0)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    batches, seen, waited, t0 = iter(loader), 0, 0.0, 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 3):
        w0 = time.perf_counter()
        try:
            images, targets = next(batches)
        except StopIteration:
            batches = iter(loader)
            images, targets = next(batches)
        if i == 3:
            sync(device)
            seen, waited, t0 = 0, 0.0, time.perf_counter()
        elif i > 3:
            waited += time.perf_counter() - w0
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{"boxes": t["boxes"].to(device), "labels": t["labels"].to(device)} for t in targets]
        with autocast(device, amp):
            loss = sum(model(images, targets).values())
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        scaler.step(opt) if scaler else opt.step()
        if scaler:
            scaler.update()
        seen += len(images)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"amp": amp, "images_per_s": round(seen / seconds, 2), "loader_wait_share": round(waited / seconds, 3),
            "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
            "loss": round(float(loss), 4)}


def trained_run(cfg: dict, out: Path) -> tuple[dict, Path]:
    from detection.training.trainer import train

    t0 = time.perf_counter()
    run, res = train(cfg)
    return {"AP": round(res["coco"]["AP"], 4), "AP50": round(res["coco"]["AP50"], 4),
            "seconds": round(time.perf_counter() - t0, 1), "epochs": cfg["train"]["epochs"],
            "data": cfg["data"]["root"]}, Path(run)


def infer_speed(run: Path, device: str, batches=(1, 8), images: int = 16) -> dict:
    from detection.inference.loading import open_model

    predictor = open_model(run, device).predictor
    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 255, (480, 640, 3), np.uint8) for _ in range(images)]
    out = {}
    for b in batches:
        predictor.predict(pics[:b], score=0.05, batch=b)  # warm-up
        sync(torch.device(device))
        t0 = time.perf_counter()
        predictor.predict(pics, score=0.05, batch=b)
        sync(torch.device(device))
        out[f"batch_{b}"] = round(len(pics) / (time.perf_counter() - t0), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at tiny sizes")
    p.add_argument("--data", help="a VOC copy of BCCD (carried beside the repo); default: the synthetic set")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    tiny = args.dry_run
    size = {"model.min_size": 128, "model.max_size": 160} if tiny else {}
    base = [f"{k}={v}" for k, v in size.items()] + [f"device={device.type}", "model.weights=none",
                                                     f"output_dir={out / 'runs'}"]
    summary = {"device": torch.cuda.get_device_name() if device.type == "cuda" else
               f"CPU {torch.backends.cpu.get_cpu_capability()}", "torch": torch.__version__,
               "dry_run": tiny}
    demo = load_config(ROOT / "configs" / "demo.yaml", base + ["train.batch_size=" + ("2" if tiny else "16")])
    auto = choose_amp(device, lambda amp: 1.0)[0]
    steps, workers = (2, 0) if tiny else (30, 8)
    summary["train"] = [train_speed(demo, amp, steps, device, workers) for amp in dict.fromkeys([auto, "none"])]
    if args.data:
        cfg = load_config(ROOT / "configs" / "bccd_frcnn.yaml", base + [f"data.root={args.data}", "name=bccd",
                                                                           "train.epochs=" + ("1" if tiny else "12")])
    else:
        cfg = load_config(ROOT / "configs" / "demo.yaml", base + ["name=synthetic_run", "train.epochs="
                                                                  + ("1" if tiny else "6")]
                          + (["data.fraction=0.1"] if tiny else ["model.min_size=512", "model.max_size=512"]))
    cfg = with_values(cfg, {"train.amp": auto, "data.num_workers": workers})
    summary["run"], run = trained_run(cfg, out)
    summary["infer_images_per_s"] = infer_speed(run, device.type, images=4 if tiny else 32)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    lines = [f"{summary['device']}, torch {summary['torch']}{' (dry run)' if tiny else ''}", "",
             "| what | amp | images/s | GPU GB | loader wait |", "|---|---|---|---|---|"]
    lines += [f"| train demo recipe | {t['amp']} | {t['images_per_s']} | {t['peak_mem_gb']} | "
              f"{t['loader_wait_share']:.0%} |" for t in summary["train"]]
    r = summary["run"]
    lines += ["", f"trained {r['epochs']} epochs on {r['data']} in {r['seconds']} s: AP {r['AP']:.3f}, "
              f"AP50 {r['AP50']:.3f}", "inference images/s: " + ", ".join(
                  f"{k.replace('_', ' ')} {v}" for k, v in summary["infer_images_per_s"].items())]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
