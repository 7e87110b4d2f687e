"""`train(cfg)`: data, model, optimizer, the epoch loop and everything it writes.

The run folder `<output_dir>/<name>/` gets `config.yaml` (resolved), `weights/last.pt`
(every epoch, and every `train.ckpt_every` iterations), `weights/best.pt` (best
validation COCO AP, EMA weights when `train.ema`), `results.csv`, `results.png` and
TensorBoard event files. `resume=<run folder>` continues from last.pt exactly: model,
optimizer, scheduler, gradient scaler, EMA, epoch and iteration, best metric, RNG states.
Under torchrun (DDP) every rank trains, only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from . import distributed as dist
from .checkpoint import load_checkpoint, new_run_dir, save_checkpoint
from .config import ConfigError, load_config, save_config
from .data.dataset import build_loader, get_dataset
from .engine import amp_warning, lr_lambda, predict_into, train_one_epoch
from .evaluation.evaluator import DetectionEvaluator, format_results
from .models.builders import build_model, effective_freeze
from .models.freeze import count_parameters, freeze_model
from .optim import build_optimizer, plan_stages

log = logging.getLogger("detection.train")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    """Every generator the training loop draws from, as plain values (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, keys.tolist(), pos, has_gauss, cached],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_ema(model: torch.nn.Module, decay: float, tau: float):
    """torch's AveragedModel as an EMA whose decay ramps up: decay * (1 - exp(-updates / tau))."""
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def ema_update(ema_params, params, num_averaged):
        d = decay * (1 - math.exp(-float(num_averaged) / tau))
        floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
        if floats:
            torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1 - d)
        for e, p in zip(ema_params, params):
            if not e.is_floating_point():  # counters such as BatchNorm's num_batches_tracked
                e.copy_(p)

    return AveragedModel(model, multi_avg_fn=ema_update, use_buffers=True)


def validation_loader(cfg: dict, class_names: list[str], device: torch.device, rank: int = 0, world: int = 1):
    val_ds = get_dataset(cfg, train=False, class_names=class_names)
    loader = build_loader(val_ds, cfg["train"]["batch_size"], False, cfg["data"]["num_workers"],
                          device.type == "cuda", rank=rank, world_size=world)
    e = cfg["eval"]
    evaluator = DetectionEvaluator(val_ds.records, val_ds.info, e["voc_metric"], e["iou_thresh"], e["backend"])
    return loader, evaluator


def evaluate_distributed(model, loader, evaluator, device, amp: str) -> dict:
    """Each rank predicts its share; rank 0 scores all of them; every rank gets the result."""
    dist.sync_buffers(model)
    evaluator.reset()
    predict_into(model, loader, evaluator, device, amp)
    shares = dist.gather_objects(evaluator.predictions)
    results = None
    if dist.is_main():
        for share in shares:
            evaluator.predictions.update(share)
        results = evaluator.evaluate()
    return dist.broadcast_object(results)


