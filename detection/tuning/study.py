"""The tuning loop: trials on a split carved from the training images, pruned on their
validations, then the best configuration trained on all training images.

Time: `--time` minutes cover it all. The trials get `share` of it (each a `train.time` run of
the same length, so their APs compare), the final training what is left. The study lives in
an Optuna RDB storage (SQLite by default, beside the runs): a stopped tune continues where it
was, and other processes or machines can work on the same study (`--workers`, `--join`).
The user's own configuration runs as the first trial: the tuner is measured against it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..config import flat_items, load_config, save_config, thaw, with_values
from ..data.dataset import read_split
from ..data.splits import record_names, unit_hash, write_split
from ..errors import ConfigError, DetectionError, TrainingInterrupted, writing
from ..training.trainer import train
from ..utils.runs import Run, TuneFolder
from .report import MIN_TRIAL_ITERS, write_report
from .space import check_space, resolve, suggest

log = logging.getLogger("detection.tune")

MIN_TRIAL_MINUTES = 0.1  # 6 s: set-up, a step and one validation on a small tuning split, at the least
MIN_TUNING_VAL = 8  # images on the tuning side: fewer and the trials' APs are noise
TRIAL_WARMUP = 0.1  # of a trial's estimated iterations, when the configuration sets no warmup_fraction


@dataclass
class TuneOptions:
    minutes: float
    trials: int | None = None  # at most this many trials in the study (the baseline counts)
    trial_minutes: float | None = None  # train.time of each trial; default: the trials' share / 6
    share: float = 0.5  # of the budget for the trials; the final training gets the rest
    holdout: float = 0.2  # of the training images, for the trials' validation
    checks: int = 3  # validations inside a trial before its end, for pruning
    pruner: str = "halving"  # halving | hyperband | none
    storage: str = ""  # an Optuna storage URL; default sqlite:///<folder>/study.db
    workers: int = 1  # processes on this machine
    join: bool = False  # only run trials of a study another process leads (no baseline, no final)
    final: bool = True
    # where the final training starts: "pretrained" (the configured weights), or "trial" (the best
    # trial's weights). Pretrained by measurement: BCCD, --time 60, the same 35-minute final from
    # trial 3 scored AP 0.462 against 0.481 from the pretrained weights, -0.019 [-0.029, -0.007]
    final_from: str = "pretrained"
    seed: int = 0


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise ConfigError("tools/tune.py needs Optuna: pip install 'detection[tune]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: used as documented
    return optuna


def carve_tuning_split(cfg: dict, folder: TuneFolder, holdout: float, seed: int) -> tuple[str, list[str]]:
    """(split file, class names): the training images divided by name hash into the trials'
    train and validation sides, written once; the user's validation split is never touched."""
    records, info = read_split(cfg["data"], cfg["data"]["train_split"], True, None, cfg["seed"])
    if folder.split.is_file():
        return str(folder.split), info.class_names
    names = record_names(records, info)
    val = [n for n in names if unit_hash(n, f"tune:{seed}") < holdout]
    if len(val) < MIN_TUNING_VAL or len(val) == len(names):
        raise ConfigError(f"{info.source}: {len(names)} training images give {len(val)} to the tuning split "
                          f"(--holdout {holdout}); it needs at least {MIN_TUNING_VAL} on each side: raise --holdout "
                          "or tune on a larger data set")
    train_names = [n for n in names if n not in set(val)]
    write_split(folder.split, train_names, val, f"tuning: {holdout:.0%} of the training images of {info.source} "
                                                 f"by name hash (seed {seed}); the validation split is not used")
    return str(folder.split), info.class_names


def trial_config(base: dict, changes: dict, folder: TuneFolder, number: int, split: str, classes: list[str],
                 minutes: float, checks: int) -> dict:
    """The config trial `number` trains: the base with its changes, on the tuning split. Its
    warmup is a share of the iterations it holds (TRIAL_WARMUP, at most train.warmup_iters):
    a short trial spent in a fixed 100-iteration warmup never reaches its lr, and every trial,
    the baseline too, scored AP 0 in 10-minute tunes of BCCD."""
    cfg = resolve(base, changes)
    return with_values(cfg, {"name": folder.trial(number).name, "output_dir": str(folder.trials),
                             "data.split_file": split, "data.val_fraction": 0.0, "data.fraction": 1.0,
                             "data.classes": list(classes), "train.time": minutes,
                             "train.warmup_fraction": cfg["train"]["warmup_fraction"] or TRIAL_WARMUP,
                             "train.time_validations": checks, "train.patience": 0, "resume": ""})


