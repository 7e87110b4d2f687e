"""train.time: a run planned by wall time, its schedule laid over the iterations that fit."""

import copy
import csv

import pytest

import detection.trainer as trainer_module
from detection.config import load_config
from detection.optim import lr_lambda, plan_iterations
from detection.trainer import Trainer


def test_plan_splits_what_is_left_by_the_stages_shares():
    # 10 minutes, 30 s of set-up and measuring, two stages of shares 1 : 2, 0.5 s per iteration
    assert plan_iterations(600, 30, [1, 2], 0, 0.5) == int(570 / 3 * 0.97 / 0.5)
    # the first stage ran long: the second gets what is left, never more than the budget
    assert plan_iterations(600, 400, [1, 2], 1, 0.5) == int(200 * 0.97 / 0.5)
    assert plan_iterations(600, 700, [1, 2], 1, 0.5) == 1  # over already: one iteration, then validation


def test_a_planned_schedule_decays_within_its_iterations():
    t = load_config(None, {"data": {"format": "voc", "root": "x"},
                           "train": {"milestones": [9, 11], "epochs": 12, "warmup_iters": 100,
                                     "warmup_fraction": 0.05}})["train"]
    f = lr_lambda(t, 52, 12, 100, run_epochs=12, total_iters=300)  # 300 iterations fit, not 12 epochs of 52
    assert f(224) == pytest.approx(1.0) and f(225) == pytest.approx(0.1) and f(275) == pytest.approx(0.01)
    assert f(15) == pytest.approx(1.0) and f(14) < 1  # warmup: 5% of the plan


def _cfg(tmp_path, synthetic_root, tiny_model_cfg, **train):
    return load_config(None, {
        "name": "t", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": copy.deepcopy(tiny_model_cfg),
        "train": {"batch_size": 4, "warmup_iters": 2, "lr": 0.01, **train}})


def test_plan_from_a_fake_clock_makes_a_partial_last_epoch(tmp_path, synthetic_root, tiny_model_cfg, monkeypatch):
    """24 images in batches of 4: 6 iterations an epoch. 60 s at a measured 2.5 s each -> 23 iterations."""
    clock = iter(range(0, 10_000, 1))  # one second per reading: set-up takes a few of them
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setattr(trainer_module, "measure_step_time", lambda *a, **k: 2.5)
    t = Trainer(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=1.0, epochs=4, milestones=[0.5]))
    t.setup()
    t.enter_stage(0)
    used = t.state.plan[0]
    assert 19 <= used <= 23  # (60 s - the seconds the fake clock has run) * 0.97 / 2.5
    assert t.stage_epochs(0) == -(-used // 6) and t.total_epochs == t.stage_epochs(0)
    t.state.epoch = t.total_epochs - 1
    assert t.epoch_limit() == used - 6 * (t.total_epochs - 1)  # the last epoch stops at the plan
    assert t.due_for_validation() is False
    t.state.epoch = t.total_epochs
    assert t.due_for_validation() is True
    t.after_train()


def test_a_plan_follows_the_pace_the_stage_keeps(tmp_path, synthetic_root, tiny_model_cfg, monkeypatch):
    """Measured 1 s an iteration, 60 s: 58 planned. The first epoch is not timed (kernels are built);
    the next two (12 iterations) take 36 s, 3 s each: what is left (14 s) holds 4 more, and the
    schedule is laid over 22. Past its decay the plan may shrink, never grow (the lr would rise)."""
    now = [0.0]
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(trainer_module, "measure_step_time", lambda *a, **k: 1.0)
    t = Trainer(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=1.0, epochs=4, milestones=[0.8]))
    t.setup()
    t.enter_stage(0)
    assert t.state.plan == [58] and t.total_epochs == 10
    t.state.epoch, t.state.step, now[0] = 1, 6, 10.0
    t.replan_stage(0)
    assert t.state.plan == [58]  # the first epoch only starts the clock
    for _ in range(18):
        t.parts.optimizer.step()
        t.parts.scheduler.step()
    lr_before = t.parts.optimizer.param_groups[0]["lr"]
    t.state.epoch, t.state.step, now[0] = 3, 18, 46.0
    t.replan_stage(0)
    assert t.state.plan == [22] and t.total_epochs == 4 and t.epoch_limit() == 4  # the last epoch: 4 of 6
    sched = t.parts.scheduler
    assert sched.last_epoch == 18 and t.parts.optimizer.param_groups[0]["lr"] == lr_before  # the step goes on
    assert sched.lr_lambdas[0](17) == pytest.approx(1.0) and sched.lr_lambdas[0](18) == pytest.approx(0.1)
    t.pace_start = (40.0, 6)  # now as if 0.5 s an iteration: 45 would fit, moving the decay at 18 to 36
    t.replan_stage(0)
    assert t.state.plan == [22] and sched.lr_lambdas[0](18) == pytest.approx(0.1)
    t.pace_start = (0.0, 6)  # slower: 21 fit, the decay moves to 17 and stays behind
    t.replan_stage(0)
    assert t.state.plan == [21] and sched.lr_lambdas[0](18) == pytest.approx(0.1)
    t.after_train()


def test_a_timed_run_stops_within_its_budget(tmp_path, synthetic_root, tiny_model_cfg):
    from detection.trainer import train

    run, results = train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=0.4, epochs=12, milestones=[0.8],
                              eval_every=1))
    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    last = rows[-1]
    plan = int(last["plan_iters"])
    assert int(last["step"]) == plan and len(rows) == -(-plan // 6)  # every planned iteration, no more
    assert sum(1 for r in rows if r.get("AP")) == 1  # one validation, after the budget
    training = float(last["elapsed_s"]) - float(last["val_s"])
    assert training <= 0.4 * 60 * 1.15, training  # the budget (set-up included), with the measuring noise
    assert float(last["lr"]) == pytest.approx(0.001)  # the milestone at 80% of the plan was reached
    assert results["num_images"] == 8
