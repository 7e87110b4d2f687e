"""Where a run is (`TrainState`, all of it in every checkpoint), the best-so-far rule, and the
weights' moving average."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


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
    nonfinite_streak: int = 0  # non-finite losses in a row at the last epoch's end (train.max_nonfinite)
    elapsed: float = 0.0  # seconds of the run so far (train.time counts them across a resume)
    finished: bool = False  # the run ended as configured (a resume then has nothing to do unless extended)
    validating: bool = False  # taken just before a validation: a run killed in it resumes into that validation

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> TrainState:
        return cls(**{k: ckpt[k] for k in cls.__dataclass_fields__ if k in ckpt})

    # the loop moves it through these, in this order; nothing else writes it
    def enter_stage(self, si: int) -> None:
        self.stage = si

    def stepped(self, step: int, epoch_start_step: int) -> None:
        self.step, self.iter_in_epoch = step, step - epoch_start_step

    def epoch_done(self, nonfinite_streak: int) -> None:
        self.epoch, self.iter_in_epoch, self.epoch_sums = self.epoch + 1, 0, {}
        self.nonfinite_streak = nonfinite_streak

    def validation_started(self) -> None:
        self.validating = True

    def validation_done(self, finished: bool) -> None:
        self.validating, self.finished = False, finished

    def extended(self) -> None:
        """A resume gave the run more epochs or time: it is not finished any more."""
        self.finished = False

    def stamp(self, elapsed: float) -> None:
        """The run's seconds so far, as the checkpoint about to be taken records them."""
        self.elapsed = elapsed


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
