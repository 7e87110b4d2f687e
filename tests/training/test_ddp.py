"""DDP through torchrun: 2 processes, gloo backend, on the CPU; on one node or as two."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, timeout: int, nodes: int = 1):
    """2 processes: one launcher with 2 of them, or `nodes=2` launchers (as on 2 machines) with 1 each."""
    port = str(free_port())
    launchers = []
    for node in range(nodes):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nodes), "--node_rank", str(node),
               "--nproc_per_node", str(2 // nodes), "--master_addr", "127.0.0.1", "--master_port", port,
               str(HERE / "ddp_worker.py"), *map(str, args)]
        # one thread per process either way (torchrun sets it only for nproc_per_node > 1):
        # thread count changes the order of float sums inside the kernels
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        launchers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    for p in launchers:
        _, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]


@pytest.mark.slow
def test_two_processes_sync_and_validate_like_one(tmp_path, synthetic_root):
    torchrun("train", tmp_path, synthetic_root / "coco", timeout=600)
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2

    # the real per-epoch training losses: different shards give different local means,
    # the sync makes them equal on every rank, and that mean is what results.csv holds
    epochs = list(zip(ranks[0]["stats"], ranks[1]["stats"], strict=True))
    assert len(epochs) == 2
    rows = list(csv.DictReader((tmp_path / "ddp" / "results.csv").open()))
    assert len(rows) == 2
    for (r0, r1), row in zip(epochs, rows, strict=True):
        assert r0["local"]["loss"] != r1["local"]["loss"]
        assert r0["synced"] == r1["synced"]
        for k in ("loss", "loss_classifier", "loss_box_reg"):
            assert r0["synced"][k] == pytest.approx((r0["local"][k] + r1["local"][k]) / 2, rel=1e-12)
        assert float(row["loss"]) == pytest.approx(r0["synced"]["loss"], abs=1e-5)

    # gradients were reduced: both ranks hold the same parameters after each epoch, and
    # validate with the same BatchNorm statistics
    assert len(ranks[0]["weights"]) == 2 and ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["AP"] == ranks[1]["AP"]  # every rank gets rank 0's evaluation
    runs = [p for p in (tmp_path).iterdir() if p.is_dir()]
    assert [p.name for p in runs] == ["ddp"]  # one run folder: only rank 0 writes

    # the same checkpoint, evaluated by one process, gives the distributed validation's AP
    from detection.cli import evaluate as eval_cli

    eval_cli.main(["--ckpt", str(tmp_path / "ddp" / "weights" / "last.pt"), "--out", str(tmp_path / "single")])
    single = json.loads((tmp_path / "single" / "results.json").read_text())
    assert single["coco"]["AP"] == pytest.approx(ranks[0]["AP"], abs=1e-12)


@pytest.mark.slow
def test_two_nodes_train_like_one_node_with_two_processes(tmp_path, synthetic_root):
    # each "machine" has LOCAL_RANK 0: files must follow the global rank, and the result
    # must not depend on how the ranks are spread over machines
    digests = []
    for nodes in (1, 2):
        out = tmp_path / f"nodes{nodes}"
        out.mkdir()
        torchrun("train", out, synthetic_root / "coco", timeout=600, nodes=nodes)
        ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in range(2)]
        assert [p.name for p in out.iterdir() if p.is_dir()] == ["ddp"]
        digests.append([r["weights"] for r in ranks])
    assert digests[0] == digests[1]


def test_a_nan_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    # were rank 1 alone to skip its backward, rank 0 would wait in the all-reduce (a hang)
    torchrun("nonfinite", tmp_path, timeout=180)
    ranks = [json.loads((tmp_path / f"nonfinite{i}.json").read_text()) for i in range(2)]
    assert ranks[0]["skipped"] == ranks[1]["skipped"] == 1
    assert ranks[0]["iters"] == ranks[1]["iters"] == 4
    assert ranks[0]["w"] == ranks[1]["w"] != [1.0, 1.0, 1.0]  # 3 steps applied, identically


def test_only_rank_0_logs_progress(monkeypatch):
    import logging

    from detection.cli.common import setup_logging

    root = logging.getLogger()
    before = root.level
    try:
        monkeypatch.setenv("RANK", "1")
        setup_logging()
        assert root.level == logging.WARNING
        monkeypatch.setenv("RANK", "0")
        setup_logging()
        assert root.level == logging.INFO
    finally:
        root.setLevel(before)