class State:
    """tune.json: the budget and the seconds each phase used, so a resumed tune keeps to its --time."""

    def __init__(self, path: Path, minutes: float):
        self.path = path
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.used = float(saved.get("used_s", 0.0))
        self.seconds = minutes * 60.0
        self.since = time.monotonic()

    def spent(self) -> float:
        return self.used + time.monotonic() - self.since

    def save(self, **extra) -> None:
        with writing(self.path):
            self.path.write_text(json.dumps({"budget_s": self.seconds, "used_s": round(self.spent(), 1), **extra}))


def make_study(optuna, opts: TuneOptions, folder: TuneFolder, name: str):
    url = opts.storage or f"sqlite:///{folder.study_db}"
    try:
        return _open_study(optuna, opts, url, name)
    except ImportError:
        raise ConfigError(f"--storage {_shown(url)}: its database driver is not installed (PostgreSQL: pip install "
                          "psycopg2-binary; MySQL: pip install pymysql)") from None
    except Exception as e:  # SQLAlchemy's errors: a string that is no URL, a folder that is not there, not a database
        if type(e).__module__.split(".")[0] != "sqlalchemy":
            raise
        what = ("is not a storage URL (e.g. sqlite:///study.db or postgresql://user:pw@host/db)"
                if type(e).__name__ == "ArgumentError" else f"cannot be opened: {str(e).splitlines()[0][:160]}")
        raise ConfigError(f"--storage {_shown(url)} {what}"
                          + ("" if opts.storage else f" (move {folder.study_db} away to start again)")) from None


def _shown(url: str) -> str:
    """A storage URL for a message, its password left out."""
    head, at, tail = url.rpartition("@")
    return f"{head.split(':')[0]}:{head.split(':')[1]}:***@{tail}" if at and head.count(":") >= 2 else url


def _open_study(optuna, opts: TuneOptions, url: str, name: str):
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120,
                                         engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite")
                                         else {})
    pruner = {"halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
              "hyperband": optuna.pruners.HyperbandPruner(min_resource=1, max_resource=opts.checks + 1),
              "none": optuna.pruners.NopPruner()}[opts.pruner]
    sampler = optuna.samplers.TPESampler(seed=opts.seed + os.getpid() % 10_000 if opts.workers > 1 or opts.join
                                         else opts.seed, n_startup_trials=5)
    return optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler,
                               pruner=pruner, load_if_exists=True)


def check_study_is_this_tune(study, cfg: dict, space: dict, folder: TuneFolder) -> None:
    """A study continued with another configuration or search space would rank its trials with
    this tune's (best.yaml and report.md named the other configuration's best trial), and Optuna
    refuses a value space that changed halfway with a traceback. The study keeps the config and
    the space it was made with; a study that has them must be given the same ones."""
    made = {"config": dict(flat_items(thaw(cfg))), "space": json.loads(json.dumps(space, default=str))}
    kept = {k: study.user_attrs.get(k) for k in made}
    if kept["config"] is None and kept["space"] is None:
        for k, v in made.items():
            study.set_user_attr(k, v)
        return
    before, now = kept["config"] or {}, made["config"]
    other = sorted(k for k in set(now) | set(before) if k != "name" and now.get(k) != before.get(k))
    if not other and made["space"] == kept["space"]:
        return
    changed = "; ".join(f"{k}: {before.get(k)!r} there, {now.get(k)!r} here" for k in other[:3])
    said = (f"another configuration ({changed}{' ...' if len(other) > 3 else ''})" if other
            else "another search space (--space)")
    raise ConfigError(f"{folder.dir}: this study was made with {said}; continue it with the same --cfg, overrides "
                      "and --space, or start another tune with --name")


