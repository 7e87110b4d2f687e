"""`train(cfg)`: the run, as a short loop of named steps over a `TrainState`.

    set up (`plan.prepare`: data, model, run folder and the config resolved once, or what
            `resume=` restores)
    for each stage:   enter_stage  (freezing, optimizer, the `Schedule`'s lr and deadline)
        each epoch:   train_epoch -> save last.pt -> validate -> keep_best -> save last.pt / best.pt -> log

The run folder (`runs.Run`) gets `config.yaml` (resolved), `last.pt` (every epoch, every
`train.ckpt_every` iterations, and at Ctrl-C), `best.pt` (best validation COCO AP, EMA
weights when `train.ema`), and what `RunLog` writes: `results.csv`, `results.png`, TensorBoard
event files. Everything the loop needs to continue is in `TrainState`, the `TrainParts` and
the `Schedule`, each with its own state in the checkpoint. Under torchrun (DDP) every rank
trains, only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import replace
from pathlib import Path

import torch

from ..checkpoint import Checkpointer
from ..config import save_config
from ..errors import ConfigError, DetectionError, TrainingInterrupted
from ..evaluation.decide import decide, format_decisions, thresholds_to_store
from ..evaluation.evaluator import format_results
from ..evaluation.loop import evaluate
from ..models.freeze import apply_policy, count_parameters, freeze_policy
from ..utils import distributed as dist
from ..utils.commands import command
from ..utils.precision import amp_warning
from ..utils.rng import rng_state, seed_everything, set_rng_state
from . import plan
from .engine import StepOptions, TrainParts, measure_step_time, train_one_epoch
from .interrupt import StopRequest, interrupted_hint
from .optim import build_optimizer, fit_milestones
from .pseudo import forgetting, forgetting_lines
from .results_log import RunLog
from .resume import finished_message, log_resume, nothing_left, resume_source
from .schedule import Schedule
from .start import Start
from .state import TrainState, keep_best, make_ema
from .time_budget import RunClock

log = logging.getLogger("detection.training")


class Trainer:
    """One training run. `train()` is the whole loop; each step is a method a test can call alone.
    What it holds: the config (the user's until `setup`, then the plan's resolved one, read by
    everything after), the `TrainState`, the `TrainParts`, the `Schedule` (epochs or time: the
    trainer never asks which) and the `StopRequest`; each saves its own state."""

    def __init__(self, cfg: dict, on_validation=None):
        self.rank, self.world, self.device = dist.init(cfg["device"])
        self.on_validation = on_validation  # (epoch, results), on the main rank
        self.ckpt, self.resume_changes, self.run = None, {}, None
        if cfg["resume"]:
            self.ckpt, self.run, cfg, self.resume_changes = resume_source(cfg)
        self.cfg, self.tcfg = cfg, cfg["train"]
        check_sync_bn(self.tcfg["sync_bn"], self.world, self.device)
        seed_everything(cfg["seed"], cfg["deterministic"])
        self.state = TrainState.from_checkpoint(self.ckpt) if self.ckpt else TrainState()
        self.clock = RunClock(self.state.elapsed)  # train.time counts set-up and resumed time
        self.stop_request = StopRequest()
        self.results: dict = {}
        self.stop = False  # early stopping (train.patience)
        self.schedule: Schedule | None = None  # set up with the resolved config (`setup`)
        self.class_names = self.model = self.train_model = self.loader = self.val_loader = self.evaluator = None
        self.parts: TrainParts | None = None
        self.checkpointer = self.log = None
        self.thresholds = self.ckpt.get("thresholds") if self.ckpt else None  # per-class scores, from validation

    def finished_already(self) -> bool:
        """A resumed run that has nothing left to do (it ended as configured, and was not extended)."""
        return self.ckpt is not None and not self.state.validating and nothing_left(
            self.state, self.resume_changes, self.cfg)

    def setup(self) -> None:
        """Data, model, the resolved config (`plan.prepare`); the schedule, config.yaml, the
        checkpointer, the log."""
        prepared = plan.prepare(self.cfg, self.ckpt, self.run, self.device, self.rank, self.world)
        self.cfg, self.tcfg, self.run = prepared.cfg, prepared.cfg["train"], prepared.run
        self.class_names, self.model, self.loader = prepared.class_names, prepared.model, prepared.loader
        self.val_loader, self.evaluator = prepared.val_loader, prepared.evaluator
        self.schedule = Schedule(self.cfg, self.clock, self.ckpt, self.state.stage,
                                 self.loader.batch_sampler.batches_per_epoch(), live=self.world == 1)
        if dist.is_main() and (self.ckpt is None or self.resume_changes):
            save_config(self.cfg, self.run.config)  # a resume's allowed changes go into the run's config too
        self.checkpointer = Checkpointer({"config": self.cfg, "class_names": self.class_names},
                                         enabled=dist.is_main())
        kept_rows = self.state.epoch - self.state.validating  # the epoch whose end a resume redoes: its row too
        self.log = RunLog(self.run, dist.is_main(), kept_rows if self.ckpt else None, self.state.step)
        if self.ckpt is not None and dist.is_main():
            log_resume(self.run, self.state, self.resume_changes)
        say_start(self.run, self.device, self.world, self.tcfg, self.schedule.run_epochs)

    def enter_stage(self, si: int) -> None:
        """Freezing, optimizer, schedule, scaler and EMA of stage `si`; on resume, their saved state."""
        st, tcfg = self.schedule.stages[si], self.tcfg
        resuming = self.ckpt is not None and si == self.ckpt["stage"]
        self.state.enter_stage(si)
        if len(self.schedule.stages) > 1 and not resuming:
            freeze_stage(self.model, self.cfg["model"], self.schedule, si, self.state.epoch, self.device)
        self.train_model = _wrap_ddp(self.model, self.device, tcfg["sync_bn"]) if self.world > 1 else self.model
        self.schedule.enter(si, lambda: measure_step_time(self.model, self.loader, self.device, tcfg["amp"]),
                            len(self.class_names))
        optimizer = build_optimizer(self.model, tcfg, st["lr"], st["backbone_lr_mult"])
        self.parts = TrainParts(
            self.model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.lr_lambda(si)),
            torch.amp.GradScaler("cuda") if tcfg["amp"] == "fp16" else None,
            make_ema(self.model, tcfg["ema_decay"], tcfg["ema_tau"]) if tcfg["ema"] else None)
        if resuming:
            Checkpointer.restore_parts(self.ckpt, self.parts)
            set_rng_state(self.ckpt["rng"])  # last: the set-up above must not move the generators

    def train_epoch(self) -> dict:
        """Train the current epoch (or what is left of it, or until the time is up); returns its
        results.csv row so far. Ctrl-C saves last.pt at the step it stopped after, then raises."""
        state, epoch = self.state, self.state.epoch
        self.loader.batch_sampler.set_epoch(epoch, skip_batches=state.iter_in_epoch)
        epoch_start_step = state.step - state.iter_in_epoch

        def on_step(step, losses, lr):
            state.stepped(step, epoch_start_step)
            self.log.step(step, losses, lr)
            if self.tcfg["ckpt_every"] and step % self.tcfg["ckpt_every"] == 0:
                self.checkpointer.save(self.run.last, self.snapshot())

        self.schedule.epoch_break()
        with self.stop_request.during_steps(), oom_hint(self.tcfg["batch_size"], self.cfg["model"]):
            stats = train_one_epoch(replace(self.parts, model=self.train_model),  # DDP-wrapped for the steps
                                    self.loader, self.device, StepOptions.from_config(self.tcfg),
                                    desc=f"epoch {epoch + 1}/{self.schedule.total_epochs(epoch)}",
                                    start_step=state.step, sums=state.epoch_sums, on_step=on_step,
                                    should_stop=self.should_stop, nonfinite_streak=state.nonfinite_streak,
                                    time_left=lambda: self.schedule.time_left(state.stage))
        if self.stop_request.requested:
            self.save_interrupted()
        state.epoch_done(stats.pop("nonfinite_streak"))  # the streak is the same on every rank
        stats = dist.mean_over_ranks({k: float(v) for k, v in stats.items()}, self.device)
        return {"epoch": epoch + 1, "stage": state.stage + 1, "lr": self.parts.optimizer.param_groups[0]["lr"],
                **{k: round(v, 5) for k, v in stats.items() if k != "iters"}}

    def should_stop(self) -> bool:
        """Asked after every step: the time is up (train.time) or Ctrl-C was pressed. Rank 0 decides
        for all (one broadcast), so every rank stops at the same step with the same lr share."""
        over, interrupted = self.schedule.after_step(self.state.stage, self.stop_request.requested, self.device,
                                                     self.world)
        self.stop_request.follow(interrupted)
        return over or interrupted

    def save_interrupted(self) -> None:
        """Ctrl-C inside an epoch: last.pt at the step reached (exact resume continues from it)."""
        self.checkpointer.save(self.run.last, self.snapshot())
        raise TrainingInterrupted(
            f"interrupted: {self.run.last} holds epoch {self.state.epoch + 1}, iteration {self.state.iter_in_epoch} "
            f"(step {self.state.step}); continue with: {command('train')} resume={self.run.dir}")

    def validate(self, row: dict) -> bool:
        """Score the validation split (EMA weights when kept), add the metrics to `row`; True when best."""
        eval_model = self.parts.ema.module if self.parts.ema is not None else self.model
        with oom_hint(self.tcfg["batch_size"], self.cfg["model"]):
            self.results = evaluate(eval_model, self.val_loader, self.evaluator, self.device, self.tcfg["amp"],
                                    self.cfg["model"]["tile_size"])
        e = self.cfg["eval"]  # the per-class scores to ship (and a temperature), saved with these weights
        self.thresholds = thresholds_to_store(self.results, self.evaluator, e["threshold"], e["calibrate"]) \
            or self.thresholds
        row.update({k: round(self.results["coco"][k], 5) for k in ("AP", "AP50", "AP75")},
                   voc_mAP=round(self.results["voc_mAP"], 5))
        improved, self.stop = keep_best(self.state, row["AP"], self.tcfg["patience"])
        self.log.validation(self.results, self.evaluator, self.state.epoch)
        if self.on_validation is not None and dist.is_main():
            self.on_validation(self.state.epoch, self.results)
        return improved

    def snapshot(self, row: dict | None = None) -> dict:
        self.state.stamp(self.clock())
        return {**self.checkpointer.snapshot(self.parts, self.state, rng_state(), row), **self.schedule.state_dict(),
                "thresholds": self.thresholds}

    def save(self, row: dict, improved: bool) -> None:
        """best.pt (with the EMA weights when kept) when validation improved, then last.pt: in this
        order a kill between the two leaves last.pt from before the validation, which a resume
        runs again and saves best.pt from (the other way round, best.pt was never written)."""
        t0 = self.clock()
        snap = self.snapshot(row)
        if improved:  # inference uses the averaged weights
            ema = {"model": self.parts.ema.module.state_dict()} if self.parts.ema is not None else {}
            self.checkpointer.save(self.run.best, {**snap, **ema})
        self.checkpointer.save(self.run.last, snap)
        self.schedule.save_took(self.clock() - t0)  # a timed run's last step leaves time for it

    def run_epoch(self) -> bool:
        """Train, then end the epoch (`end_epoch`). True: the stage is over."""
        t0 = self.clock()
        row = self.train_epoch()
        stage_over = self.schedule.stage_over(self.state.stage, self.state.epoch, self.device)
        row.update(self.schedule.steps_ended_row(self.clock()))
        due = self.schedule.due_for_validation(self.state.stage, self.state.epoch, stage_over)
        return self.end_epoch(row, stage_over, due, t0)

    def resume_validation(self, si: int) -> bool:
        """A run killed during a validation resumes into it, from the last.pt taken just before:
        it was reported finished with its last epoch never scored (best.pt an epoch behind)."""
        log.info("resume: the validation after epoch %d did not finish; it runs first", self.state.epoch)
        stage_over = self.schedule.stage_over(si, self.state.epoch, self.device)
        return self.end_epoch(dict(self.ckpt.get("metrics") or {}), stage_over, True, self.clock())

    def end_epoch(self, row: dict, stage_over: bool, validate: bool, t0: float) -> bool:
        """Save (a failing validation never loses the epoch; the save is marked `validating`, so a
        kill during it resumes into it); validate when due; log; save. The results.csv row goes
        before the last save: killed between the two, the resume redoes the epoch's end and
        rewrites the row (the other way round the row was lost). True: the stage is over."""
        improved = False
        if validate:
            self.state.validation_started()
            self.checkpointer.save(self.run.last, self.snapshot(row))
            v0 = self.clock()
            improved = self.validate(row)
            row["val_s"] = round(self.clock() - v0, 1)  # apart from the training time
            self.state.validation_done(finished=self.stop or self.schedule.run_over(self.state.stage, stage_over))
        row["epoch_s"] = round(self.clock() - t0, 1)
        row.update(self.schedule.progress_row(self.state.stage, self.state.step, self.clock()))
        self.log.epoch(row, self.schedule.total_epochs(self.state.epoch), self.world)
        self.save(row, improved)
        if self.stop:
            log.info("early stopping: no better AP in %d validations (train.patience)", self.tcfg["patience"])
        return stage_over

    def train(self) -> tuple[Path, dict]:
        if self.finished_already():
            log.info(finished_message(self.run, self.state, self.tcfg))
            return self.run.dir, {}
        self.clock.restart(self.state.elapsed)  # train.time counts set-up and resumed time
        try:
            with self.stop_request.installed():
                self.setup()
                for si in range(self.state.stage, len(self.schedule.stages)):
                    self.enter_stage(si)
                    stage_over = (self.resume_validation(si) if self.state.validating else
                                  self.schedule.stage_over(si, self.state.epoch, self.device))
                    self.schedule.check_started(si, stage_over, self.state.step)
                    while not stage_over and not self.stop:
                        stage_over = self.run_epoch()
                        self.schedule.replan(si, self.state.epoch, self.state.step)
                    if self.stop:
                        break
        except KeyboardInterrupt:  # outside the steps (set-up, validation) or a second Ctrl-C
            raise TrainingInterrupted(interrupted_hint(self.run)) from None
        finally:
            if self.log is not None:
                self.log.close()
        if dist.is_main():
            report(self.run, self.results, self.evaluator, self.cfg["eval"], self.state.best)
        return self.run.dir, self.results


def say_start(run, device, world: int, tcfg: dict, run_epochs: int) -> None:
    """Where the run writes, on what, and the warnings its precision and milestones deserve."""
    if not dist.is_main():
        return
    log.info("run folder: %s (device %s%s)", run.dir, device, f", {world} processes" if world > 1 else "")
    if warning := amp_warning(device, tcfg["amp"]):
        log.warning(warning)
    if note := fit_milestones(tcfg["milestones"], run_epochs)[1]:
        log.warning(note)


def report(run, results: dict, evaluator, ecfg: dict, best: float) -> None:
    """After a run that ended (not one stopped by an error): the last validation with its
    intervals, error breakdown and thresholds, and where best.pt is."""
    if results:
        decide(results, evaluator, ecfg["threshold"], ecfg["bootstrap"], calibrate=ecfg["calibrate"])
        log.info("validation of the last epoch (%s):\n%s\n%s", run.last, format_results(results),
                 format_decisions(results))
    if run.best.is_file():
        log.info("best COCO AP %.3f -> %s", best, run.best)


def report_forgetting(init: str, run, device) -> None:
    """model.keep_old_classes: the old classes' AP before and after, on the old model's own
    validation split, said and written to `<run>/forgetting.json` (the new classes' AP is the
    run's own validation, above)."""
    f = forgetting(Start.read(init), run.best, device)
    for line in forgetting_lines(f):
        log.info(line)
    (run.dir / "forgetting.json").write_text(json.dumps(f, indent=1))


def train(cfg: dict, on_validation=None) -> tuple[Path, dict]:
    """Train as configured; returns the run folder and the last validation results.
    `on_validation(epoch, results)` is called after each validation (tools/tune.py reports to
    its study there, and stops a trial by raising)."""
    trainer = Trainer(cfg, on_validation)
    run_dir, results = trainer.train()
    if results and dist.is_main() and cfg["model"]["keep_old_classes"] and trainer.run.best.is_file():
        report_forgetting(cfg["model"]["init"], trainer.run, trainer.device)
    return run_dir, results


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


def freeze_stage(model, mcfg: dict, schedule: Schedule, si: int, epoch: int, device) -> None:
    """Staged fine-tuning: stage `si`'s freezing, said with what it leaves trainable."""
    st = schedule.stages[si]
    policy = apply_policy(model, freeze_policy(mcfg, st["freeze_at"], st["mode"]))
    model.to(device)  # BatchNorm swapped in by unfreezing starts on the CPU
    trainable, frozen = count_parameters(model)
    if dist.is_main():
        log.info("stage %d/%d from epoch %d: %s, freeze_at %d (%s frozen), lr %g, backbone_lr_mult %g: "
                 "%.2fM trainable, %.2fM frozen", si + 1, len(schedule.stages), epoch + 1, st["mode"],
                 policy["freeze_at"], ", ".join(model.facts.frozen_stage_names()) or "nothing", st["lr"],
                 st["backbone_lr_mult"], trainable / 1e6, frozen / 1e6)


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
