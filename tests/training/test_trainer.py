"""The trainer's safety nets and precision options, on tiny data."""

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from detection.checkpoint import load_checkpoint, model_from_checkpoint
from detection.config import load_config
from detection.training.engine import NonFiniteLossError, StepOptions, TrainParts, train_one_epoch
from detection.training.trainer import train

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def tiny_cfg(tmp_path, synthetic_root, tiny_model_cfg, **train_kw):
    return load_config(None, {
        "name": "t", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": copy.deepcopy(tiny_model_cfg),
        "train": {"epochs": 2, "batch_size": 4, "warmup_iters": 2, "milestones": [], "lr": 0.01, **train_kw},
    })


class FakeDetector(nn.Module):
    """Returns a loss dict like a detector; `bad` steps return NaN."""

    def __init__(self, bad=()):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.bad, self.calls = set(bad), 0

    def forward(self, images, targets):
        self.calls += 1
        loss = (self.w * 100).pow(2).sum()
        return {"loss_a": loss * float("nan") if self.calls in self.bad else loss}


def fake_loader(n):
    return [([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])] * n


def _opt(model):
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)


def test_non_finite_steps_are_skipped_then_stop():
    model = FakeDetector(bad={2, 3})
    opt, sched = _opt(model)
    out = train_one_epoch(TrainParts(model, opt, sched), fake_loader(5), CPU, StepOptions(max_nonfinite=3))
    assert out["skipped_nonfinite"] == 2 and torch.isfinite(model.w).all()
    model = FakeDetector(bad={2, 3, 4})
    opt, sched = _opt(model)
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row.*lower train.lr"):
        train_one_epoch(TrainParts(model, opt, sched), fake_loader(5), CPU, StepOptions(max_nonfinite=3))


def test_non_finite_steps_in_a_row_are_counted_across_epochs():
    """A diverged run of two-step epochs never had three in a row inside one epoch."""
    model = FakeDetector(bad={2, 3, 4})
    opt, sched = _opt(model)
    parts, opts = TrainParts(model, opt, sched), StepOptions(max_nonfinite=3)
    first = train_one_epoch(parts, fake_loader(2), CPU, opts)  # step 1 good, 2 bad
    assert first["nonfinite_streak"] == 1
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):  # steps 3, 4: the row reaches 3
        train_one_epoch(parts, fake_loader(2), CPU, opts, start_step=2, nonfinite_streak=first["nonfinite_streak"])
    fine = FakeDetector(bad={2})
    opt, sched = _opt(fine)
    again = train_one_epoch(TrainParts(fine, opt, sched), fake_loader(3), CPU, opts, nonfinite_streak=2)
    assert again["nonfinite_streak"] == 0  # a good step ends the row


def test_clipping_bounds_the_gradient_norm():
    model = FakeDetector()
    opt, sched = _opt(model)
    out = train_one_epoch(TrainParts(model, opt, sched), fake_loader(2), CPU, StepOptions(clip_grad_norm=1.0))
    assert out["grad_norm"] > 1.0  # the norm before clipping, as logged
    assert torch.linalg.vector_norm(model.w.grad) <= 1.0 + 1e-6


def test_gradient_scaler_path_unscales_before_clipping():
    # the fp16 path's order (scale, unscale, clip, step) checked with torch's CPU scaler:
    # a scaled run must apply the same clipped update as an unscaled one
    plain, scaled = FakeDetector(), FakeDetector()
    for model, scaler in ((plain, None), (scaled, torch.amp.GradScaler("cpu", init_scale=2.0**10))):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
        train_one_epoch(TrainParts(model, opt, sched, scaler), fake_loader(3), CPU, StepOptions(clip_grad_norm=1.0))
    assert not torch.equal(plain.w, torch.ones(3))
    torch.testing.assert_close(scaled.w, plain.w)


@pytest.mark.slow
def test_bf16_on_cpu_trains_and_predicts(tmp_path, synthetic_root, tiny_model_cfg):
    run, res = train(tiny_cfg(tmp_path, synthetic_root, tiny_model_cfg, epochs=1, amp="bf16"))
    assert res["num_images"] == 8 and (run / "weights" / "best.pt").is_file()
    rows = (run / "results.csv").read_text().splitlines()
    assert "nan" not in rows[1].split(",")[3]  # a finite mean loss


