"""The CUDA path (issue 34): training steps in fp32, bf16 and fp16 (the gradient scaler saved
and restored), detections and AP on CUDA against the CPU, exact resume on CUDA, DDP through
torchrun with NCCL, and the out-of-memory message. Marked `cuda`: on a machine without a GPU
every test here skips with one line; `bench/gpu_check.sh` runs them on a lent GPU."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from detection.checkpoint import load_checkpoint
from detection.config import load_config
from detection.training.trainer import train

if not torch.cuda.is_available():
    pytest.skip("no CUDA device here (bench/gpu_check.sh runs these on a GPU)", allow_module_level=True)
pytestmark = pytest.mark.cuda
ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, synthetic_root, tiny_model_cfg, name, device="cuda", **train_kw):
    return load_config(None, {
        "name": name, "output_dir": str(tmp_path / "runs"), "device": device, "deterministic": True,
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": copy.deepcopy(tiny_model_cfg),
        "train": {"epochs": 1, "batch_size": 4, "warmup_iters": 2, "milestones": [], "lr": 0.01, **train_kw}})


@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_a_training_epoch_on_cuda_learns_and_saves_its_scaler(tmp_path, synthetic_root, tiny_model_cfg, amp):
    run, res = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, f"amp_{amp}", amp=amp))
    last = load_checkpoint(Path(run) / "weights" / "last.pt")
    assert np.isfinite(res["coco"]["AP"]) and last["config"]["train"]["amp"] == amp
    assert all(v.device.type == "cpu" for v in last["model"].values())  # loads on any machine
    if amp == "fp16":  # the scaler's state travels with the checkpoint, so a resume keeps its scale
        assert last["scaler"] and last["scaler"]["scale"] > 0
    else:
        assert last["scaler"] is None


def test_detections_and_ap_on_cuda_match_the_cpu(tiny_run):
    from detection.deploy.scoring import evaluate_model
    from detection.inference.loading import open_model

    cpu, gpu = open_model(tiny_run, "cpu"), open_model(tiny_run, "cuda")
    images = [np.random.default_rng(k).integers(0, 255, (120, 160, 3), np.uint8) for k in range(3)]
    for a, b in zip(cpu.predictor.predict(images, score=0.05), gpu.predictor.predict(images, score=0.05)):
        assert len(a.boxes) == len(b.boxes)
        if len(a.boxes):
            assert np.abs(a.boxes - b.boxes).max() < 1.0 and (a.labels == b.labels).all()
    cfg = load_config(None, base=cpu.config)
    ap_cpu = evaluate_model(cpu, cfg)[0]["coco"]["AP"]
    ap_gpu = evaluate_model(gpu, cfg)[0]["coco"]["AP"]
    assert ap_gpu == pytest.approx(ap_cpu, abs=0.01)


def test_exact_resume_on_cuda_ends_with_the_uninterrupted_weights(tmp_path, synthetic_root, tiny_model_cfg,
                                                                   monkeypatch):
    """Deterministic algorithms on (`deterministic: true`): the same weights to the bit."""
    import detection.training.engine as engine_module
    from detection.errors import TrainingInterrupted

    whole, _ = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, "whole", epochs=2))
    real, steps = engine_module._backward_and_step, [0]

    def step(*args):
        out = real(*args)
        steps[0] += 1
        if steps[0] == 8:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(engine_module, "_backward_and_step", step)
    cfg = _cfg(tmp_path, synthetic_root, tiny_model_cfg, "cut", epochs=2)
    with pytest.raises((TrainingInterrupted, KeyboardInterrupt)):
        train(cfg)
    monkeypatch.setattr(engine_module, "_backward_and_step", real)
    cut = Path(tmp_path / "runs" / "cut")
    train(load_config(cut / "config.yaml", [f"resume={cut}"]))
    a, b = load_checkpoint(Path(whole) / "weights" / "last.pt"), load_checkpoint(cut / "weights" / "last.pt")
    differ = [k for k, v in a["model"].items() if not torch.equal(v, b["model"][k])]
    assert not differ, f"{len(differ)} of {len(a['model'])} tensors differ, e.g. {differ[:3]}"


def test_ddp_through_torchrun_with_nccl(tmp_path, synthetic_root):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29571",
           str(ROOT / "tools" / "train_det.py"), "--cfg", str(ROOT / "configs" / "demo.yaml"), "device=cuda",
           "name=ddp", f"output_dir={tmp_path / 'runs'}", f"data.root={synthetic_root / 'coco'}", "data.format=coco",
           "model.weights=none", "model.min_size=128", "model.max_size=160", "train.epochs=1", "data.num_workers=0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 processes" in done.stderr or "device cuda" in done.stderr
    assert (tmp_path / "runs" / "ddp" / "weights" / "last.pt").is_file()


def test_cuda_out_of_memory_names_the_batch_size():
    from detection.training.trainer import TrainingOOMError, oom_hint

    free, _ = torch.cuda.mem_get_info()
    with pytest.raises(TrainingOOMError, match="train.batch_size=64"):
        with oom_hint(64, {"min_size": 800, "max_size": 1333}):
            torch.empty(int(free * 4), dtype=torch.uint8, device="cuda")
    torch.cuda.empty_cache()


def test_a_cuda_checkpoint_resumes_on_the_cpu(tmp_path, synthetic_root, tiny_model_cfg):
    run, _ = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, "moves", epochs=1))
    cfg = load_config(Path(run) / "config.yaml", [f"resume={run}", "device=cpu", "train.epochs=2"])
    _, res = train(cfg)
    assert np.isfinite(res["coco"]["AP"])
