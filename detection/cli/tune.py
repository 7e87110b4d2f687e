"""python tools/tune.py --cfg configs/bccd_frcnn.yaml --time 60 [--trials N] [--space space.yaml] [--name NAME]

Search the training recipe within --time minutes (Optuna: TPE sampling, successive-halving
pruning on validations inside each trial). Trials train on a split carved from the training
images and are scored on its other side; the best configuration is then trained on all
training images and scored on your validation split. Writes runs/tune/<name>/: best.yaml,
trials.csv, history.png, importance.png, report.md, final/ (the trained model).

    --workers 2                        two processes on this machine share the study
    --storage postgresql://u:p@h/db    a study many machines share: each runs
                                       tools/tune.py ... --storage URL --join
Run the same command again to continue a stopped tune.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .common import add_config_args, minutes_arg, setup_logging, user_errors_as_one_line


def positive(kind):
    def parse(text: str):
        v = kind(text)
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v
    return parse


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Tune the training recipe under a time budget (see README).")
    add_config_args(p, cfg_required=True)
    p.add_argument("--time", type=minutes_arg, required=True,
                   help="minutes for everything (trials + final)")
    p.add_argument("--trials", type=positive(int), help="at most this many trials (your configuration counts)")
    p.add_argument("--trial-minutes", type=minutes_arg,
                   help="train.time of each trial (default: share / 6)")
    p.add_argument("--space", help="YAML of config keys and their values (default: the built-in space)")
    p.add_argument("--name", default="tune", help="study name: runs/tune/<name>; the same name continues it")
    p.add_argument("--share", type=positive(float), default=0.5, help="share of --time for the trials (0-1)")
    p.add_argument("--holdout", type=positive(float), default=0.2, help="share of training images to score trials")
    p.add_argument("--checks", type=int, default=3, help="validations inside a trial, for pruning")
    p.add_argument("--pruner", choices=("halving", "hyperband", "none"), default="halving")
    p.add_argument("--storage", default="", help="Optuna storage URL (default sqlite in the study folder)")
    p.add_argument("--workers", type=positive(int), default=1, help="processes on this machine")
    p.add_argument("--join", action="store_true", help="only run trials of a study another process leads")
    p.add_argument("--no-final", action="store_true", help="stop after the trials (best.yaml, no final training)")
    p.add_argument("--final-from", choices=("trial", "pretrained"), default="pretrained",
                   help="the final training starts from the pretrained weights (default) or the best trial's "
                        "(measured on BCCD: from the trial lost 0.019 AP at the same minutes)")
    p.add_argument("--seed", type=int, default=0)
    return p, p.parse_args(argv)


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p, args = parse_args(argv)
    if not 0 < args.share <= 1 or not 0 < args.holdout < 1 or not 0 <= args.checks <= 20:
        p.error("--share must be in (0, 1], --holdout in (0, 1), --checks in 0..20")
    if args.workers > cores():
        p.error(f"--workers {args.workers}: this machine gives this process {cores()} cores; each worker trains on "
                f"its own, so at most --workers {cores()} (more machines: --storage URL --join on each)")
    setup_logging()
    from ..config import load_config
    from ..tuning.space import load_space
    from ..tuning.study import TuneOptions, tune

    if args.workers > 1:  # the processes share the cores instead of each taking all of them
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores() // args.workers)))  # the cores it may use
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    cfg = load_config(args.cfg, args.overrides)
    space, source = load_space(args.space)
    opts = TuneOptions(minutes=args.time, trials=args.trials, trial_minutes=args.trial_minutes, share=args.share,
                       holdout=args.holdout, checks=args.checks, pruner=args.pruner, storage=args.storage,
                       workers=args.workers, join=args.join, final=not args.no_final,
                       final_from=args.final_from, seed=args.seed)
    join_argv = _without_workers(list(argv if argv is not None else sys.argv[1:]))
    folder = tune(cfg, opts, space, source, args.name, join_argv)
    logging.getLogger("detection.tune").info("tune: %s", folder.dir)


def _without_workers(argv: list[str]) -> list[str]:
    """The command line for a joining worker: the same study and options, one process."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


if __name__ == "__main__":
    main()
