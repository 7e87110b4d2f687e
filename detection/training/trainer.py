"""`train(cfg)`: the run, as a short loop of named steps over a `TrainState`.

    set up (data, model, run folder, or what `resume=` restores)
    for each stage:   enter_stage  (freezing, optimizer, schedule)
        each epoch:   train_epoch -> save last.pt -> validate -> keep_best -> save last.pt / best.pt -> log

The run folder (`runs.Run`) gets `config.yaml` (resolved), `last.pt` (every epoch, every
`train.ckpt_every` iterations, and at Ctrl-C), `best.pt` (best validation COCO AP, EMA
weights when `train.ema`), `results.csv`, `results.png` and TensorBoard event files.
Everything the loop needs to continue is in `TrainState`, the `TrainParts` and, under
train.time, the `TimeBudget`; the `Checkpointer` saves and restores exactly that. Under
torchrun (DDP) every rank trains, only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import replace
from pathlib import Path

import torch

from .. import distributed as dist
from ..checkpoint import Checkpointer, restore_model
from ..commands import command
from ..config import save_config
from ..data.dataset import build_loader
from ..errors import ConfigError, DetectionError, TrainingInterrupted
from ..evaluation.evaluator import build_validation, format_results
from ..evaluation.loop import evaluate
from ..models.builders import build_model
from ..models.freeze import apply_policy, count_parameters, freeze_policy
from ..precision import amp_warning
from ..rng import rng_state, seed_everything, set_rng_state
from ..runs import Run, new_run_dir
from . import plan, time_budget
from .engine import StepOptions, TrainParts, measure_step_time, train_one_epoch
from .interrupt import on_ctrl_c
from .optim import build_optimizer, fit_milestones, lr_lambda, milestone_shares, plan_stages
from .results_log import ResultsLog, plot_results
from .resume import nothing_left, resume_source
from .state import TrainState, keep_best, make_ema
from .time_budget import budget_for, log_plan, share_lr_lambda, timed_warmup

log = logging.getLogger("detection.training")


class Trainer:
    """One training run. `train()` is the whole loop; each step is a method a test can call alone."""

    def __init__(self, cfg: dict):
        self.rank, self.world, self.device = dist.init(cfg["device"])
        self.ckpt, self.resume_changes = None, {}
        if cfg["resume"]:
            self.ckpt, self.run, cfg, self.resume_changes = resume_source(cfg)
        self.cfg, self.tcfg = cfg, cfg["train"]
        self.stages = plan_stages(cfg)
        check_sync_bn(self.tcfg["sync_bn"], self.world, self.device)
        seed_everything(cfg["seed"], cfg["deterministic"])
        self.state = TrainState.from_checkpoint(self.ckpt) if self.ckpt else TrainState()
        self.budget = budget_for(self.tcfg, self.stages, self.state.elapsed,
                                 self.ckpt.get("time_budget") if self.ckpt else None, self.state.stage)
        if self.budget is not None:
            self.budget.live = self.world == 1  # under DDP every rank follows rank 0's share
        self.results: dict = {}
        self.stop = self.interrupted = self.in_steps = False
        self.parts: TrainParts | None = None
        self.clock_start = time_budget.clock() - self.state.elapsed

    @property
    def timed(self) -> bool:
        return self.tcfg["time"] > 0

    # --- set-up ---------------------------------------------------------------------------------

    def finished_already(self) -> bool:
        """A resumed run that has nothing left to do (it ended as configured, and was not extended)."""
        return self.ckpt is not None and nothing_left(self.state, self.resume_changes, self.timed,
                                                      sum(st["epochs"] for st in self.stages))

    def setup(self) -> None:
        """Data, model and run folder (new, or the resumed one), loaders, writers."""
        tcfg = self.tcfg
        cfg, train_ds = plan.training_data(self.cfg, fresh=self.ckpt is None)  # sizes and anchors pinned
        self.cfg, self.class_names = cfg, list(train_ds.info.class_names)
        self.val_loader, self.evaluator = build_validation(cfg, self.class_names, self.device, self.rank, self.world)
        self.model = build_model(cfg["model"], self.class_names, load_pretrained=self.ckpt is None,
                                 verbose=dist.is_main())
        if self.ckpt is not None:
            restore_model(self.model, self.ckpt, self.run.last)
            self._log_resume()
        else:
            self.run = Run(Path(dist.broadcast_object(str(new_run_dir(cfg["output_dir"], cfg["name"]))
                                                      if dist.is_main() else None)))
            split_file = plan.pin_split(cfg, self.run, train_ds, self.val_loader.dataset)
            self.cfg = cfg = {**cfg, "data": {**cfg["data"], "classes": self.class_names,  # pin the label order
                                              "split_file": split_file}}
        self.model.to(self.device)
        if tcfg["channels_last"]:
            self.model.to(memory_format=torch.channels_last)
        self.loader = build_loader(train_ds, tcfg["batch_size"], True, cfg["data"]["num_workers"],
                                   self.device.type == "cuda", seed=cfg["seed"], rank=self.rank, world_size=self.world)
        if self.ckpt is None:
            self.cfg = cfg = plan.resolve_amp(cfg, self.model, self.loader, self.device)
            self.tcfg = tcfg = cfg["train"]
        if dist.is_main() and (self.ckpt is None or self.resume_changes):
            save_config(cfg, self.run.config)  # a resume's allowed changes go into the run's config too
        self.checkpointer = Checkpointer({"config": cfg, "class_names": self.class_names}, enabled=dist.is_main())
        self.writer = self.results_log = None
        if dist.is_main():  # the only rank that writes (on resume ResultsLog rewrites results.csv)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run.dir), purge_step=self.state.step + 1 if self.ckpt else None)
            self.results_log = ResultsLog(self.run.results_csv,
                                          keep_until_epoch=self.state.epoch if self.ckpt else None)
            log.info("run folder: %s (device %s%s)", self.run.dir, self.device,
                     f", {self.world} processes" if self.world > 1 else "")
            if warning := amp_warning(self.device, tcfg["amp"]):
                log.warning(warning)
            if note := fit_milestones(tcfg["milestones"], sum(st["epochs"] for st in self.stages))[1]:
                log.warning(note)

    def _log_resume(self) -> None:
        st = self.state
        log.info("resuming %s at epoch %d, iteration %d of it (step %d)", self.run.dir, st.epoch + 1,
                 st.iter_in_epoch, st.step)
        for key, (was, now) in self.resume_changes.items():
            log.info("resume: %s %s -> %s", key, was, now)
        if self.resume_changes.keys() & {"train.epochs", "train.time"}:
            st.finished = False
            log.info("resume: the run is extended; its lr schedule is laid over the new length")

    @property
    def ipe(self) -> int:
        """Training iterations an epoch."""
        return self.loader.batch_sampler.batches_per_epoch()

    def stage_epochs(self, si: int) -> int:
        """Epochs of stage `si`: configured, or (train.time) those its estimated iterations touch;
        a stage not planned yet counts its configured epochs until it is."""
        if si < len(self.state.plan):
            return max(1, math.ceil(self.state.plan[si] / self.ipe))
        return self.stages[si]["epochs"]

    def stage_end(self, si: int) -> int:
        """The run epoch at which stage `si` ends (train.time: as estimated)."""
        return sum(self.stage_epochs(j) for j in range(si + 1))

    def stage_start(self, si: int) -> int:
        """The run epoch at which stage `si` starts."""
        return self.stage_end(si - 1) if si else 0

    @property
    def total_epochs(self) -> int:
        return max(self.stage_end(len(self.stages) - 1), self.state.epoch)

    def stage_done(self, si: int) -> bool:
        """Its epochs are done, or (train.time) its time is up."""
        if self.timed:
            return self.budget.over(si)
        return self.state.epoch >= self.stage_end(si)

    def enter_stage(self, si: int) -> None:
        """Freezing, optimizer, schedule, scaler and EMA of stage `si`; on resume, their saved state."""
        st, tcfg = self.stages[si], self.tcfg
        resuming = self.ckpt is not None and si == self.ckpt["stage"]
        self.state.stage = si
        if len(self.stages) > 1 and not resuming:
            self._apply_stage_freezing(si)
        self.train_model = _wrap_ddp(self.model, self.device, tcfg["sync_bn"]) if self.world > 1 else self.model
        if self.timed:
            self.budget.enter(si)
            if si >= len(self.state.plan):
                self.plan_stage(si)
        optimizer = build_optimizer(self.model, tcfg, st["lr"], st["backbone_lr_mult"])
        self.parts = TrainParts(
            self.model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, self._stage_lr(si)),
            torch.amp.GradScaler("cuda") if tcfg["amp"] == "fp16" else None,
            make_ema(self.model, tcfg["ema_decay"], tcfg["ema_tau"]) if tcfg["ema"] else None)
        if resuming:
            Checkpointer.restore_parts(self.ckpt, self.parts)
            set_rng_state(self.ckpt["rng"])  # last: the set-up above must not move the generators

    def _stage_lr(self, si: int):
        """The lr multiplier of stage `si` at each of its iterations: over its epochs, or under
        train.time by the share of the stage's time used (warmup over its first iterations)."""
        st = self.stages[si]
        run_epochs = sum(x["epochs"] for x in self.stages)
        if self.timed:
            return share_lr_lambda(self.tcfg, self.timed_warmup(si), milestone_shares(self.tcfg, run_epochs),
                                   self.budget)
        return lr_lambda(self.tcfg, self.ipe, st["epochs"], st["warmup_iters"], self.stage_start(si), run_epochs)

    def timed_warmup(self, si: int) -> int:
        return timed_warmup(self.tcfg, self.stages[si], self.state.plan[si])

    def plan_stage(self, si: int) -> None:
        """train.time: measure this stage's seconds per iteration (its own freezing) to estimate how
        many iterations its time holds (for the warmup, the log and the too-few warning). The lr and
        the stop follow the clock, so a wrong estimate costs nothing."""
        spi = dist.broadcast_object(measure_step_time(self.model, self.loader, self.device, self.tcfg["amp"]))
        self.state.plan.append(self.budget.estimate(si, spi))
        if dist.is_main():
            log_plan(self.budget, si, len(self.stages), self.state.plan[si], self.ipe, len(self.class_names),
                     self.tcfg, self.timed_warmup(si))

    def replan_stage(self, si: int) -> None:
        """train.time: at each epoch end, refit the stage's estimate to the pace it keeps (the log and
        the epoch count shown)."""
        st = self.state
        done, before = (st.epoch - self.stage_start(si)) * self.ipe, st.plan[si]
        st.plan[si] = dist.broadcast_object(self.budget.refit(si, st.step, done, before))
        if dist.is_main() and abs(st.plan[si] - before) > 0.1 * before:
            log.info("train.time: stage %d/%d: about %d iterations (%.1f epochs) fit its time at the pace it keeps",
                     si + 1, len(self.stages), st.plan[si], st.plan[si] / self.ipe)

    def _apply_stage_freezing(self, si: int) -> None:
        st = self.stages[si]
        policy = apply_policy(self.model, freeze_policy(self.cfg["model"], st["freeze_at"], st["mode"]))
        self.model.to(self.device)  # BatchNorm swapped in by unfreezing starts on the CPU
        trainable, frozen = count_parameters(self.model)
        if dist.is_main():
            log.info("stage %d/%d from epoch %d: %s, freeze_at %d (%s frozen), lr %g, backbone_lr_mult %g: "
                     "%.2fM trainable, %.2fM frozen", si + 1, len(self.stages), self.state.epoch + 1, st["mode"],
                     policy["freeze_at"],
                     ", ".join(self.model.facts.frozen_stage_names()) or "nothing",
                     st["lr"], st["backbone_lr_mult"], trainable / 1e6, frozen / 1e6)

    # --- one epoch ------------------------------------------------------------------------------

    def train_epoch(self) -> dict:
        """Train the current epoch (or what is left of it, or until the time is up); returns its
        results.csv row so far. Ctrl-C saves last.pt at the step it stopped after, then raises."""
        state, epoch = self.state, self.state.epoch
        self.loader.batch_sampler.set_epoch(epoch, skip_batches=state.iter_in_epoch)
        epoch_start_step = state.step - state.iter_in_epoch

        def on_step(step, losses, lr):
            state.step, state.iter_in_epoch = step, step - epoch_start_step
            if self.writer is not None:
                self.writer.add_scalar("train/lr", lr, step)
                for k, v in losses.items():
                    self.writer.add_scalar(f"train/{k}", v, step)
            if self.tcfg["ckpt_every"] and step % self.tcfg["ckpt_every"] == 0:
                self.checkpointer.save(self.run.last, self.snapshot())

        if self.budget is not None:
            self.budget.epoch_break()
        self.in_steps = True
        try:
            with oom_hint(self.tcfg["batch_size"], self.cfg["model"]):
                stats = train_one_epoch(replace(self.parts, model=self.train_model),  # DDP-wrapped for the steps
                                        self.loader, self.device, StepOptions.from_config(self.tcfg),
                                        desc=f"epoch {epoch + 1}/{self.total_epochs}", start_step=state.step,
                                        sums=state.epoch_sums, on_step=on_step, should_stop=self.should_stop)
        finally:
            self.in_steps = False
        if self.interrupted:
            self.save_interrupted()
        stats = dist.mean_over_ranks({k: float(v) for k, v in stats.items()}, self.device)
        state.epoch, state.iter_in_epoch, state.epoch_sums = epoch + 1, 0, {}
        return {"epoch": epoch + 1, "stage": state.stage + 1, "lr": self.parts.optimizer.param_groups[0]["lr"],
                **{k: round(v, 5) for k, v in stats.items() if k != "iters"}}

    def should_stop(self) -> bool:
        """Asked after every step: the time is up (train.time) or Ctrl-C was pressed. Rank 0 decides
        for all (one broadcast), so every rank stops at the same step with the same lr share."""
        share, over = self.budget.after_step(self.state.stage) if self.budget is not None else (0.0, False)
        if self.world > 1:
            share, over, self.interrupted = dist.broadcast_values([share, over, self.interrupted], self.device)
        if self.budget is not None:
            self.budget.share = share
        return bool(over) or bool(self.interrupted)

    def save_interrupted(self) -> None:
        """Ctrl-C inside an epoch: last.pt at the step reached (exact resume continues from it)."""
        self.checkpointer.save(self.run.last, self.snapshot())
        raise TrainingInterrupted(
            f"interrupted: {self.run.last} holds epoch {self.state.epoch + 1}, iteration {self.state.iter_in_epoch} "
            f"(step {self.state.step}); continue with: {command('train')} resume={self.run.dir}")

    def at_the_end(self) -> bool:
        """The last stage is done: this epoch was the run's last."""
        return self.state.stage == len(self.stages) - 1 and self.stage_done(self.state.stage)

    def due_for_validation(self) -> bool:
        """Every eval_every epochs and after the last; under train.time after the last only (the
        budget is for training, and one validation follows it)."""
        return self.at_the_end() or (not self.timed and self.state.epoch % self.tcfg["eval_every"] == 0)

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
        self.state.elapsed = time_budget.clock() - self.clock_start
        snap = self.checkpointer.snapshot(self.parts, self.state, rng_state(), row)
        snap["time_budget"] = self.budget.state_dict() if self.budget is not None else None
        return snap

    def save(self, row: dict, improved: bool) -> None:
        """last.pt always; best.pt (with the EMA weights when kept) when validation improved."""
        t0 = time_budget.clock()
        snap = self.snapshot(row)
        self.checkpointer.save(self.run.last, snap)
        if self.budget is not None:  # the last step leaves time for this save before the deadline
            self.budget.reserve = time_budget.clock() - t0
        if improved:
            if self.parts.ema is not None:
                snap["model"] = self.parts.ema.module.state_dict()  # inference uses the averaged weights
            self.checkpointer.save(self.run.best, snap)

    def log_epoch(self, row: dict, t0: float) -> None:
        """results.csv and the one-line epoch summary; `t0` is when the epoch started."""
        row["epoch_s"] = round(time_budget.clock() - t0, 1)
        if self.timed:  # the estimate and where the run is in its time
            row.update(plan_iters=self.state.plan[self.state.stage], step=self.state.step,
                       elapsed_s=round(time_budget.clock() - self.clock_start, 1))
        if not dist.is_main():
            return
        self.results_log.append(row)
        log.info("epoch %d/%d  mean loss %.3f  %.1f img/s%s%s  (%.0fs)", row["epoch"], self.total_epochs,
                 row.get("loss", float("nan")), row["images_per_s"] * self.world,
                 f"  AP {row['AP']:.3f}  AP50 {row['AP50']:.3f}" if "AP" in row else "",
                 f"  ({int(row['skipped_nonfinite'])} non-finite steps skipped)"
                 if row.get("skipped_nonfinite") else "", row["epoch_s"])

    def run_epoch(self) -> None:
        """Train; save the epoch before validating (a failing validation never loses it); validate; save."""
        t0 = time_budget.clock()
        row = self.train_epoch()
        if self.timed:  # run seconds when the steps ended (elapsed_s adds saving and validating)
            row["train_end_s"] = round(time_budget.clock() - self.clock_start, 1)
        improved = False
        if self.due_for_validation():
            self.checkpointer.save(self.run.last, self.snapshot(row))
            v0 = time_budget.clock()
            improved = self.validate(row)
            row["val_s"] = round(time_budget.clock() - v0, 1)  # apart from the training time
            self.state.finished = self.stop or self.at_the_end()
        self.save(row, improved)
        self.log_epoch(row, t0)
        if self.stop:
            log.info("early stopping: no better AP in %d validations (train.patience)", self.tcfg["patience"])

    # --- the loop -------------------------------------------------------------------------------

    def train(self) -> tuple[Path, dict]:
        if self.finished_already():
            log.info("%s is finished (%s): nothing to do. To train it further: %s resume=%s %s", self.run.dir,
                     f"{self.state.epoch} epochs" if not self.timed else f"train.time={self.tcfg['time']:g}",
                     command("train"), self.run.dir,
                     f"train.time={2 * self.tcfg['time']:g}" if self.timed else f"train.epochs={self.state.epoch + 5}")
            return self.run.dir, {}
        self.clock_start = time_budget.clock() - self.state.elapsed  # train.time counts set-up and resumed time
        try:
            with on_ctrl_c(self):
                self.setup()
                for si in range(self.state.stage, len(self.stages)):
                    self.enter_stage(si)
                    while not self.stage_done(si) and not self.stop:
                        self.run_epoch()
                        if self.timed:
                            self.replan_stage(si)
                    if self.stop:
                        break
        except KeyboardInterrupt:  # outside the steps (set-up, validation) or a second Ctrl-C
            self.interrupted = True
            raise TrainingInterrupted(self.interrupted_hint()) from None
        finally:
            self.after_train()
        return self.run.dir, self.results

    def interrupted_hint(self) -> str:
        run = getattr(self, "run", None)
        if run is None or not run.last.is_file():
            return "interrupted before the first checkpoint: nothing to resume"
        return (f"interrupted: {run.last} holds the last completed save; continue with: {command('train')} "
                f"resume={run.dir}")

    def after_train(self) -> None:
        if getattr(self, "writer", None) is not None:
            self.writer.close()
        if not dist.is_main() or getattr(self, "checkpointer", None) is None:
            return
        if self.run.results_csv.is_file():
            plot_results(self.run.results_csv, self.run.results_png)
        if self.interrupted:
            return
        if self.results:
            log.info("validation of the last epoch (%s):\n%s", self.run.last, format_results(self.results))
        if self.run.best.is_file():
            log.info("best COCO AP %.3f -> %s", self.state.best, self.run.best)


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
    from ..data.images import read_image
    from ..detections import to_detections
    from ..visualize import draw_detections

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