def fail_orphans(optuna, study) -> None:
    """Trials left RUNNING by a process of this machine that is gone (a stopped tune) fail now,
    so their time is not waited for (other machines' trials fail by heartbeat)."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid and not _alive(pid):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            log.info("trial %d was left running by a stopped process (pid %d): marked failed", t.number, pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_trial(optuna, trial, base: dict, space: dict, ctx: dict) -> float:
    """One trial: its config (the baseline's is the base itself), a `train.time` run on the
    tuning split that reports each validation to the study and stops when pruned; its AP."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    changes = {} if trial.user_attrs.get("baseline") else suggest(trial, space, base)
    trial.set_user_attr("changes", {k: v for k, v in changes.items()})
    cfg = trial_config(base, changes, ctx["folder"], trial.number, ctx["split"], ctx["classes"], ctx["minutes"],
                       ctx["checks"])
    step = [0]

    def on_validation(epoch: int, res: dict) -> None:
        step[0] += 1
        trial.report(res["coco"]["AP"], step[0])
        if step[0] <= ctx["checks"] and len(trial.study.get_trials(deepcopy=False, states=ctx["finished"])) >= 2 \
                and trial.should_prune():  # after two finished trials: a pruner with one to rank against is a coin
            raise optuna.TrialPruned(f"AP {res['coco']['AP']:.3f} at check {step[0]}")

    log.info("trial %d%s: %s", trial.number, " (your configuration)" if not changes else "",
             ", ".join(f"{k}={v}" for k, v in changes.items()) or "as configured")
    try:
        run, res = train(cfg, on_validation=on_validation)
    except TrainingInterrupted:
        raise KeyboardInterrupt from None  # Optuna fails the trial and stops
    if "coco" not in (res or {}):
        raise ConfigError(f"trial {trial.number} validated nothing in its {ctx['minutes']:g} min: give the trials "
                          "more time (--trial-minutes, or more --time)")
    ci = res.get("intervals", {}).get("AP", {})
    trial.set_user_attr("AP_low", ci.get("low"))
    trial.set_user_attr("AP_high", ci.get("high"))
    trial.set_user_attr("AP50", res["coco"]["AP50"])
    trial.set_user_attr("iterations", trained_iterations(run))
    return res["coco"]["AP"]


def trained_iterations(run_dir: Path) -> int | None:
    """The optimizer steps a run took (results.csv's last `step`); None where it has none."""
    try:
        with open(Run(Path(run_dir)).results_csv, newline="") as f:
            steps = [int(float(row["step"])) for row in csv.DictReader(f) if row.get("step")]
    except (OSError, ValueError, csv.Error):  # a count for the report: an unreadable file must not fail the trial
        return None
    return steps[-1] if steps else None


def warn_if_short(trial, minutes: float) -> bool:
    """One warning when a finished trial trained fewer than MIN_TRIAL_ITERS steps: the tune then
    ranks recipes by how fast they start. True once it has warned."""
    n = trial.user_attrs.get("iterations")
    if n is None or n >= MIN_TRIAL_ITERS:
        return False
    log.warning("tune: trial %d trained only %d iterations in its %.1f min (under %d): the trials rank how fast a "
                "recipe starts, not where it ends; give the tune more --time or longer --trial-minutes",
                trial.number, n, minutes, MIN_TRIAL_ITERS)
    return True


def keep_best_weights(optuna, study, folder: TuneFolder) -> None:
    """Trial weights take disk (tens of MB each): only the best finished trial keeps them."""
    try:
        best = study.best_trial.number
    except ValueError:  # no trial finished yet
        best = None
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    for t in study.get_trials(deepcopy=False, states=done):
        if t.number != best:
            shutil.rmtree(folder.trial(t.number).weights, ignore_errors=True)


def tuning_deadline(study, state: State, opts: TuneOptions) -> float:
    """Wall-clock seconds (time.time) by which trials must end; the leader writes it to the
    study, so workers and joined machines stop at the same time."""
    if opts.join:
        return float(study.user_attrs.get("tuning_ends_at", 0.0))
    left = state.seconds * (opts.share if opts.final else 1.0) - state.spent()
    ends = time.time() + max(0.0, left)
    study.set_user_attr("tuning_ends_at", ends)
    return ends


def trial_plan(study, opts: TuneOptions, deadline: float) -> float:
    """Minutes each trial trains: --trial-minutes, else the trials' share over 6 trials (set
    once per study: every trial gets the same time, so their APs compare)."""
    if "trial_minutes" in study.user_attrs:
        return float(study.user_attrs["trial_minutes"])
    minutes = opts.trial_minutes or max(0.2, (deadline - time.time()) / 60.0 / 6)
    study.set_user_attr("trial_minutes", minutes)
    return minutes


def run_trials(optuna, study, base: dict, space: dict, ctx: dict, opts: TuneOptions, deadline: float) -> None:
    """Trials one after another while one more fits before the deadline and under --trials
    (complete and pruned ones count; failed ones are named in the log, and three in a row stop)."""
    overhead = float(study.user_attrs.get("trial_overhead_s", 30.0))  # validation, set-up: measured below
    failures, ended, warned = 0, [], False
    while True:
        done = study.get_trials(deepcopy=False, states=ctx["finished"])
        if opts.trials is not None and len(done) >= opts.trials:
            log.info("tune: %d trials done (--trials %d)", len(done), opts.trials)
            return
        if time.time() + ctx["minutes"] * 60.0 + overhead > deadline:
            log.info("tune: the trials' time is used (another trial would end past it)")
            return
        t0 = time.time()
        study.optimize(lambda trial: _said_if_failed(trial, run_trial, optuna, trial, base, space, ctx), n_trials=1,
                       catch=(DetectionError, RuntimeError), callbacks=[lambda _, t: ended.append(t)])
        trial = ended[-1]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            overhead = max(overhead * 0.5, time.time() - t0 - ctx["minutes"] * 60.0)
            study.set_user_attr("trial_overhead_s", overhead)
            warned = warned or warn_if_short(trial, ctx["minutes"])
        failures = failures + 1 if trial.state == optuna.trial.TrialState.FAIL else 0
        if trial.state == optuna.trial.TrialState.FAIL and (failures >= 3 or trial.user_attrs.get("baseline")):
            why = trial.user_attrs.get("error") or trial.system_attrs.get("fail_reason", "?")
            raise ConfigError(f"tune: trial {trial.number} failed ({why}); "
                              + ("your configuration itself does not train" if trial.user_attrs.get("baseline")
                                 else "three trials failed in a row: check the space (--space)"))
        keep_best_weights(optuna, study, ctx["folder"])
        if ctx.get("state") is not None:
            ctx["state"].save(phase="trials")


def _said_if_failed(trial, run, *args):
    """Run a trial, keeping the first line of what failed it in its user attributes: Optuna no
    longer keeps a failed trial's reason, and the line that stops the tune must say it."""
    try:
        return run(*args)
    except (DetectionError, RuntimeError) as e:
        trial.set_user_attr("error", (str(e).splitlines() or [type(e).__name__])[0][:300])
        raise


def spawn_workers(join_argv: list[str], count: int) -> list[subprocess.Popen]:
    """`count` more processes on this machine, each running trials of the study (--join); they
    import this very package, installed or run from a checkout."""
    top = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (top, os.environ.get("PYTHONPATH")) if p)}
    return [subprocess.Popen([sys.executable, "-m", "detection.cli.tune", *join_argv, "--join"], env=env)
            for _ in range(count)]


