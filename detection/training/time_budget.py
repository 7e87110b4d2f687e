"""train.time: a run bounded by wall time, robust to a machine whose speed changes.

Each stage gets a deadline when it starts (its share of what is left of the budget). The
learning rate follows the share of the stage's *time* used, not a count of iterations
planned from one short measurement, so the decay lands at the planned share of wall time
however fast the machine turns out to be, and the lr never rises again. The deadline is
checked after every step: the epoch that would cross it stops there. An estimate of the
iterations (from a measured step, refitted at each epoch end) is kept for the log only.
"""

from __future__ import annotations

import logging
import math
import time

log = logging.getLogger("detection.training")


def clock() -> float:
    """The run's clock (tests replace it to play a slower or faster machine)."""
    return time.perf_counter()


class RunClock:
    """Seconds of the run so far; a resumed run starts from the seconds it had already run.
    The trainer's times (results.csv, checkpoints) and the budget's deadlines read this one clock."""

    def __init__(self, elapsed: float = 0.0):
        self.restart(elapsed)

    def restart(self, elapsed: float) -> None:
        self.start = clock() - elapsed

    def __call__(self) -> float:
        return clock() - self.start


class TimeBudget:
    """The deadlines of a timed run's stages and how much of the current one is used."""

    def __init__(self, minutes: float, shares: list[float], run_clock: RunClock | None = None, live: bool = True):
        self.seconds, self.shares = minutes * 60.0, list(shares)
        self.elapsed = run_clock or RunClock()  # resumed runs count the time they already ran
        self.stage_from: list[float] = []  # run seconds at which each stage entered so far started
        self.deadline: list[float] = []  # run seconds by which each of them ends
        self.share = 0.0  # of the current stage's time used, as of the last step (the same on every rank)
        self.live = live  # one process: the lr reads the clock itself; under DDP, rank 0's `share`
        self.stage = 0
        self.step_s = 0.0  # recent seconds per step (a moving average), to stop before crossing
        self.last_step_s = 0.0
        self.reserve = 0.0  # seconds the run needs after its last step (saving last.pt): `save_took`
        self._last = None
        self.pace_from = None  # (run seconds, step) at the end of the stage's first epoch: see refit

    def enter(self, si: int) -> None:
        """Start stage `si` (once): its deadline is its share of what is left of the budget."""
        self.pace_from, self.stage = None, si
        if si < len(self.deadline):
            return
        now = self.elapsed()
        left = max(0.0, self.seconds - now)
        self.stage_from.append(now)
        self.deadline.append(now + left * self.shares[si] / max(sum(self.shares[si:]), 1e-9))
        self.share, self._last = self.stage_share(si), None

    def stage_share(self, si: int) -> float:
        """Share of stage `si`'s time used, 0..1."""
        span = self.deadline[si] - self.stage_from[si]
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.elapsed() - self.stage_from[si]) / span))

    def left(self, si: int) -> float:
        return self.deadline[si] - self.elapsed()

    def after_step(self, si: int) -> tuple[float, bool]:
        """(share used, stop now): stop when the next step would end past the deadline."""
        now = self.elapsed()
        if self._last is not None:
            self.last_step_s = dt = now - self._last
            self.step_s = dt if not self.step_s else 0.7 * self.step_s + 0.3 * dt
        self._last = now
        return self.stage_share(si), self.over(si)

    def follow(self, share: float) -> None:
        """Under DDP: the share rank 0 measured after the step, which every rank's lr follows."""
        self.share = share

    def save_took(self, seconds: float) -> None:
        """The last step leaves this much time before the deadline for the save after it."""
        self.reserve = seconds

    def over(self, si: int) -> bool:
        """The stage's time is used up, or the next step (at the recent pace, or the last step's
        if slower), and the save after it, would end past it."""
        left = self.left(si)
        return left <= 0 or left < max(self.step_s, self.last_step_s) + self.reserve

    def epoch_break(self) -> None:
        """Between epochs (checkpoint, validation, loader start) no step ran: not a step's time."""
        self._last = None

    def extend(self, minutes: float, si: int) -> None:
        """A resumed run given another train.time: stage `si` and those after it are planned anew."""
        self.seconds = minutes * 60.0
        if si < len(self.deadline):
            start = self.stage_from[si]
            self.deadline[si] = start + max(0.0, self.seconds - start) * self.shares[si] / sum(self.shares[si:])
            del self.stage_from[si + 1:], self.deadline[si + 1:]

    def estimate(self, si: int, seconds_per_step: float) -> int:
        """Iterations stage `si`'s time holds at a measured pace (its steps start at that pace)."""
        self.step_s = seconds_per_step
        return max(1, int(max(0.0, self.left(si)) / max(seconds_per_step, 1e-9)))

    def refit(self, si: int, step: int, done: int, estimate: int) -> int:
        """At an epoch end: the stage's estimate from the pace it keeps (epoch ends and checkpoints
        included), timed from the end of its first epoch, which carries the one-time costs."""
        now = self.elapsed()
        if self.pace_from is None:
            self.pace_from = (now, step)
            return estimate
        pace = (now - self.pace_from[0]) / max(1, step - self.pace_from[1])
        return max(done, done + int(max(0.0, self.left(si)) / max(pace, 1e-9)))

    def set_up_error(self) -> str:
        """What to say when the run's set-up took the whole budget: no step was trained."""
        used = self.elapsed()
        need = used + 100 * max(self.step_s, 0.01) + 60
        return (f"train.time={self.seconds / 60:g} min ran out in set-up ({used:.0f} s of {self.seconds:.0f} s: "
                f"reading the data, building the model, measuring a step) before a single training step; nothing "
                f"was trained. Give it at least train.time={math.ceil(need / 60)} (set-up, about 100 iterations "
                f"at the measured {self.step_s:.2f} s each, and one validation), or train by train.epochs")

    def state_dict(self) -> dict:
        return {"seconds": self.seconds, "stage_from": list(self.stage_from), "deadline": list(self.deadline)}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = state["seconds"]
        self.stage_from, self.deadline = list(state["stage_from"]), list(state["deadline"])