class ResultsLog:
    """results.csv, one row per epoch; columns fixed by the first row written."""

    def __init__(self, path: Path, keep_until_epoch: int | None = None):
        self.path, self.fields = path, None
        if keep_until_epoch is not None and path.is_file():  # resume: drop rows past the checkpoint
            with open(path) as f:
                rows = list(csv.DictReader(f))
            if rows:
                self.fields = list(rows[0])
                with open(path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(r for r in rows if int(r["epoch"]) <= keep_until_epoch)

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
        ys = [float(r[k]) if r.get(k) not in ("", None) else np.nan for r in rows]
        ax.plot(epochs, ys, marker="o")
        ax.set_title(k)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def resume_source(cfg: dict) -> tuple[dict, Path, dict]:
    """(checkpoint, run folder, its config) for `resume=`; the checkpoint's config wins."""
    p = Path(cfg["resume"])
    ckpt_path = p / "weights" / "last.pt" if p.is_dir() else p
    ckpt = load_checkpoint(ckpt_path)
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise ValueError(f"{ckpt_path} holds weights only (a best.pt or an old checkpoint): resume needs a last.pt")
    run_cfg = load_config(base=ckpt["config"], overrides={"resume": str(cfg["resume"]),
                                                          "device": cfg["device"],
                                                          "data": {"num_workers": cfg["data"]["num_workers"]}})
    return ckpt, ckpt_path.parent.parent, run_cfg


def train(cfg: dict) -> tuple[Path, dict]:
    """Train as configured; returns the run folder and the last validation results."""
    rank, world, device = dist.init(cfg["device"])
    ckpt = None
    if cfg["resume"]:
        ckpt, run, cfg = resume_source(cfg)
    tcfg = cfg["train"]
    stages = plan_stages(cfg)  # config problems surface before any data is read
    if tcfg["ema"] and not 0 < tcfg["ema_decay"] < 1:
        raise ConfigError(f"train.ema_decay must be in (0, 1), got {tcfg['ema_decay']}")
    check_sync_bn(tcfg["sync_bn"], world, device)
    seed_everything(cfg["seed"], cfg["deterministic"])
    train_ds = get_dataset(cfg, train=True)
    class_names = train_ds.info.class_names
    val_loader, evaluator = validation_loader(cfg, class_names, device, rank, world)
    model = build_model(cfg["model"], class_names, load_pretrained=ckpt is None, verbose=dist.is_main())

    # the loop's position; all of it goes into every checkpoint (epoch_sums: the running
    # loss sums of the epoch in progress, so a resumed epoch reports the same means)
    state = {"epoch": 0, "iter_in_epoch": 0, "step": 0, "stage": 0, "best": -1.0, "bad_evals": 0,
             "epoch_sums": {}}
    if ckpt is not None:
        f = ckpt["freeze"]
        model.freeze = {**f, "freeze_at": freeze_model(model, f["freeze_at"], f["freeze_bn"], f["mode"])}
        model.load_state_dict(ckpt["model"])
        state.update({k: ckpt.get(k, v) for k, v in state.items()})
        log.info("resuming %s at epoch %d, iteration %d of it (step %d)", run, state["epoch"] + 1,
                 state["iter_in_epoch"], state["step"])
    else:
        run = Path(dist.broadcast_object(str(new_run_dir(cfg["output_dir"], cfg["name"])) if dist.is_main() else None))
        cfg = {**cfg, "data": {**cfg["data"], "classes": list(class_names)}}  # pin the label order
        if dist.is_main():
            save_config(cfg, run / "config.yaml")
    model.to(device)
    if tcfg["channels_last"]:
        model.to(memory_format=torch.channels_last)
    if dist.is_main():
        log.info("run folder: %s (device %s%s)", run, device, f", {world} processes" if world > 1 else "")
        if warning := amp_warning(device, tcfg["amp"]):
            log.warning(warning)

    loader = build_loader(train_ds, tcfg["batch_size"], True, cfg["data"]["num_workers"], device.type == "cuda",
                          seed=cfg["seed"], rank=rank, world_size=world)
    writer = results_log = None
    if dist.is_main():  # the only rank that writes (on resume ResultsLog rewrites results.csv)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run), purge_step=state["step"] + 1 if ckpt else None)
        results_log = ResultsLog(run / "results.csv", keep_until_epoch=state["epoch"] if ckpt else None)
    total_epochs = sum(st["epochs"] for st in stages)
    stage_starts = np.cumsum([0] + [st["epochs"] for st in stages]).tolist()
    results: dict = {}
    stop = False
    pending_rng = ckpt["rng"] if ckpt is not None else None
    try:
        for si in range(state["stage"], len(stages)):
            st = stages[si]
            resuming_stage = ckpt is not None and si == ckpt["stage"]
            state["stage"] = si
            if len(stages) > 1 and not resuming_stage:
                _enter_stage(model, cfg, st, si, len(stages), state["epoch"], device)
            train_model = _wrap_ddp(model, device, tcfg["sync_bn"]) if world > 1 else model
            optimizer = build_optimizer(model, tcfg, st["lr"], st["backbone_lr_mult"])
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lr_lambda(tcfg, loader.batch_sampler.batches_per_epoch(), st["epochs"],
                                     st["warmup_iters"], stage_starts[si]))
            scaler = torch.amp.GradScaler("cuda") if tcfg["amp"] == "fp16" else None
            ema = make_ema(model, tcfg["ema_decay"], tcfg["ema_tau"]) if tcfg["ema"] else None
            if resuming_stage:
                optimizer.load_state_dict(ckpt["optimizer"])
                scheduler.load_state_dict(ckpt["scheduler"])
                if scaler is not None and ckpt.get("scaler"):
                    scaler.load_state_dict(ckpt["scaler"])
                if ema is not None and ckpt.get("ema"):
                    ema.load_state_dict(ckpt["ema"])
            if pending_rng is not None:  # last: set-up above must not move the generators
                set_rng_state(pending_rng)
                pending_rng = None

            parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "ema": ema}
            fixed = {"config": cfg, "class_names": list(class_names), "freeze": dict(model.freeze)}

            for _ in range(state["epoch"], stage_starts[si + 1]):
                epoch = state["epoch"]
                loader.batch_sampler.set_epoch(epoch, skip_batches=state["iter_in_epoch"])
                epoch_start_step = state["step"] - state["iter_in_epoch"]

                def on_step(step, epoch_start_step=epoch_start_step, parts=parts, fixed=fixed):
                    state["step"], state["iter_in_epoch"] = step, step - epoch_start_step
                    if tcfg["ckpt_every"] and step % tcfg["ckpt_every"] == 0 and dist.is_main():
                        save_checkpoint(run / "weights" / "last.pt", **snapshot(parts, fixed, state))

                t0 = time.perf_counter()
                with oom_hint(tcfg["batch_size"], cfg["model"]):
                    stats = train_one_epoch(train_model, optimizer, scheduler, loader, device, epoch, total_epochs,
                                            amp=tcfg["amp"], scaler=scaler, clip_grad_norm=tcfg["clip_grad_norm"],
                                            ema=ema, max_nonfinite=tcfg["max_nonfinite"], writer=writer,
                                            start_step=state["step"], on_step=on_step, sums=state["epoch_sums"])
                stats = dist.mean_over_ranks({k: float(v) for k, v in stats.items()}, device)
                state.update(epoch=epoch + 1, iter_in_epoch=0, epoch_sums={})
                row = {"epoch": epoch + 1, "stage": si + 1, "lr": optimizer.param_groups[0]["lr"],
                       **{k: round(v, 5) for k, v in stats.items() if k != "iters"}}
                if (epoch + 1) % tcfg["eval_every"] == 0 or epoch + 1 == total_epochs:
                    eval_model = ema.module if ema is not None else model
                    with oom_hint(tcfg["batch_size"], cfg["model"]):
                        results = evaluate_distributed(eval_model, val_loader, evaluator, device, tcfg["amp"])
                    row.update({k: round(results["coco"][k], 5) for k in ("AP", "AP50", "AP75")})
                    row["voc_mAP"] = round(results["voc_mAP"], 5)
                    improved = row["AP"] > state["best"]
                    state["bad_evals"] = 0 if improved else state["bad_evals"] + 1
                    if improved:
                        state["best"] = row["AP"]
                    if writer is not None:
                        for k in ("AP", "AP50", "AP75"):
                            writer.add_scalar(f"val/{k}", results["coco"][k], epoch + 1)
                        writer.add_scalar("val/voc_mAP", results["voc_mAP"], epoch + 1)
                        log_val_images(writer, evaluator, epoch + 1)
                    if tcfg["patience"] and state["bad_evals"] >= tcfg["patience"]:
                        stop = True
                else:
                    improved = False
                row["epoch_s"] = round(time.perf_counter() - t0, 1)
                if dist.is_main():
                    results_log.append(row)
                    save_checkpoint(run / "weights" / "last.pt", **snapshot(parts, fixed, state, row))
                    if improved:
                        best = snapshot(parts, fixed, state, row)
                        if ema is not None:
                            best["model"] = ema.module.state_dict()  # inference uses the averaged weights
                        save_checkpoint(run / "weights" / "best.pt", **best)
                    log.info("epoch %d/%d  loss %.3f  %.1f img/s%s%s  (%.0fs)", epoch + 1, total_epochs,
                             stats.get("loss", float("nan")), stats["images_per_s"] * world,
                             f"  AP {row['AP']:.3f}  AP50 {row['AP50']:.3f}" if "AP" in row else "",
                             f"  ({int(stats['skipped_nonfinite'])} non-finite steps skipped)"
                             if stats.get("skipped_nonfinite") else "", row["epoch_s"])
                if stop:
                    log.info("early stopping: no better AP in %d validations (train.patience)", tcfg["patience"])
                    break
            if stop:
                break
    finally:
        if writer is not None:
            writer.close()
        if dist.is_main() and (run / "results.csv").is_file():
            plot_results(run / "results.csv", run / "results.png")
    if results and dist.is_main():
        log.info("validation of the last epoch (%s):\n%s", run / "weights" / "last.pt", format_results(results))
        log.info("best COCO AP %.3f -> %s", state["best"], run / "weights" / "best.pt")
    return run, results


