"""`train(cfg)`: data, model, optimizer, the epoch loop and everything it writes.

The run folder `<output_dir>/<name>/` gets `config.yaml` (resolved), `weights/last.pt`
(every epoch), `weights/best.pt` (best validation COCO AP), `results.csv`,
`results.png` and TensorBoard event files.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import new_run_dir, save_checkpoint
from .config import save_config
from .data.dataset import build_loader, get_dataset
from .engine import evaluate, lr_lambda, train_one_epoch
from .evaluation.evaluator import DetectionEvaluator, format_results
from .models.builders import build_model
from .models.freeze import count_parameters, freeze_model
from .optim import build_optimizer, plan_stages

log = logging.getLogger("detection.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    return torch.device(name)


def validation_loader(cfg: dict, class_names: list[str], device: torch.device):
    val_ds = get_dataset(cfg, train=False, class_names=class_names)
    loader = build_loader(val_ds, cfg["train"]["batch_size"], False, cfg["data"]["num_workers"],
                          device.type == "cuda")
    evaluator = DetectionEvaluator(val_ds.records, val_ds.info, cfg["eval"]["voc_metric"], cfg["eval"]["iou_thresh"])
    return loader, evaluator


class ResultsLog:
    """results.csv, one row per epoch; columns fixed by the first row."""

    def __init__(self, path: Path):
        self.path, self.fields = path, None

    def append(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


def plot_results(csv_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    keys = [k for k in rows[0] if k.startswith("loss") or k in ("AP", "AP50", "voc_mAP")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3 * len(keys), 2.8), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ys = [float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]
        ax.plot(epochs, ys, marker="o")
        ax.set_title(k)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def train(cfg: dict) -> tuple[Path, dict]:
    """Train as configured; returns the run folder and the last validation results."""
    from torch.utils.tensorboard import SummaryWriter

    tcfg = cfg["train"]
    stages = plan_stages(cfg)  # config problems surface before any data is read
    seed_everything(cfg["seed"])
    device = select_device(cfg["device"])
    train_ds = get_dataset(cfg, train=True)
    class_names = train_ds.info.class_names
    val_loader, evaluator = validation_loader(cfg, class_names, device)
    model = build_model(cfg["model"], class_names).to(device)

    run = new_run_dir(cfg["output_dir"], cfg["name"])
    cfg = {**cfg, "data": {**cfg["data"], "classes": list(class_names)}}  # pin the label order
    save_config(cfg, run / "config.yaml")
    log.info("run folder: %s (device %s)", run, device)

    loader = build_loader(train_ds, tcfg["batch_size"], True, cfg["data"]["num_workers"],
                          device.type == "cuda", seed=cfg["seed"])
    writer = SummaryWriter(str(run))
    results_log = ResultsLog(run / "results.csv")
    total_epochs = sum(st["epochs"] for st in stages)
    best, results, step, epoch = -1.0, {}, 0, 0
    try:
        for si, st in enumerate(stages):
            if len(stages) > 1:
                _enter_stage(model, cfg, st, si, len(stages), epoch, device)
            optimizer = build_optimizer(model, tcfg, st["lr"], st["backbone_lr_mult"])
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lr_lambda(tcfg, len(loader), st["epochs"], st["warmup_iters"], epoch))
            for _ in range(st["epochs"]):
                t0 = time.perf_counter()
                stats = train_one_epoch(model, optimizer, scheduler, loader, device, epoch, total_epochs,
                                        writer, step)
                step += stats.pop("iters")
                epoch += 1
                row = {"epoch": epoch, "stage": si + 1, "lr": optimizer.param_groups[0]["lr"],
                       **{k: round(v, 5) for k, v in stats.items()}}
                if epoch % tcfg["eval_every"] == 0 or epoch == total_epochs:
                    results = evaluate(model, val_loader, evaluator, device)
                    row.update({k: round(results["coco"][k], 5) for k in ("AP", "AP50", "AP75")})
                    row["voc_mAP"] = round(results["voc_mAP"], 5)
                    for k in ("AP", "AP50", "AP75"):
                        writer.add_scalar(f"val/{k}", results["coco"][k], epoch)
                    writer.add_scalar("val/voc_mAP", results["voc_mAP"], epoch)
                row["epoch_s"] = round(time.perf_counter() - t0, 1)
                results_log.append(row)
                state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                             scheduler=scheduler.state_dict(), epoch=epoch, stage=si, config=cfg,
                             freeze={"freeze_at": st["freeze_at"], "mode": st["mode"]},
                             class_names=list(class_names), metrics=dict(row))
                save_checkpoint(run / "weights" / "last.pt", **state)
                if "AP" in row and row["AP"] > best:
                    best = row["AP"]
                    save_checkpoint(run / "weights" / "best.pt", **state)
                log.info(
                    "epoch %d/%d  loss %.3f  %.1f img/s%s  (%.0fs)", epoch, total_epochs, stats["loss"],
                    stats["images_per_s"],
                    f"  AP {row['AP']:.3f}  AP50 {row['AP50']:.3f}" if "AP" in row else "", row["epoch_s"],
                )
    finally:
        writer.close()
        if (run / "results.csv").is_file():
            plot_results(run / "results.csv", run / "results.png")
    if results:
        log.info("validation of the last epoch (%s):\n%s", run / "weights" / "last.pt", format_results(results))
    log.info("best COCO AP %.3f -> %s", best, run / "weights" / "best.pt")
    return run, results


def _enter_stage(model, cfg: dict, st: dict, si: int, n: int, epoch: int, device) -> None:
    """Re-apply freezing for a stage; a checkpoint saved later rebuilds with this stage's freezing."""
    mcfg = cfg["model"]
    if mcfg["weights"] == "none" and (st["freeze_at"] or st["mode"] != "fine_tune"):
        log.info("stage %d/%d: model.weights=none, nothing to freeze", si + 1, n)
        return
    used = freeze_model(model, st["freeze_at"], mcfg["freeze_bn"], st["mode"])
    model.to(device)  # BatchNorm swapped in by unfreezing starts on the CPU
    trainable, frozen = count_parameters(model)
    log.info("stage %d/%d from epoch %d: %s, freeze_at %d (%s frozen), lr %g, backbone_lr_mult %g: "
             "%.2fM trainable, %.2fM frozen", si + 1, n, epoch + 1, st["mode"], used,
             ", ".join(name for name, _ in model.stages[:used]) or "nothing", st["lr"], st["backbone_lr_mult"],
             trainable / 1e6, frozen / 1e6)