def test_sync_bn_on_cpu_processes_is_a_clear_error():
    from detection.config import ConfigError
    from detection.training.trainer import check_sync_bn

    with pytest.raises(ConfigError, match="train.sync_bn=true needs CUDA.*set train.sync_bn=false"):
        check_sync_bn(True, 2, torch.device("cpu"))
    check_sync_bn(True, 2, torch.device("cuda", 0))
    check_sync_bn(True, 1, torch.device("cpu"))  # one process: nothing to synchronise, nothing converted
    check_sync_bn(False, 2, torch.device("cpu"))


def test_adamw_is_built_with_the_parameter_groups(tiny_model_cfg, default_cfg):
    from detection.models.builders import build_model
    from detection.training.optim import build_optimizer

    model = build_model(tiny_model_cfg, ["a"], verbose=False)
    opt = build_optimizer(model, {**default_cfg["train"], "optimizer": "adamw"}, 1e-3, 0.1)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) > 1
    assert {g["lr"] for g in opt.param_groups} == {1e-3, 1e-4}  # heads, and the trunk at backbone_lr_mult


def test_deterministic_switch_asks_torch_for_deterministic_kernels():
    from detection.training.trainer import seed_everything

    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        a = torch.rand(3)
        seed_everything(0, deterministic=True)
        assert torch.equal(a, torch.rand(3))
    finally:
        torch.use_deterministic_algorithms(False)


def test_validation_images_with_boxes_go_to_tensorboard(synthetic_root):
    from detection.data.dataset import get_dataset
    from detection.evaluation.evaluator import build_validation
    from detection.training.results_log import log_val_images

    cfg = load_config(None, {"data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0}})
    _, ev = build_validation(get_dataset(cfg, train=False), cfg["eval"], 2, 0, torch.device("cpu"))
    ev.add(0, [[10, 10, 60, 60], [5, 5, 20, 20]], [0.9, 0.1], [1, 1])  # the second is under the score bar
    ev.add(1, [], [], [])

    class Writer:
        images = []

        def add_image(self, tag, img, step, dataformats):
            self.images.append((tag, img.copy(), step))

    w = Writer()
    log_val_images(w, ev, step=3)
    assert [(tag, step) for tag, _, step in w.images] == [("val/image0", 3), ("val/image1", 3)]
    from detection.data.images import read_image

    drawn, plain = w.images[0][1], read_image(ev.records[0].path)
    assert drawn.shape == plain.shape and not (drawn == plain).all()  # a box was drawn
    assert (w.images[1][1] == read_image(ev.records[1].path)).all()  # nothing to draw


def test_fp16_on_cpu_is_a_clear_error():
    from detection.utils.precision import autocast

    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        autocast(torch.device("cpu"), "fp16")


def test_bf16_without_native_support_is_flagged(monkeypatch):
    from detection.utils import precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: False)
    assert "emulated and slower than fp32" in precision.amp_warning(cpu, "bf16")
    assert precision.amp_warning(cpu, "none") is None
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    assert precision.amp_warning(cpu, "bf16") is None


def test_amp_auto_picks_by_device_and_measurement(monkeypatch):
    from detection.utils import precision

    cpu, timed = torch.device("cpu"), []

    def time_step(seconds):
        return lambda amp: timed.append(amp) or seconds[amp]

    monkeypatch.setattr(precision, "bf16_is_native", lambda device: False)
    assert precision.choose_amp(cpu, time_step({}))[0] == "none" and timed == []  # emulated: not even timed
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: True)
    assert precision.choose_amp(cpu, time_step({"none": 1.0, "bf16": 0.6}))[0] == "bf16"
    amp, why = precision.choose_amp(cpu, time_step({"none": 1.0, "bf16": 0.95}))
    assert amp == "none" and "1.00 s an iteration in fp32, 0.95 s in bf16" in why  # a tie goes to fp32
    assert timed == ["none", "bf16", "none", "bf16"]
    for supported, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert precision.choose_amp(torch.device("cuda", 0), time_step({}))[0] == expected


def test_amp_auto_is_resolved_before_training_and_pinned(tmp_path, synthetic_root, tiny_model_cfg):
    from detection.training.trainer import Trainer

    t = Trainer(tiny_cfg(tmp_path, synthetic_root, tiny_model_cfg, epochs=1, amp="auto"))
    t.setup()
    chosen = t.tcfg["amp"]
    assert chosen in ("none", "bf16") and t.cfg["train"]["amp"] == chosen
    assert load_config(str(t.run.config), {})["train"]["amp"] == chosen  # resume and eval see the choice
    t.log.close()


