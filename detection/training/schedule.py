"""The run laid out in stages, epochs and time: which stage an epoch belongs to, when a stage
is done, its lr multiplier at each iteration and, under train.time, its deadline and the
iterations it is estimated to hold. The trainer asks; this owns the answers and their
`state_dict` (the estimates and the deadlines), so a resume continues the same plan.

One interface for both kinds of run: the trainer calls every method after every step, epoch
and save, and never asks which kind it has; a run planned by epochs answers "nothing to do".
"""

from __future__ import annotations

import logging
import math

from ..errors import ConfigError
from ..utils import distributed as dist
from .optim import lr_lambda, milestone_shares, plan_stages
from .time_budget import RunClock, budget_for, log_plan, share_lr_lambda, timed_warmup

log = logging.getLogger("detection.training")


class Schedule:
    def __init__(self, cfg: dict, run_clock: RunClock, saved: dict | None = None, stage: int = 0,
                 iters_per_epoch: int = 1, live: bool = True):
        """`cfg`: the resolved config. `saved`: a checkpoint, whose `plan` and `time_budget` it
        continues from (at `stage`). `live`: one process (under DDP the lr follows rank 0's share)."""
        self.tcfg = cfg["train"]
        self.stages = plan_stages(cfg)
        self.run_epochs = sum(st["epochs"] for st in self.stages)
        self.plan: list[int] = list(saved.get("plan") or []) if saved else []  # estimated iterations a stage
        self.budget = budget_for(self.tcfg, self.stages, run_clock, saved.get("time_budget") if saved else None,
                                 stage, live)
        self.ipe = iters_per_epoch  # training iterations an epoch
        self.checks_done = int(saved.get("time_checks_done") or 0) if saved else 0  # train.time_validations
        self.auto_size = bool(cfg["model"]["auto_size"])  # what the too-few-iterations hint suggests

    @property
    def timed(self) -> bool:
        return self.budget is not None

    def stage_epochs(self, si: int) -> int:
        """Epochs of stage `si`: configured, or (train.time) those its estimated iterations touch;
        a stage not planned yet counts its configured epochs until it is."""
        if self.timed and si < len(self.plan):
            return max(1, math.ceil(self.plan[si] / self.ipe))
        return self.stages[si]["epochs"]

    def stage_end(self, si: int) -> int:
        """The run epoch at which stage `si` ends (train.time: as estimated)."""
        return sum(self.stage_epochs(j) for j in range(si + 1))

    def stage_start(self, si: int) -> int:
        return self.stage_end(si - 1) if si else 0

    def total_epochs(self, epoch: int) -> int:
        """The run's epochs as now planned, never fewer than those done."""
        return max(self.stage_end(len(self.stages) - 1), epoch)

    def stage_done(self, si: int, epoch: int) -> bool:
        """Its epochs are done, or (train.time) its time is up."""
        return self.budget.over(si) if self.timed else epoch >= self.stage_end(si)

    def stage_over(self, si: int, epoch: int, device) -> bool:
        """stage_done as rank 0 sees it, on every rank. The trainer asks once after each epoch's
        steps and both the validation and the loop's end follow that one answer: a timed stage
        asked twice could run out in between (during the save) and end unvalidated."""
        return bool(dist.broadcast_values([self.stage_done(si, epoch)], device)[0])

    def due_for_validation(self, si: int, epoch: int, stage_over: bool) -> bool:
        """Every train.eval_every epochs and after the last. Under train.time after the last (the
        budget is for training, and one validation follows it), and at the first epoch end past
        each of `train.time_validations` equal shares of the time (what tools/tune.py prunes on);
        asked once an epoch, it counts the checks it says are due."""
        if self.run_over(si, stage_over):
            return True
        if not self.timed:
            return epoch % self.tcfg["eval_every"] == 0
        n = self.tcfg["time_validations"]
        if not n:
            return False
        reached = min(n, math.floor(self.budget.elapsed() / max(self.budget.seconds, 1e-9) * (n + 1)))
        reached = dist.broadcast_object(reached)  # rank 0's clock: every rank validates, or none
        due, self.checks_done = reached > self.checks_done, max(self.checks_done, reached)
        return due

    def run_over(self, si: int, stage_over: bool) -> bool:
        """The last stage is over: the epoch that just ended was the run's last."""
        return stage_over and si == len(self.stages) - 1

    def lr_lambda(self, si: int):
        """The lr multiplier of stage `si` at each of its iterations: over its epochs, or under
        train.time by the share of the stage's time used (warmup over its first iterations)."""
        if self.timed:
            return share_lr_lambda(self.tcfg, self.warmup(si), milestone_shares(self.tcfg, self.run_epochs),
                                   self.budget)
        st = self.stages[si]
        return lr_lambda(self.tcfg, self.ipe, st["epochs"], st["warmup_iters"], self.stage_start(si), self.run_epochs)

    def warmup(self, si: int) -> int:
        return timed_warmup(self.tcfg, self.stages[si], self.plan[si])

    def enter(self, si: int, measure_step, num_classes: int) -> None:
        """train.time: start stage `si`'s clock; a stage entered the first time measures its
        seconds a step (`measure_step()`, with its own freezing) to estimate how many iterations
        its time holds: for the warmup, the log and the too-few warning. The lr and the stop
        follow the clock, so a wrong estimate costs nothing."""
        if not self.timed:
            return
        self.budget.enter(si)
        if si < len(self.plan):
            return
        spi = dist.broadcast_object(measure_step())
        self.plan.append(self.budget.estimate(si, spi))
        if dist.is_main():
            log_plan(self.budget, si, len(self.stages), self.plan[si], self.ipe, num_classes, self.tcfg,
                     self.warmup(si), self.auto_size)

    def replan(self, si: int, epoch: int, step: int) -> None:
        """train.time, at an epoch end: refit the stage's estimate to the pace it keeps (the log
        and the epoch count shown)."""
        if not self.timed:
            return
        done, before = (epoch - self.stage_start(si)) * self.ipe, self.plan[si]
        self.plan[si] = dist.broadcast_object(self.budget.refit(si, step, done, before))
        if dist.is_main() and abs(self.plan[si] - before) > 0.1 * before:
            log.info("train.time: stage %d/%d: about %d iterations (%.1f epochs) fit its time at the pace it keeps",
                     si + 1, len(self.stages), self.plan[si], self.plan[si] / self.ipe)

    def after_step(self, si: int, interrupted: bool, device, world: int) -> tuple[bool, bool]:
        """(the time is up, Ctrl-C was pressed), after every step, as rank 0 sees them on every
        rank (one broadcast), so every rank stops at the same step with the same lr share."""
        share, over = self.budget.after_step(si) if self.timed else (0.0, False)
        if world > 1:
            share, over, interrupted = dist.broadcast_values([share, over, interrupted], device)
        if self.timed:
            self.budget.follow(share)
        return bool(over), bool(interrupted)

    def epoch_break(self) -> None:
        """Before an epoch's steps: the time since the last step (saves, validation) was no step's."""
        if self.timed:
            self.budget.epoch_break()

    def save_took(self, seconds: float) -> None:
        """A checkpoint save took `seconds`: the last step leaves that much before the deadline."""
        if self.timed:
            self.budget.save_took(seconds)

    def steps_ended_row(self, now: float) -> dict:
        """results.csv: the run seconds when a timed epoch's steps ended (elapsed_s adds saving and
        validating)."""
        return {"train_end_s": round(now, 1)} if self.timed else {}

    def progress_row(self, si: int, step: int, now: float) -> dict:
        """results.csv: the estimate and where a timed run is in its time."""
        return {"plan_iters": self.plan[si], "step": step, "elapsed_s": round(now, 1)} if self.timed else {}

    def time_left(self, si: int) -> float | None:
        """Seconds until stage `si`'s deadline (train.time), else None: the progress line's ETA
        follows it, since the stage stops there whatever the epoch's length."""
        return max(0.0, self.budget.left(si)) if self.timed else None

    def check_started(self, si: int, stage_over: bool, steps_done: int) -> None:
        """A run whose budget ran out before its first step trained nothing: it must not end as if it
        had (exit 0, no last.pt): one line with the time it needs."""
        if self.timed and stage_over and steps_done == 0:
            raise ConfigError(self.budget.set_up_error())

    def state_dict(self) -> dict:
        return {"plan": list(self.plan), "time_budget": self.budget.state_dict() if self.timed else None,
                "time_checks_done": self.checks_done}