def share_lr_lambda(tcfg: dict, warmup: int, milestone_shares: list[float], budget: TimeBudget):
    """The lr multiplier of a timed stage: linear warmup over `warmup` iterations, then the decay
    (multistep at `milestone_shares` of the stage's time, or cosine over it) by the share used.

    Without train.warmup_fraction the warmup also ends once WARMUP_SHARE of the stage's time has
    passed, whichever comes first: a 3-minute budget on a busy machine held about 17 iterations,
    a 100-iteration warmup filled them all, the lr peaked at 0.0016 of 0.02 and the model scored
    AP 0.000. The clock, not the estimate, decides, so a machine that speeds up after a slow
    measurement keeps its full warmup (the reason the estimate never shortens it)."""
    from .optim import lr_factor

    by_time = tcfg["warmup_fraction"] == 0 and warmup > 0

    def f(it: int) -> float:
        share = budget.stage_share(budget.stage) if budget.live else budget.share
        if by_time:
            it = max(it, min(warmup, math.ceil(warmup * share / WARMUP_SHARE)))
        return lr_factor(tcfg, share, sum(share >= m for m in milestone_shares), it, warmup)

    return f


def too_few_iterations(iters: int, num_classes: int, minutes: float, seconds_per_iter: float,
                       auto_size: bool = False) -> str | None:
    """A warning when the budget holds too few iterations to learn anything, with what would help
    (model.auto_size only when it is off)."""
    need = max(100, 20 * num_classes)
    if iters >= need:
        return None
    smaller = "a smaller input (model.min_size)" if auto_size else "a smaller input (model.min_size, or " \
        "model.auto_size=true)"
    return (f"train.time={minutes:g} holds about {iters} iterations ({seconds_per_iter:.2f} s each) for "
            f"{num_classes} classes: too few to learn much (aim for {need} or more). Give it more time "
            f"(train.time={math.ceil(minutes * need / max(iters, 1))}), {smaller}, fewer proposals "
            "(model.rpn_post_nms_top_n_train), or a GPU. The warmup ends by a quarter of the time at the latest "
            "(train.warmup_fraction sets its share)")


def budget_for(tcfg: dict, stages: list[dict], run_clock: RunClock, saved: dict | None,
               stage: int, live: bool = True) -> TimeBudget | None:
    """train.time's deadlines: new, restored from a checkpoint's `saved` state, or (a resume given
    another train.time) extended from the current `stage` on; None for a run planned by epochs."""
    if tcfg["time"] <= 0:
        return None
    budget = TimeBudget(tcfg["time"], [st["epochs"] for st in stages], run_clock, live)
    if saved:
        budget.load_state_dict(saved)
        if budget.seconds != tcfg["time"] * 60:
            budget.extend(tcfg["time"], stage)
    return budget


WARMUP_SHARE = 0.25  # the warmup never takes more than this share of a timed stage's time


def timed_warmup(tcfg: dict, stage: dict, estimate: int) -> int:
    """Warmup iterations of a timed stage: train.warmup_iters, never cut to fit the estimate (a
    start measured under load estimated 42 iterations, the warmup shrank to 41, and the full lr
    that came after it blew BCCD's losses up once the machine sped up); with train.warmup_fraction
    (the explicit key, which wins), that share of the estimate, at most warmup_iters. The lr's
    warmup also ends by WARMUP_SHARE of the stage's time (`share_lr_lambda`)."""
    from .optim import warmup_length

    if tcfg["warmup_fraction"] > 0:
        return warmup_length(tcfg, stage["warmup_iters"], estimate)
    return stage["warmup_iters"]


def log_plan(budget: TimeBudget, si: int, stages: int, iters: int, ipe: int, num_classes: int, tcfg: dict,
             warmup: int, auto_size: bool = False) -> None:
    """What a timed stage will do, said at its start, with the warnings a short budget deserves."""
    log.info("train.time=%g min: stage %d/%d trains until %.0f s into the run (%.0f s from now): about %d "
             "iterations (%.1f epochs of %d) at a measured %.2f s each. The lr follows the share of that time "
             "used and the stage stops at its deadline, whatever the pace; validation runs after the budget",
             tcfg["time"], si + 1, stages, budget.deadline[si], max(0.0, budget.left(si)), iters, iters / ipe, ipe,
             budget.step_s)
    run_iters = int(max(0.0, budget.seconds - budget.elapsed()) / max(budget.step_s, 1e-9))
    if si == 0 and (warning := too_few_iterations(run_iters, num_classes, tcfg["time"], budget.step_s, auto_size)):
        log.warning(warning)
    if tcfg["warmup_fraction"] == 0 and warmup > WARMUP_SHARE * iters:
        log.info("train.time: the warmup (train.warmup_iters=%d) ends by %.0f%% of the stage's time (about %d of its "
                 "%d iterations), so the lr reaches its peak; train.warmup_fraction sets the share yourself", warmup,
                 WARMUP_SHARE * 100, max(1, round(WARMUP_SHARE * iters)), iters)
    elif warmup > iters / 2:
        log.warning("train.time: the warmup (%d iterations, train.warmup_fraction=%g) may take most of this stage's "
                    "about %d; the lr reaches its peak late", warmup, tcfg["warmup_fraction"], iters)
