"""Broken and hostile input to synthetic: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.bad_inputs import (
    ROOT,
    TINY,
)


@pytest.mark.slow
def test_ddp_start_on_a_fresh_clone_generates_the_synthetic_set_once(tmp_path):
    from tests.training.test_ddp import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(ROOT / "tools" / "train_det.py"), "--cfg",
           str(ROOT / "configs" / "demo.yaml"), f"data.root={tmp_path / 'synthetic'}", "data.synthetic.num_train=8",
           "data.synthetic.num_val=4", "data.synthetic.image_size=96", f"output_dir={tmp_path / 'runs'}", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "synthetic" / "coco" / "annotations" / "instances_train.json").is_file()
    assert not (tmp_path / "synthetic.tmp").exists()  # one generation, finished, no half-written copy
    assert len(json.loads((tmp_path / "synthetic" / "coco" / "annotations" / "instances_val.json").read_text())[
        "images"]) == 4
    assert len(list((tmp_path / "runs").glob("*/weights/last.pt"))) == 1
