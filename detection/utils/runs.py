"""A run folder as a value: where each of a run's files lives, said here and only here.

    runs/<name>/config.yaml            the resolved config
                split.json             the train/val lists of a hash split
                fingerprint.json       the training set's numbers (data/fingerprint.py)
                results.csv, .png      one row per epoch
                weights/last.pt        every epoch (and Ctrl-C, train.ckpt_every)
                weights/best.pt        the best validation AP
                weights/best.onnx ...  exported files
                eval/, eval-2/ ...     one folder per evaluation, never overwritten

    runs/tune/<name>/study.db          the Optuna study (trials, their params and reports)
                     tune.json         the budget and the time used (a resume continues it)
                     tune_split.json   the tuning split, carved from the training images
                     trials/trial_N/   each trial's run (weights kept for the best trial only)
                     best.yaml         the best configuration, ready to train
                     final/            the best configuration trained on all training images
                     trials.csv, history.png, importance.png, report.md

Every command that takes a model takes the same four things (a run folder, a `.pt`, an
`.onnx`, a `.torchscript`); `model_file` turns each into (file, kind, run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, OutputError

EXPORT_SUFFIXES = {".onnx": "onnx", ".torchscript": "torchscript", ".xml": "openvino"}


MAX_PART = 120  # characters of a file or folder name made from a class or a source name


def safe_part(name: str, fallback: str = "unnamed") -> str:
    """One file or folder name made from a name that comes from data (a class name in an
    exported file's metadata, a video or stream's name): separators, control characters and
    a leading dot become `_`, so `../..`, `/etc` or `C:x` stay one name inside the output
    folder; the rest of the name is kept, so crops of `traffic light` still go to `traffic light/`."""
    text = "".join("_" if c in '/\\:*?"<>|' or ord(c) < 32 or ord(c) == 127 else c for c in str(name)).strip()
    if text.startswith("."):
        text = "_" + text[1:]
    return text[:MAX_PART] or fallback


def score_file(export: Path) -> Path:
    """`<file>.eval.json`: the validation score tools/export.py leaves beside an exported file."""
    return export.with_name(export.name + ".eval.json")


@dataclass(frozen=True)
class Run:
    """The folder `<output_dir>/<name>` of one training run."""

    dir: Path

    @property
    def weights(self) -> Path:
        return self.dir / "weights"

    @property
    def last(self) -> Path:
        return self.weights / "last.pt"

    @property
    def best(self) -> Path:
        return self.weights / "best.pt"

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def split(self) -> Path:
        return self.dir / "split.json"

    @property
    def pseudo_labels(self) -> Path:
        return self.dir / "pseudo_labels.json"

    @property
    def fingerprint(self) -> Path:
        return self.dir / "fingerprint.json"

    @property
    def results_csv(self) -> Path:
        return self.dir / "results.csv"

    @property
    def results_png(self) -> Path:
        return self.dir / "results.png"

    @property
    def benchmark_md(self) -> Path:
        return self.dir / "benchmark.md"

    @property
    def benchmark_csv(self) -> Path:
        return self.dir / "benchmark.csv"

    @property
    def name(self) -> str:
        return self.dir.name

    def checkpoint(self) -> Path:
        """best.pt, else last.pt (a run stopped before its first validation)."""
        return self.best if self.best.is_file() else self.last

    def has_checkpoint(self) -> bool:
        return self.best.is_file() or self.last.is_file()

    def new_eval_dir(self) -> Path:
        """`eval/`, then `eval-2/`, ...: an evaluation never overwrites or mixes with another."""
        return new_run_dir(self.dir, "eval")

    @classmethod
    def of_file(cls, path: Path) -> Run | None:
        """The run a file in `<run>/weights/` belongs to, else None."""
        path = Path(path)
        return cls(path.parent.parent) if path.parent.name == "weights" else None


@dataclass(frozen=True)
class TuneFolder:
    """The folder `<output_dir>/tune/<name>` of one tuning study (tools/tune.py)."""

    dir: Path

    @property
    def study_db(self) -> Path:
        return self.dir / "study.db"

    @property
    def state(self) -> Path:
        return self.dir / "tune.json"

    @property
    def split(self) -> Path:
        return self.dir / "tune_split.json"

    @property
    def best_yaml(self) -> Path:
        return self.dir / "best.yaml"

    @property
    def trials_csv(self) -> Path:
        return self.dir / "trials.csv"

    @property
    def history_png(self) -> Path:
        return self.dir / "history.png"

    @property
    def importance_png(self) -> Path:
        return self.dir / "importance.png"

    @property
    def report_md(self) -> Path:
        return self.dir / "report.md"

    @property
    def trials(self) -> Path:
        return self.dir / "trials"

    def trial(self, number: int) -> Run:
        return Run(self.trials / f"trial_{number:03d}")

    @property
    def final(self) -> Run:
        return Run(self.dir / "final")


def new_run_dir(output_dir: str | Path, name: str) -> Path:
    """`<output_dir>/<name>`, or `<name>-2`, `<name>-3`... when taken: a run never overwrites another.

    mkdir is atomic, so two runs started at once in one folder get different folders."""
    base = Path(output_dir)
    try:
        base.mkdir(parents=True, exist_ok=True)
        for i in range(1, 10_000):
            p = base / (name if i == 1 else f"{name}-{i}")
            try:
                p.mkdir()
                return p
            except FileExistsError:
                continue
    except OSError as e:
        raise OutputError(f"cannot create a folder in {output_dir}: {e.strerror or e}; choose a writable "
                          "output_dir (or --out)") from None
    raise OutputError(f"no free folder for {name} in {base}; choose another name")


def newest_run(output_dir: str | Path = "runs") -> Run:
    """The most recently written run folder that has a checkpoint."""
    from .commands import command

    runs = [Run(p.parent) for p in Path(output_dir).glob("*/weights") if Run(p.parent).has_checkpoint()]
    if not runs:
        raise CheckpointError(f"no trained run under {output_dir}/: train one with `{command('train')} --cfg ...`, "
                              "or pass --ckpt (a run folder, .pt, .onnx or .torchscript file)")
    return max(runs, key=lambda r: r.weights.stat().st_mtime)


def model_file(path: str | Path | None, runs: str | Path = "runs") -> tuple[Path, str, Run | None]:
    """(file, kind, run) of what a user passed as a model: a run folder (its best.pt, else
    last.pt), a checkpoint, an `.onnx` or `.torchscript` file; None: the newest run under `runs`.
    kind is "checkpoint", "onnx", "torchscript" or "openvino" (an IR .xml with its .bin); run is None
    for a file outside a run folder."""
    if path is None:
        run = newest_run(runs)
        return run.checkpoint(), "checkpoint", run
    p = Path(path)
    if p.is_dir():
        run = Run(p)
        if not run.has_checkpoint():
            raise CheckpointError(f"{p} is a folder without weights/best.pt or weights/last.pt: pass a run folder "
                                  "(runs/<name>), a .pt, .onnx or .torchscript file")
        return run.checkpoint(), "checkpoint", run
    if not p.is_file():
        raise CheckpointError(f"model not found: {p} (a run folder, .pt, .onnx or .torchscript file)")
    return p, EXPORT_SUFFIXES.get(p.suffix.lower(), "checkpoint"), Run.of_file(p)


def file_size(path: Path) -> int:
    """Bytes of a model file, with an OpenVINO .xml's .bin."""
    path = Path(path)
    extra = path.with_suffix(".bin") if path.suffix == ".xml" else None
    return path.stat().st_size + (extra.stat().st_size if extra is not None and extra.is_file() else 0)


def resume_checkpoint(resume: str | Path) -> tuple[Path, Run]:
    """(last.pt, run) of what `resume=` names: a run folder or a checkpoint in one."""
    p = Path(resume)
    run = Run(p) if p.is_dir() else Run(p.parent.parent)
    return (run.last if p.is_dir() else p), run
