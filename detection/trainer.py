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
import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import distributed as dist
from . import time_budget
from .checkpoint import Checkpointer, load_checkpoint, restore_model
from .commands import command
from .config import flat_items, load_config, save_config
from .data.dataset import DetectionDataset, build_loader, dataset_from, get_dataset, read_split
from .data.splits import record_names, write_split
from .engine import StepOptions, TrainParts, evaluate, measure_step_time, train_one_epoch
from .errors import CheckpointError, ConfigError, DetectionError, TrainingInterrupted
from .evaluation.evaluator import build_validation, format_results
from .models.builders import build_model
from .models.freeze import apply_policy, count_parameters, freeze_policy
from .optim import build_optimizer, fit_milestones, lr_lambda, milestone_shares, plan_stages, warmup_length
from .precision import amp_warning, choose_amp
from .results_log import ResultsLog, plot_results
from .rng import rng_state, seed_everything, set_rng_state
from .runs import Run, new_run_dir, resume_checkpoint
from .time_budget import TimeBudget, share_lr_lambda, too_few_iterations

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
    plan: list = field(default_factory=list)  # train.time: estimated iterations of each stage entered (for the log)
    elapsed: float = 0.0  # seconds of the run so far (train.time counts them across a resume)
    finished: bool = False  # the run ended as configured (a resume then has nothing to do unless extended)

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


# what `resume=` may change: the run goes on with them; anything else is refused in one line
RESUME_CHANGEABLE = ("train.epochs", "train.time", "device", "data.num_workers", "train.eval_every",
                     "train.patience", "train.ckpt_every")
RESUME_IGNORED = ("resume", "data.split_file", "name", "output_dir")  # where the run is, not how it trains


def resume_source(cfg: dict) -> tuple[dict, Run, dict, dict]:
    """(checkpoint, run, its config with the allowed changes, {key: (was, now)}) for `resume=`."""
    last, run = resume_checkpoint(cfg["resume"])
    ckpt = load_checkpoint(last)
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise CheckpointError(f"{last} holds weights only (a best.pt or an old checkpoint): resume needs a last.pt")
    saved = load_config(base=ckpt["config"])
    was, now = dict(flat_items(saved)), dict(flat_items(cfg))
    changed = {k: (was.get(k), v) for k, v in now.items() if was.get(k) != v and k not in RESUME_IGNORED}
    check_resume_changes(changed, saved, run)
    overrides = {"resume": str(cfg["resume"])}
    for key, (_, value) in changed.items():
        section, _, leaf = key.rpartition(".")
        (overrides.setdefault(section, {}) if section else overrides)[leaf] = value
    return ckpt, run, load_config(base=saved, overrides=overrides), changed


def check_resume_changes(changed: dict, saved: dict, run: Run) -> None:
    """Only what can continue a run may change on resume; the rest is refused, naming the keys."""
    refused = {k: v for k, v in changed.items() if k not in RESUME_CHANGEABLE}
    t, timed = saved["train"], saved["train"]["time"] > 0
    if "train.epochs" in changed and (timed or t["stages"]):
        refused["train.epochs"] = changed["train.epochs"]
    if "train.time" in changed and not timed:
        refused["train.time"] = changed["train.time"]
    if refused:
        listing = ", ".join(f"{k} ({a!r} -> {b!r})" for k, a, b in ((k, *v) for k, v in refused.items()))
        raise ConfigError(
            f"resume={run.dir} continues the run as it was configured, so these cannot change: {listing}. A resume "
            f"may {extend_how(saved)} or change {', '.join(RESUME_CHANGEABLE[2:])}; for other settings start a new "
            f"run: {command('train')} --cfg {run.config} key=value")


