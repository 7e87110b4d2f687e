"""What `resume=` does: continue a run from its last.pt with the run's own config, apply the
changes that can continue it (a longer run, another device), and refuse the rest in one line.
"""

from __future__ import annotations

import logging

from ..checkpoint import load_checkpoint
from ..config import flat_items, with_values
from ..errors import CheckpointError, ConfigError
from ..utils.commands import command
from ..utils.runs import Run, resume_checkpoint
from .optim import plan_stages

log = logging.getLogger("detection.training")

# what `resume=` may change: the run goes on with them; anything else is refused in one line
RESUME_CHANGEABLE = ("train.epochs", "train.time", "device", "data.num_workers", "train.eval_every",
                     "train.patience", "train.ckpt_every")
# where the run is, not how it trains; recipe.keep only matters when a run starts (a resume reads
# the run's config.yaml, whose every key is the user's file's, so the loader would mark them all)
RESUME_IGNORED = ("resume", "data.split_file", "name", "output_dir", "recipe.keep")


def resume_source(cfg: dict) -> tuple[dict, Run, dict, dict]:
    """(checkpoint, run, its config with the allowed changes, {key: (was, now)}) for `resume=`.

    `cfg` is read once, by the caller: the run's own config.yaml with the command's overrides
    (`train_det.py resume=...`), or any config naming `resume=`. It is compared with the config
    the checkpoint was trained on; where they differ only what can continue a run may, and
    where the run is (its name, folder and split file) stays the run's."""
    last, run = resume_checkpoint(cfg["resume"])
    ckpt = load_checkpoint(last)
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise CheckpointError(f"{last} holds weights only (a best.pt or an old checkpoint): resume needs a last.pt")
    saved = ckpt["config"]
    was, now = dict(flat_items(saved)), dict(flat_items(cfg))
    changed = {k: (was[k], v) for k, v in now.items() if k in was and was[k] != v and k not in RESUME_IGNORED}
    check_resume_changes(changed, saved, run)
    kept = {k: was[k] for k in RESUME_IGNORED if k in was and k != "resume" and was[k] != now[k]}
    return ckpt, run, with_values(cfg, kept), changed


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


def nothing_left(state, changes: dict, cfg: dict) -> bool:
    """A resumed run (`cfg`: its own, already resolved) that ended as configured (early stopping
    too) and was not extended."""
    extended = changes.keys() & {"train.time", "train.epochs", "train.patience"}
    if state.finished and not extended:
        return True
    return cfg["train"]["time"] <= 0 and state.epoch >= sum(st["epochs"] for st in plan_stages(cfg))


def finished_message(run: Run, state, tcfg: dict) -> str:
    """What a resume of a finished run says: nothing to do, and how to train it further."""
    minutes = tcfg["time"]
    done, more = ((f"train.time={minutes:g}", f"train.time={2 * minutes:g}") if minutes > 0 else
                  (f"{state.epoch} epochs", f"train.epochs={state.epoch + 5}"))
    return (f"{run.dir} is finished ({done}): nothing to do. To train it further: {command('train')} "
            f"resume={run.dir} {more}")


def log_resume(run: Run, state, changes: dict) -> None:
    """Where the run continues and what the resume changed; an extended run is not finished."""
    log.info("resuming %s at epoch %d, iteration %d of it (step %d)", run.dir, state.epoch + 1,
             state.iter_in_epoch, state.step)
    for key, (was, now) in changes.items():
        log.info("resume: %s %s -> %s", key, was, now)
    if changes.keys() & {"train.epochs", "train.time"}:
        state.extended()
        log.info("resume: the run is extended; its lr schedule is laid over the new length")