class TrainingOOMError(RuntimeError):
    pass


@contextlib.contextmanager
def oom_hint(batch_size: int, mcfg: dict):
    """CUDA out of memory becomes one message with the two knobs that fix it."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise TrainingOOMError(
            f"CUDA out of memory with train.batch_size={batch_size} and images of "
            f"model.min_size={mcfg['min_size']} / model.max_size={mcfg['max_size']}: lower train.batch_size "
            "(and train.lr with it, or set train.auto_scale_lr=true), lower the image size, or use "
            "train.amp=bf16/fp16. The last checkpoint is kept."
        ) from None


def log_val_images(writer, evaluator, step: int, count: int = 4, score: float = 0.3) -> None:
    """A few validation images with their predictions drawn, to TensorBoard."""
    from .data.images import read_image
    from .visualize import draw_detections

    names = evaluator.info.class_names
    for idx in sorted(evaluator.predictions)[:count]:
        boxes, scores, labels = evaluator.predictions[idx]
        keep = scores >= score
        dets = [{"box": b.tolist(), "label": int(lab), "class": names[lab - 1], "score": float(s)}
                for b, s, lab in zip(boxes[keep], scores[keep], labels[keep])]
        try:
            img = draw_detections(read_image(evaluator.records[idx].path), dets)
        except OSError:
            continue
        writer.add_image(f"val/image{idx}", img, step, dataformats="HWC")


def snapshot(parts: dict, fixed: dict, state: dict, row: dict | None = None) -> dict:
    """Everything a checkpoint holds: state dicts, loop position, RNG states, plain config values."""
    return dict(
        model=parts["model"].state_dict(), optimizer=parts["optimizer"].state_dict(),
        scheduler=parts["scheduler"].state_dict(),
        scaler=parts["scaler"].state_dict() if parts["scaler"] is not None else None,
        ema=parts["ema"].state_dict() if parts["ema"] is not None else None,
        rng=rng_state(), metrics=dict(row or {}), **fixed, **state,
    )


def check_sync_bn(sync_bn: bool, world: int, device: torch.device) -> None:
    """torch's SyncBatchNorm runs on GPUs only; say so before any data is read."""
    if sync_bn and world > 1 and device.type != "cuda":
        raise ConfigError(f"train.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on GPUs only), and this run "
                          f"is on {device}; set train.sync_bn=false")


def _wrap_ddp(model, device, sync_bn: bool):
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def _enter_stage(model, cfg: dict, st: dict, si: int, n: int, epoch: int, device) -> None:
    """Re-apply freezing for a stage; checkpoints record it so they rebuild the same modules."""
    eff = effective_freeze(cfg["model"], st["freeze_at"], st["mode"])
    used = freeze_model(model, eff["freeze_at"], eff["freeze_bn"], eff["mode"])
    model.freeze = {**eff, "freeze_at": used}
    model.to(device)  # BatchNorm swapped in by unfreezing starts on the CPU
    trainable, frozen = count_parameters(model)
    if dist.is_main():
        log.info("stage %d/%d from epoch %d: %s, freeze_at %d (%s frozen), lr %g, backbone_lr_mult %g: "
                 "%.2fM trainable, %.2fM frozen", si + 1, n, epoch + 1, st["mode"], used,
                 ", ".join(name for name, _ in model.stages[:used]) or "nothing", st["lr"], st["backbone_lr_mult"],
                 trainable / 1e6, frozen / 1e6)
