"""`train(cfg)`: the run, as a short loop of named steps over a `TrainState`.

    set up (data, model, run folder, or what `resume=` restores)
    for each stage:   enter_stage  (freezing, optimizer, schedule)
        each epoch:   train_epoch -> save last.pt -> validate -> keep_best -> save last.pt / best.pt -> log

The run folder `<output_dir>/<name>/` gets `config.yaml` (resolved), `weights/last.pt`
(every epoch, and every `train.ckpt_every` iterations), `weights/best.pt` (best
validation COCO AP, EMA weights when `train.ema`), `results.csv`, `results.png` and
TensorBoard event files. Everything the loop needs to continue is in `TrainState` and the
`TrainParts`, and the `Checkpointer` saves and restores exactly that. Under torchrun
(DDP) every rank trains, only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import distributed as dist
from .checkpoint import Checkpointer, load_checkpoint, new_run_dir, restore_model
from .config import load_config, save_config
from .data.dataset import DetectionDataset, build_loader, dataset_from, get_dataset, read_split
from .data.splits import record_names, write_split
from .engine import StepOptions, TrainParts, evaluate, measure_step_time, train_one_epoch
from .errors import CheckpointError, ConfigError, DetectionError
from .evaluation.evaluator import build_validation, format_results
from .models.builders import build_model
from .models.freeze import apply_policy, count_parameters, freeze_policy
from .optim import build_optimizer, lr_lambda, plan_iterations, plan_stages
from .precision import amp_warning, choose_amp
from .results_log import ResultsLog, plot_results
from .rng import rng_state, seed_everything, set_rng_state

log = logging.getLogger("detection.train")


@dataclass
class TrainState:
    """Where the loop is; all of it goes into every checkpoint."""

    epoch: int = 0  # epochs finished
    iter_in_epoch: int = 0  # iterations done of the epoch in progress
    step: int = 0  # iterations done in the run
    stage: int = 0
    best: float = -1.0  # best validation COCO AP so far
    bad_evals: int = 0  # validations in a row without a better AP
    epoch_sums: dict = field(default_factory=dict)  # running loss sums of the epoch in progress
    plan: list = field(default_factory=list)  # train.time: iterations planned for each stage entered so far
    deadline: list = field(default_factory=list)  # train.time: run seconds by which each planned stage ends
    elapsed: float = 0.0  # seconds of the run so far (train.time counts them across a resume)

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> TrainState:
        return cls(**{k: ckpt[k] for k in cls.__dataclass_fields__ if k in ckpt})


def keep_best(state: TrainState, ap: float, patience: int) -> tuple[bool, bool]:
    """(improved, stop): record a validation AP; stop after `patience` without a better one."""
    improved = ap > state.best
    state.bad_evals = 0 if improved else state.bad_evals + 1
    if improved:
        state.best = ap
    return improved, bool(patience) and state.bad_evals >= patience


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


def resume_source(cfg: dict) -> tuple[dict, Path, dict]:
    """(checkpoint, run folder, its config) for `resume=`; the checkpoint's config wins."""
    p = Path(cfg["resume"])
    ckpt_path = p / "weights" / "last.pt" if p.is_dir() else p
    ckpt = load_checkpoint(ckpt_path)
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise CheckpointError(f"{ckpt_path} holds weights only (a best.pt or an old checkpoint): resume needs a "
                              "last.pt")
    run_cfg = load_config(base=ckpt["config"], overrides={"resume": str(cfg["resume"]),
                                                          "device": cfg["device"],
                                                          "data": {"num_workers": cfg["data"]["num_workers"]}})
    return ckpt, ckpt_path.parent.parent, run_cfg


