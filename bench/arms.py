"""Training runs side by side for the benches that compare arms (`hard_sets.py`, `rounds.py`,
`add_classes.py`, `active_learning.py`): one core and one loader worker each, so the machine's
load falls on every arm alike, each logging to `<out>/<name>.log`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ONE_CORE = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start_run(cfg: Path, name: str, out: Path, overrides: list[str]) -> tuple[subprocess.Popen, Path]:
    """(process, run folder) of `tools/train_det.py --cfg cfg` with `overrides`, started now."""
    cmd = [sys.executable, str(REPO / "tools/train_det.py"), "--cfg", str(cfg), *overrides, "data.num_workers=1",
           f"name={name}", f"output_dir={out}"]
    log = open(out / f"{name}.log", "w")  # noqa: SIM115 - the child holds it; closed here once started
    try:
        return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ONE_CORE}), \
            out / name
    finally:
        log.close()


def wait(procs: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    """Wait for every run; stop the bench, naming the log, at the first that failed."""
    for name, (proc, run) in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"{name}: training failed (see {run.parent / (run.name + '.log')})")