def extend_how(cfg: dict) -> str:
    t = cfg["train"]
    if t["time"] > 0:
        return "extend it (train.time=MINUTES, more than it had)"
    if t["stages"]:
        return "not extend it (a staged run: its train.stages fix the epochs)"
    return "extend it (train.epochs=N, more than it had)"


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
        self.budget = self._time_budget()
        self.results: dict = {}
        self.stop = self.interrupted = self.in_steps = False
        self.parts: TrainParts | None = None
        self.clock_start = time_budget.clock() - self.state.elapsed

    def _time_budget(self) -> TimeBudget | None:
        """train.time's deadlines: new, restored, or (a resume given more time) extended."""
        if not self.timed:
            return None
        budget = TimeBudget(self.tcfg["time"], [st["epochs"] for st in self.stages], self.state.elapsed)
        if self.ckpt is not None and self.ckpt.get("time_budget"):
            budget.load_state_dict(self.ckpt["time_budget"])
            if budget.seconds != self.tcfg["time"] * 60:
                budget.extend(self.tcfg["time"], self.state.stage)
        return budget

    @property
    def timed(self) -> bool:
        return self.tcfg["time"] > 0

    # --- set-up ---------------------------------------------------------------------------------

    def finished_already(self) -> bool:
        """A resumed run that has nothing left to do (it ended as configured, and was not extended)."""
        if self.ckpt is None:
            return False
        extended = self.resume_changes.keys() & {"train.time", "train.epochs", "train.patience"}
        if self.state.finished and not extended:
            return True  # ended as configured, early stopping included
        return not self.timed and self.state.epoch >= sum(st["epochs"] for st in self.stages)

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
            restore_model(self.model, self.ckpt, self.run.last)
            self._log_resume()
        else:
            self.run = Run(Path(dist.broadcast_object(str(new_run_dir(cfg["output_dir"], cfg["name"]))
                                                      if dist.is_main() else None)))
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
        if dist.is_main() and (self.ckpt is None or self.resume_changes):
            save_config(cfg, self.run.config)  # a resume's allowed changes go into the run's config too
        self.checkpointer = Checkpointer(self.run.dir, {"config": cfg, "class_names": self.class_names},
                                         enabled=dist.is_main())
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
        path = self.run.split
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
        self.pace_start = None  # (clock, step) at the end of the stage's first epoch: see replan_stage
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
            warmup = warmup_length(self.tcfg, st["warmup_iters"], self.state.plan[si])
            return share_lr_lambda(self.tcfg, warmup, milestone_shares(self.tcfg, run_epochs), self.budget)
        return lr_lambda(self.tcfg, self.ipe, st["epochs"], st["warmup_iters"], self.stage_start(si), run_epochs)

    def plan_stage(self, si: int) -> None:
        """train.time: measure this stage's seconds per iteration (its own freezing) to estimate how
        many iterations its time holds (for the warmup, the log and the too-few warning). The lr and
        the stop follow the clock, so a wrong estimate costs nothing."""
        spi = dist.broadcast_object(measure_step_time(self.model, self.loader, self.device, self.tcfg["amp"]))
        self.budget.step_s = spi
        left = max(0.0, self.budget.left(si))
        iters = max(1, int(left / max(spi, 1e-9)))
        self.state.plan.append(iters)
        if not dist.is_main():
            return
        log.info("train.time=%g min: stage %d/%d trains until %.0f s into the run (%.0f s from now): about %d "
                 "iterations (%.1f epochs of %d) at a measured %.2f s each. The lr follows the share of that time "
                 "used and the stage stops at its deadline, whatever the pace; validation runs after the budget",
                 self.tcfg["time"], si + 1, len(self.stages), self.budget.deadline[si], left, iters, iters / self.ipe,
                 self.ipe, spi)
        run_left = max(0.0, self.budget.seconds - self.budget.elapsed())
        if si == 0 and (warning := too_few_iterations(int(run_left / max(spi, 1e-9)), len(self.class_names),
                                                      self.tcfg["time"], spi)):
            log.warning(warning)

    def replan_stage(self, si: int) -> None:
        """train.time: at each epoch end, refit the estimate of the stage's iterations to the pace it
        keeps (epoch ends and checkpoints included), for the log and the epoch count shown."""
        st = self.state
        if si >= len(st.plan):
            return
        now = time_budget.clock()
        if self.pace_start is None:
            self.pace_start = (now, st.step)
            return
        pace = (now - self.pace_start[0]) / max(1, st.step - self.pace_start[1])
        done = (st.epoch - self.stage_start(si)) * self.ipe
        before = st.plan[si]
        st.plan[si] = dist.broadcast_object(max(done, done + int(max(0.0, self.budget.left(si)) / max(pace, 1e-9))))
        if dist.is_main() and abs(st.plan[si] - before) > 0.1 * before:
            log.info("train.time: stage %d/%d keeps %.2f s an iteration; about %d iterations (%.1f epochs) fit "
                     "its time", si + 1, len(self.stages), pace, st.plan[si], st.plan[si] / self.ipe)

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
                self.checkpointer.save("last.pt", self.snapshot())

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
        self.checkpointer.save("last.pt", self.snapshot())
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
        snap = self.snapshot(row)
        self.checkpointer.save("last.pt", snap)
        if improved:
            if self.parts.ema is not None:
                snap["model"] = self.parts.ema.module.state_dict()  # inference uses the averaged weights
            self.checkpointer.save("best.pt", snap)

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
        improved = False
        if self.due_for_validation():
            self.checkpointer.save("last.pt", self.snapshot(row))
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


@contextlib.contextmanager
def on_ctrl_c(trainer: Trainer):
    """The first Ctrl-C during the steps asks the loop to stop after the step it is in (last.pt is
    saved there); elsewhere, or a second time, it stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.interrupted or not trainer.in_steps:
            raise KeyboardInterrupt
        trainer.interrupted = True
        log.warning("\nCtrl-C: saving the run after this step (press again to stop at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