class Trainer:
    """One training run. `train()` is the whole loop; each step is a method a test can call alone."""

    def __init__(self, cfg: dict):
        self.rank, self.world, self.device = dist.init(cfg["device"])
        self.ckpt = None
        if cfg["resume"]:
            self.ckpt, self.run, cfg = resume_source(cfg)
        self.cfg, self.tcfg = cfg, cfg["train"]
        self.stages = plan_stages(cfg)
        check_sync_bn(self.tcfg["sync_bn"], self.world, self.device)
        seed_everything(cfg["seed"], cfg["deterministic"])
        self.state = TrainState.from_checkpoint(self.ckpt) if self.ckpt else TrainState()
        self.results: dict = {}
        self.stop = False
        self.parts: TrainParts | None = None
        self.clock_start = time.perf_counter() - self.state.elapsed

    # --- set-up ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Data, model and run folder (new, or the resumed one), loaders, writers."""
        cfg, tcfg = self.cfg, self.tcfg
        cfg, train_ds = self._train_data(cfg)
        self.cfg = cfg
        self.class_names = list(train_ds.info.class_names)
        if cfg["model"]["anchors"] == "auto" and not cfg["model"]["anchor_sizes"]:
            from .models.anchors import fitted_config

            self.cfg = cfg = fitted_config(cfg, train_ds.records)  # pinned in config.yaml below
            log.info("model.anchors=auto: sizes %s, aspect ratios %s (from %d training boxes)",
                     cfg["model"]["anchor_sizes"], cfg["model"]["aspect_ratios"],
                     sum(len(r.boxes) for r in train_ds.records))
        self.val_loader, self.evaluator = build_validation(cfg, self.class_names, self.device, self.rank, self.world)
        self.model = build_model(cfg["model"], self.class_names, load_pretrained=self.ckpt is None,
                                 verbose=dist.is_main())
        if self.ckpt is not None:
            restore_model(self.model, self.ckpt, self.run / "weights" / "last.pt")
            log.info("resuming %s at epoch %d, iteration %d of it (step %d)", self.run, self.state.epoch + 1,
                     self.state.iter_in_epoch, self.state.step)
        else:
            self.run = Path(dist.broadcast_object(str(new_run_dir(cfg["output_dir"], cfg["name"]))
                                                  if dist.is_main() else None))
            self.cfg = cfg = {**cfg, "data": {**cfg["data"], "classes": self.class_names,  # pin the label order
                                              "split_file": self._pin_split(train_ds)}}
        self.model.to(self.device)
        if tcfg["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        self.loader = build_loader(train_ds, tcfg["batch_size"], True, cfg["data"]["num_workers"],
                                   self.device.type == "cuda", seed=cfg["seed"], rank=self.rank, world_size=self.world)
        if self.ckpt is None:
            self.cfg = cfg = self._resolve_amp(cfg)
            self.tcfg = tcfg = cfg["train"]
            if dist.is_main():
                save_config(cfg, self.run / "config.yaml")
        self.checkpointer = Checkpointer(self.run, {"config": cfg, "class_names": self.class_names},
                                         enabled=dist.is_main())
        self.writer = self.results_log = None
        if dist.is_main():  # the only rank that writes (on resume ResultsLog rewrites results.csv)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run), purge_step=self.state.step + 1 if self.ckpt else None)
            self.results_log = ResultsLog(self.run / "results.csv",
                                          keep_until_epoch=self.state.epoch if self.ckpt else None)
            log.info("run folder: %s (device %s%s)", self.run, self.device,
                     f", {self.world} processes" if self.world > 1 else "")
            if warning := amp_warning(self.device, tcfg["amp"]):
                log.warning(warning)

    def _train_data(self, cfg: dict) -> tuple[dict, DetectionDataset]:
        """(config, training dataset). model.auto_size picks the input size from the training boxes
        before the dataset resizes to it, and is pinned in config.yaml as that size with auto_size
        off, so a resume or an evaluation keeps it."""
        if not (cfg["model"]["auto_size"] and self.ckpt is None):
            return cfg, get_dataset(cfg, train=True)
        from .models.anchors import sized_config

        records, info = read_split(cfg["data"], cfg["data"]["train_split"], True, None, cfg["seed"])
        cfg, why = sized_config(cfg, records)
        if dist.is_main():
            log.info(why)
        cfg = {**cfg, "model": {**cfg["model"], "auto_size": False}}
        return cfg, dataset_from(cfg, records, info, train=True)

    def _resolve_amp(self, cfg: dict) -> dict:
        """train.amp=auto becomes the precision this device trains fastest in, pinned in config.yaml."""
        if cfg["train"]["amp"] != "auto":
            return cfg
        amp, why = choose_amp(self.device, lambda a: measure_step_time(self.model, self.loader, self.device, a,
                                                                       steps=5, warmup=2))
        amp = dist.broadcast_object(amp)
        if dist.is_main():
            log.info("train.amp=auto: %s (%s)", {"none": "fp32"}.get(amp, amp), why)
        return {**cfg, "train": {**cfg["train"], "amp": amp}}

    def _pin_split(self, train_ds) -> str:
        """A split made by hash is written to `<run>/split.json`; the saved config points at it."""
        d = self.cfg["data"]
        if d["split_file"] or d["val_fraction"] <= 0:
            return d["split_file"]
        path = self.run / "split.json"
        if dist.is_main():
            val = self.val_loader.dataset
            write_split(path, record_names(train_ds.records, train_ds.info), record_names(val.records, val.info),
                        f"val_fraction={d['val_fraction']} of {d['train_split']} by file name hash, "
                        f"fraction={d['fraction']} seed={self.cfg['seed']}")
        return str(path.resolve())

    @property
    def ipe(self) -> int:
        """Training iterations an epoch."""
        return self.loader.batch_sampler.batches_per_epoch()

    def stage_epochs(self, si: int) -> int:
        """Epochs of stage `si`: configured, or (train.time) those its planned iterations touch;
        a stage not planned yet counts its configured epochs until it is."""
        if si < len(self.state.plan):
            return math.ceil(self.state.plan[si] / self.ipe)
        return self.stages[si]["epochs"]

    def stage_end(self, si: int) -> int:
        """The run epoch at which stage `si` ends."""
        return sum(self.stage_epochs(j) for j in range(si + 1))

    def stage_start(self, si: int) -> int:
        """The run epoch at which stage `si` starts."""
        return self.stage_end(si - 1) if si else 0

    @property
    def total_epochs(self) -> int:
        return self.stage_end(len(self.stages) - 1)

    def enter_stage(self, si: int) -> None:
        """Freezing, optimizer, schedule, scaler and EMA of stage `si`; on resume, their saved state."""
        st, tcfg = self.stages[si], self.tcfg
        resuming = self.ckpt is not None and si == self.ckpt["stage"]
        self.state.stage = si
        if len(self.stages) > 1 and not resuming:
            self._apply_stage_freezing(si)
        self.train_model = _wrap_ddp(self.model, self.device, tcfg["sync_bn"]) if self.world > 1 else self.model
        if self.timed and si >= len(self.state.plan):
            self.plan_stage(si)
        self.pace_start = None  # (clock, step) at the end of the stage's first epoch: see replan_stage
        optimizer = build_optimizer(self.model, tcfg, st["lr"], st["backbone_lr_mult"])
        self.parts = TrainParts(
            self.model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, self._stage_lr(si)),
            torch.amp.GradScaler("cuda") if tcfg["amp"] == "fp16" else None,
            make_ema(self.model, tcfg["ema_decay"], tcfg["ema_tau"]) if tcfg["ema"] else None)
        if resuming:
            Checkpointer.restore_parts(self.ckpt, self.parts)
            set_rng_state(self.ckpt["rng"])  # last: the set-up above must not move the generators

    def _stage_lr(self, si: int, plan: int | None = None):
        """The lr multiplier of stage `si` at each of its iterations: over its epochs, or under
        train.time over `plan` iterations (default: the stage's plan)."""
        st = self.stages[si]
        if self.timed and plan is None:
            plan = self.state.plan[si]
        return lr_lambda(self.tcfg, self.ipe, st["epochs"], st["warmup_iters"], self.stage_start(si),
                         sum(x["epochs"] for x in self.stages), plan)

    @property
    def timed(self) -> bool:
        return self.tcfg["time"] > 0

    def plan_stage(self, si: int) -> None:
        """train.time: measure this stage's seconds per iteration (its own freezing) and fix how many
        iterations fit its share of what is left of the budget; the schedule is laid over them."""
        ipe = self.ipe
        spi = dist.broadcast_object(measure_step_time(self.model, self.loader, self.device, self.tcfg["amp"]))
        shares = [st["epochs"] for st in self.stages]
        budget = self.tcfg["time"] * 60
        elapsed = time.perf_counter() - self.clock_start
        iters = dist.broadcast_object(plan_iterations(budget, elapsed, shares, si, spi))
        self.state.plan.append(iters)
        self.state.deadline.append(elapsed + max(0.0, budget - elapsed) * shares[si] / sum(shares[si:]))
        if dist.is_main():
            log.info("train.time=%g min: stage %d/%d gets %d iterations (%.1f epochs of %d) at %.2f s each, "
                     "measured; %.0fs of the budget used so far; validation runs after the last (outside it)",
                     self.tcfg["time"], si + 1, len(self.stages), iters, iters / ipe, ipe, spi, elapsed)

    def replan_stage(self, si: int, max_raise: float = 1.1) -> None:
        """train.time: at each epoch end, fit the stage's plan to the pace it keeps (epoch ends,
        checkpoints and the loader included, which the short measurement misses) and lay the
        schedule over the new length, unless that would raise the lr again after a decay (a
        longer plan moving a passed milestone ahead). The pace is timed from the end of the
        stage's first epoch, which carries the one-time costs (workers starting, first allocations)."""
        st = self.state
        if si >= len(st.deadline) or st.epoch >= self.stage_end(si):
            return
        now = time.perf_counter()
        if self.pace_start is None:
            self.pace_start = (now, st.step)
            return
        pace = (now - self.pace_start[0]) / max(1, st.step - self.pace_start[1])
        stage_done = (st.epoch - self.stage_start(si)) * self.ipe
        plan = dist.broadcast_object(stage_done + plan_iterations(st.deadline[si], now - self.clock_start, [1], 0,
                                                                  pace))
        before, scheduler = st.plan[si], self.parts.scheduler
        new_lr, it = self._stage_lr(si, plan), scheduler.last_epoch
        if plan == before or new_lr(it) > max_raise * scheduler.lr_lambdas[0](it):
            return
        st.plan[si] = plan
        scheduler.lr_lambdas = [new_lr] * len(scheduler.lr_lambdas)  # the next step follows the new length
        if dist.is_main() and abs(plan - before) > 0.02 * before:
            log.info("train.time: stage %d/%d keeps %.2f s an iteration with its epoch ends: its plan goes from %d "
                     "to %d iterations (%.1f epochs)", si + 1, len(self.stages), pace, before, plan, plan / self.ipe)

    def epoch_limit(self) -> int | None:
        """Batches of the current epoch under a time plan (the stage's last epoch is partial)."""
        if not self.timed:
            return None
        si = self.state.stage
        left = self.state.plan[si] - (self.state.epoch - self.stage_start(si)) * self.ipe
        return left if left < self.ipe else None

    def _apply_stage_freezing(self, si: int) -> None:
        st = self.stages[si]
        policy = apply_policy(self.model, freeze_policy(self.cfg["model"], st["freeze_at"], st["mode"]))
        self.model.to(self.device)  # BatchNorm swapped in by unfreezing starts on the CPU
        trainable, frozen = count_parameters(self.model)
        if dist.is_main():
            log.info("stage %d/%d from epoch %d: %s, freeze_at %d (%s frozen), lr %g, backbone_lr_mult %g: "
                     "%.2fM trainable, %.2fM frozen", si + 1, len(self.stages), self.state.epoch + 1, st["mode"],
                     policy["freeze_at"],
                     ", ".join(name for name, _ in self.model.stages[:policy["freeze_at"]]) or "nothing",
                     st["lr"], st["backbone_lr_mult"], trainable / 1e6, frozen / 1e6)

    # --- one epoch ------------------------------------------------------------------------------

    def train_epoch(self) -> dict:
        """Train the current epoch (or what is left of it); returns its results.csv row so far."""
        state, epoch = self.state, self.state.epoch
        self.loader.batch_sampler.set_epoch(epoch, skip_batches=state.iter_in_epoch, limit=self.epoch_limit())
        epoch_start_step = state.step - state.iter_in_epoch

        def on_step(step, losses, lr):
            state.step, state.iter_in_epoch = step, step - epoch_start_step
            if self.writer is not None:
                self.writer.add_scalar("train/lr", lr, step)
                for k, v in losses.items():
                    self.writer.add_scalar(f"train/{k}", v, step)
            if self.tcfg["ckpt_every"] and step % self.tcfg["ckpt_every"] == 0:
                self.checkpointer.save("last.pt", self.snapshot())

        with oom_hint(self.tcfg["batch_size"], self.cfg["model"]):
            stats = train_one_epoch(replace(self.parts, model=self.train_model),  # DDP-wrapped for the steps
                                    self.loader, self.device, StepOptions.from_config(self.tcfg),
                                    desc=f"epoch {epoch + 1}/{self.total_epochs}", start_step=state.step,
                                    sums=state.epoch_sums, on_step=on_step)
        stats = dist.mean_over_ranks({k: float(v) for k, v in stats.items()}, self.device)
        state.epoch, state.iter_in_epoch, state.epoch_sums = epoch + 1, 0, {}
        return {"epoch": epoch + 1, "stage": state.stage + 1, "lr": self.parts.optimizer.param_groups[0]["lr"],
                **{k: round(v, 5) for k, v in stats.items() if k != "iters"}}

    def due_for_validation(self) -> bool:
        """Every eval_every epochs and after the last; under train.time after the last only (the
        budget is for training, and one validation follows it)."""
        last = self.state.stage == len(self.stages) - 1 and self.state.epoch == self.total_epochs
        return last or (not self.timed and self.state.epoch % self.tcfg["eval_every"] == 0)

    def validate(self, row: dict) -> bool:
        """Score the validation split (EMA weights when kept), add the metrics to `row`; True when best."""
        eval_model = self.parts.ema.module if self.parts.ema is not None else self.model
        with oom_hint(self.tcfg["batch_size"], self.cfg["model"]):
            self.results = evaluate(eval_model, self.val_loader, self.evaluator, self.device, self.tcfg["amp"])
        row.update({k: round(self.results["coco"][k], 5) for k in ("AP", "AP50", "AP75")})
        row["voc_mAP"] = round(self.results["voc_mAP"], 5)
        improved, self.stop = keep_best(self.state, row["AP"], self.tcfg["patience"])
        if self.writer is not None:
            for k in ("AP", "AP50", "AP75"):
                self.writer.add_scalar(f"val/{k}", self.results["coco"][k], self.state.epoch)
            self.writer.add_scalar("val/voc_mAP", self.results["voc_mAP"], self.state.epoch)
            log_val_images(self.writer, self.evaluator, self.state.epoch)
        return improved

    def snapshot(self, row: dict | None = None) -> dict:
        self.state.elapsed = time.perf_counter() - self.clock_start
        return self.checkpointer.snapshot(self.parts, self.state, rng_state(), row)

    def save(self, row: dict, improved: bool) -> None:
        """last.pt always; best.pt (with the EMA weights when kept) when validation improved."""
        snap = self.snapshot(row)
        self.checkpointer.save("last.pt", snap)
        if improved:
            if self.parts.ema is not None:
                snap["model"] = self.parts.ema.module.state_dict()  # inference uses the averaged weights
            self.checkpointer.save("best.pt", snap)

    def log_epoch(self, row: dict, t0: float) -> None:
        """results.csv and the one-line epoch summary; `t0` is when the epoch started."""
        row["epoch_s"] = round(time.perf_counter() - t0, 1)
        if self.timed:  # the plan and where the run is in it
            row.update(plan_iters=self.state.plan[self.state.stage], step=self.state.step,
                       elapsed_s=round(time.perf_counter() - self.clock_start, 1))
        if not dist.is_main():
            return
        self.results_log.append(row)
        log.info("epoch %d/%d  loss %.3f  %.1f img/s%s%s  (%.0fs)", row["epoch"], self.total_epochs,
                 row.get("loss", float("nan")), row["images_per_s"] * self.world,
                 f"  AP {row['AP']:.3f}  AP50 {row['AP50']:.3f}" if "AP" in row else "",
                 f"  ({int(row['skipped_nonfinite'])} non-finite steps skipped)"
                 if row.get("skipped_nonfinite") else "", row["epoch_s"])

    def run_epoch(self) -> None:
        """Train; save the epoch before validating (a failing validation never loses it); validate; save."""
        t0 = time.perf_counter()
        row = self.train_epoch()
        improved = False
        if self.due_for_validation():
            self.checkpointer.save("last.pt", self.snapshot(row))
            v0 = time.perf_counter()
            improved = self.validate(row)
            row["val_s"] = round(time.perf_counter() - v0, 1)  # apart from the training time
        self.save(row, improved)
        self.log_epoch(row, t0)
        if self.stop:
            log.info("early stopping: no better AP in %d validations (train.patience)", self.tcfg["patience"])

    # --- the loop -------------------------------------------------------------------------------

    def train(self) -> tuple[Path, dict]:
        self.clock_start = time.perf_counter() - self.state.elapsed  # train.time counts set-up and resumed time
        self.setup()
        try:
            for si in range(self.state.stage, len(self.stages)):
                self.enter_stage(si)
                while self.state.epoch < self.stage_end(si) and not self.stop:
                    self.run_epoch()
                    if self.timed:
                        self.replan_stage(si)
                if self.stop:
                    break
        finally:
            self.after_train()
        return self.run, self.results

    def after_train(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if not dist.is_main():
            return
        if (self.run / "results.csv").is_file():
            plot_results(self.run / "results.csv", self.run / "results.png")
        if self.results:
            log.info("validation of the last epoch (%s):\n%s", self.run / "weights" / "last.pt",
                     format_results(self.results))
        if (self.run / "weights" / "best.pt").is_file():
            log.info("best COCO AP %.3f -> %s", self.state.best, self.run / "weights" / "best.pt")


def train(cfg: dict) -> tuple[Path, dict]:
    """Train as configured; returns the run folder and the last validation results."""
    return Trainer(cfg).train()


class TrainingOOMError(DetectionError, RuntimeError):
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
    from .detections import to_detections
    from .visualize import draw_detections

    for idx in sorted(evaluator.predictions)[:count]:
        dets = to_detections(*evaluator.predictions[idx], evaluator.info.class_names, score)
        try:
            img = draw_detections(read_image(evaluator.records[idx].path), dets)
        except OSError:
            continue
        writer.add_image(f"val/image{idx}", img, step, dataformats="HWC")


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