def best_changes(optuna, study) -> tuple[dict, object]:
    """(changes, trial) of the best finished trial; a pruned trial never wins (its AP is partial)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError("tune: no trial finished; give it more time (--time) or shorter trials (--trial-minutes)")
    best = max(complete, key=lambda t: t.value)
    return dict(best.user_attrs.get("changes") or {}), best


def tune(cfg: dict, opts: TuneOptions, space: dict, space_source: str, name: str,
         join_argv: list[str] | None = None) -> TuneFolder:
    """The whole tune: the study's trials (with `opts.workers - 1` more processes), then, for the
    leader, best.yaml, the report and the final training on all training images."""
    optuna = optuna_module()
    if opts.trial_minutes is not None and opts.trial_minutes < MIN_TRIAL_MINUTES:
        raise ConfigError(f"--trial-minutes {opts.trial_minutes:g}: a trial must train and validate at least once; "
                          f"give {MIN_TRIAL_MINUTES:g} or more")
    check_space(space, cfg, space_source)
    folder = TuneFolder(Path(cfg["output_dir"]) / "tune" / name)
    folder.dir.mkdir(parents=True, exist_ok=True)
    split, classes = carve_tuning_split(cfg, folder, opts.holdout, opts.seed)
    study = make_study(optuna, opts, folder, name)
    check_study_is_this_tune(study, cfg, space, folder)
    state = None if opts.join else State(folder.state, opts.minutes)
    if not opts.join:
        fail_orphans(optuna, study)
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial({}, user_attrs={"baseline": True})
    deadline = tuning_deadline(study, state, opts)
    if opts.join and deadline <= time.time():
        log.info("tune --join: the study %s has no trial time left (or no leader yet)", name)
        return folder
    minutes = trial_plan(study, opts, deadline)
    ctx = {"folder": folder, "split": split, "classes": classes, "minutes": minutes, "checks": opts.checks,
           "state": state, "finished": (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)}
    workers = spawn_workers(join_argv or [], opts.workers - 1) if opts.workers > 1 and not opts.join else []
    try:
        run_trials(optuna, study, cfg, space, ctx, opts, deadline)
    finally:
        for w in workers:
            w.wait()
    if opts.join:
        return folder
    changes, best = best_changes(optuna, study)
    start = final_start(folder, best, opts.final_from)
    final = final_config(cfg, changes, folder, state, start)
    save_config(with_values(final, {"name": f"{name}_best", "output_dir": cfg["output_dir"], "model.init": ""}),
                folder.best_yaml)  # the configuration itself: it trains from the pretrained weights as it is
    write_report(optuna, study, folder, best, None)
    state.save(phase="final")
    if opts.final:
        results = train_final(final, folder, state)
        write_report(optuna, study, folder, best, results, start)
    state.save(phase="done")
    return folder


def final_start(folder: TuneFolder, best, final_from: str) -> str:
    """The run folder the final training starts from (`model.init`) with --final-from trial: the
    best trial's, which learned the data with the very configuration the final trains; "" (the
    configured pretrained weights, the default) otherwise, or when the trial's weights are not on
    this machine (a trial another machine ran, or weights removed)."""
    if final_from != "trial":
        return ""
    trial = folder.trial(best.number)
    if not trial.has_checkpoint():
        log.info("tune: the best trial's weights (%s) are not here: the final training starts from the configured "
                 "pretrained weights", trial.dir)
        return ""
    log.info("tune: the final training starts from trial %d's weights (%s)", best.number, trial.checkpoint())
    return str(trial.dir)


def final_config(cfg: dict, changes: dict, folder: TuneFolder, state: State, init: str = "") -> dict:
    """The best configuration on the user's own splits, with the budget's remaining minutes,
    starting from `init` (a trial's run folder) when one is given."""
    left = max(0.0, (state.seconds - state.spent()) / 60.0)
    final = with_values(resolve(cfg, changes), {"name": folder.final.name, "output_dir": str(folder.dir),
                                                 "train.time": round(max(left, 0.1), 2), "resume": ""})
    return with_values(final, {"model.init": init}) if init else final


def train_final(final: dict, folder: TuneFolder, state: State) -> dict | None:
    """Train best.yaml's configuration into `final/` (resuming a final training that was stopped)."""
    if state.seconds - state.spent() < 30:
        log.info("tune: no time left for the final training; train %s yourself", folder.best_yaml)
        return None
    if folder.final.last.is_file() and folder.final.config.is_file():  # its own config, its own time
        final = load_config(folder.final.config, {"resume": str(folder.final.dir)})
    elif folder.final.dir.exists():
        shutil.rmtree(folder.final.dir)  # a final training stopped before its first checkpoint
    log.info("tune: training the best configuration on all training images for %.1f min -> %s",
             final["train"]["time"], folder.final.dir)
    _, results = train(final)
    return results or None  # a final training that had already ended returns no new validation