@pytest.mark.slow
def test_ema_weights_differ_and_are_the_ones_in_best(tmp_path, synthetic_root, tiny_model_cfg):
    run, _ = train(tiny_cfg(tmp_path, synthetic_root, tiny_model_cfg, epochs=1, ema=True, ema_tau=2.0))
    last, best = load_checkpoint(run / "weights" / "last.pt"), load_checkpoint(run / "weights" / "best.pt")
    key = "roi_heads.box_predictor.cls_score.weight"
    ema_weights = {k.removeprefix("module."): v for k, v in last["ema"].items()}
    assert not torch.equal(last["model"][key], ema_weights[key])
    assert torch.equal(best["model"][key], ema_weights[key])
    # predicting from last.pt (eval_det, infer, export) uses the EMA weights its validation scored
    for ckpt in (last, best):
        assert torch.equal(model_from_checkpoint(ckpt).state_dict()[key], ema_weights[key])


@pytest.mark.slow
def test_early_stopping_stops(tmp_path, synthetic_root, tiny_model_cfg, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        run, _ = train(tiny_cfg(tmp_path, synthetic_root, tiny_model_cfg, epochs=5, lr=0.0, patience=1))
    rows = (run / "results.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and "early stopping" in caplog.text  # epoch 2 did not beat epoch 1: lr is 0


def read_rows(path):
    """results.csv rows without the timing columns, which differ between any two runs."""
    import csv

    with open(path) as f:
        timing = ("images_per_s", "epoch_s", "val_s", "elapsed_s")
        return [{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader(f)]


def run_ok(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd[-3:])} failed:\n{r.stderr[-3000:]}"


def _train_cmd(tmp_path, synthetic_root, name, extra=()):
    return [sys.executable, str(ROOT / "tools" / "train_det.py"), "--cfg", str(ROOT / "configs" / "demo.yaml"),
            f"name={name}", f"output_dir={tmp_path / 'runs'}", "data.format=coco",
            f"data.root={synthetic_root / 'coco'}", "data.num_workers=0", "model.weights=none",
            "model.min_size=128", "model.max_size=128", "model.fpn_channels=32", "train.epochs=3",
            "train.batch_size=4", "train.warmup_iters=3", "train.milestones=[2]", "train.ckpt_every=2",
            "train.ema=true", "train.ema_tau=3", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, synthetic_root):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run_ok(_train_cmd(tmp_path, synthetic_root, "whole"), env)
    whole = load_checkpoint(tmp_path / "runs" / "whole" / "weights" / "last.pt")

    proc = subprocess.Popen(_train_cmd(tmp_path, synthetic_root, "killed"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "runs" / "killed" / "weights" / "last.pt"
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if last.is_file():
            ck = load_checkpoint(last)
            if ck["step"] >= 4 and ck["iter_in_epoch"] > 0:  # mid-epoch, after a periodic save
                proc.send_signal(signal.SIGKILL)
                killed_at = ck["step"]
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the run ended before it could be killed mid-epoch"
    assert load_checkpoint(last)["epoch"] < 3

    run_ok(_train_cmd(tmp_path, synthetic_root, "ignored", [f"resume={tmp_path / 'runs' / 'killed'}"]), env)
    resumed = load_checkpoint(last)
    assert resumed["epoch"] == whole["epoch"] == 3 and resumed["step"] == whole["step"]
    for k, v in whole["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    for k, v in whole["ema"].items():
        assert torch.equal(v, resumed["ema"][k]), k
    rows, whole_rows = (read_rows(tmp_path / "runs" / n / "results.csv") for n in ("killed", "whole"))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]  # continued as if never stopped
    assert rows == whole_rows  # losses, lr and AP alike
    assert not (tmp_path / "runs" / "ignored").exists()


def test_cuda_oom_becomes_a_message_with_the_knobs():
    from detection.training.trainer import TrainingOOMError, oom_hint

    with pytest.raises(TrainingOOMError, match=r"train.batch_size=8 .*model.min_size=480 .*last checkpoint is kept"):
        with oom_hint(8, {"min_size": 480, "max_size": 640}):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_the_progress_line_says_which_loss_is_the_last_and_which_the_mean(caplog):
    """Without a terminal the epoch's line names both: the last step's loss and the epoch's mean."""
    import logging

    model = FakeDetector()
    opt, sched = _opt(model)
    with caplog.at_level(logging.INFO, logger="detection.utils.progress"):
        train_one_epoch(TrainParts(model, opt, sched), fake_loader(3), CPU, StepOptions(), desc="epoch 1/1")
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1 3/3")][0]
    last = float(line.split("loss_last ")[1].split()[0])
    mean = float(line.split("loss_mean ")[1].split()[0])
    assert last < mean  # the loss falls over the three steps: the last is below the mean
