"""bench/gpu_check.sh --dry-run: the one device command runs every step on the CPU at tiny
sizes, so it cannot rot between the sessions that are lent a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_dry_run_makes_every_file_it_promises(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    out = tmp_path / "out"
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert {"env.txt", "cuda_tests.txt", "summary.json", "summary.md", "gpu_check.log"} <= set(files)
    small = all(p.stat().st_size < 1 << 20 for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and small  # what a device call brings back
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] and [t["amp"] for t in summary["train"]] == ["none"]  # a CPU without bf16: one arm
    assert all(t["images_per_s"] > 0 and 0 <= t["loader_wait_share"] <= 1 for t in summary["train"])
    assert 0 <= summary["run"]["AP"] <= 1 and set(summary["infer_images_per_s"]) == {"batch_1", "batch_8"}
    assert "| train demo recipe |" in done.stdout and "skipped" in (out / "cuda_tests.txt").read_text()
