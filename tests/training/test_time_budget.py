"""train.time: a run bounded by wall time, whatever pace the machine keeps.

The slow and fast machines are played by a fake clock that each training step advances by a
fixed amount, while the one short measurement the run starts from says the opposite.
"""

import copy
import csv
import logging

import pytest

import detection.training.engine as engine_module
import detection.training.time_budget as tb
import detection.training.trainer as trainer_module
from detection.config import load_config, with_values
from detection.training.schedule import Schedule
from detection.training.time_budget import RunClock, TimeBudget, share_lr_lambda, too_few_iterations


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _cfg(tmp_path, synthetic_root, tiny_model_cfg, **train):
    return load_config(None, {
        "name": "t", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "model": copy.deepcopy(tiny_model_cfg),
        "train": {"batch_size": 4, "warmup_iters": 2, "lr": 0.01, **train}})


def test_deadlines_split_what_is_left_by_the_stages_shares(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(tb, "clock", clock)
    b = TimeBudget(10, [1, 2])  # 600 s; stages of shares 1 : 2
    clock.now += 30  # set-up
    b.enter(0)
    assert b.deadline == [pytest.approx(30 + 570 / 3)]
    clock.now += 370  # the first stage ran long: the second gets what is left, never more than the budget
    b.enter(1)
    assert b.deadline[1] == pytest.approx(600) and b.stage_share(1) == 0.0
    clock.now += 100
    assert b.stage_share(1) == pytest.approx(0.5)
    restored = TimeBudget(10, [1, 2], RunClock(elapsed=500))
    restored.load_state_dict(b.state_dict())
    assert restored.deadline == b.deadline and restored.stage_share(1) == pytest.approx(0.5)
    restored.extend(20, 1)  # a resume with train.time=20: the current stage's deadline moves
    assert restored.deadline[1] == pytest.approx(1200)


def test_the_lr_follows_the_share_of_time_used(monkeypatch):
    t = load_config(None, {"data": {"format": "voc", "root": "x"},
                           "train": {"milestones": [0.8], "warmup_factor": 0.1}})["train"]
    clock = FakeClock()
    monkeypatch.setattr(tb, "clock", clock)
    budget = TimeBudget(1, [1])
    budget.enter(0)
    f = share_lr_lambda(t, 10, [0.8], budget)
    clock.now += 47.9
    assert f(50) == pytest.approx(1.0)  # one process: the clock itself, read at each step
    clock.now += 0.2
    assert f(50) == pytest.approx(0.1)
    ddp = TimeBudget(1, [1], live=False)  # under DDP: the share rank 0 broadcast after the last step
    ddp.enter(0)
    f = share_lr_lambda(t, 10, [0.8], ddp)
    ddp.follow(0.1)
    assert f(5) == pytest.approx(0.1 * 0.5 + 0.5)  # warming up, by iterations (10) before time (25%)
    ddp.follow(0.79)
    assert f(5) == pytest.approx(1.0) and f(50) == pytest.approx(1.0)  # a quarter of the time ends any warmup
    ddp.follow(0.8)
    assert f(50) == pytest.approx(0.1)
    cosine = share_lr_lambda({**t, "scheduler": "cosine", "min_lr_ratio": 0.0}, 0, [], ddp)
    ddp.follow(0.5)
    assert cosine(100) == pytest.approx(0.5)


def test_too_few_iterations_are_said_with_what_helps():
    msg = too_few_iterations(7, 80, 2, 17.1)
    assert "about 7 iterations" in msg and "80 classes" in msg and "train.time=" in msg and "model.min_size" in msg
    assert too_few_iterations(2000, 3, 10, 0.3) is None


def _play_machine(monkeypatch, measured: float, real: float):
    """The run's first measurement says `measured` s a step; every real step takes `real` s.
    Returns the (run seconds, lr) of every step."""
    clock = FakeClock()
    monkeypatch.setattr(tb, "clock", clock)
    monkeypatch.setattr(trainer_module, "measure_step_time", lambda *a, **k: measured)
    steps = []
    real_step = engine_module._backward_and_step

    def step(parts, *args):
        out = real_step(parts, *args)
        clock.now += real
        steps.append((clock.now, parts.optimizer.param_groups[0]["lr"]))
        return out

    monkeypatch.setattr(engine_module, "_backward_and_step", step)
    return clock, steps


def _rows(run):
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


def test_a_slower_machine_still_ends_within_its_budget(tmp_path, synthetic_root, tiny_model_cfg, monkeypatch,
                                                      caplog):
    """Measured 0.1 s a step (about 600 in 60 s), but each takes 5 s: the run stops before the
    step that would cross the deadline, in the middle of its second epoch."""
    clock, steps = _play_machine(monkeypatch, measured=0.1, real=5.0)
    start = clock.now
    with caplog.at_level(logging.INFO):
        run, results = trainer_module.train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=1.0, epochs=4,
                                                 milestones=[0.8]))
    assert len(steps) == 12  # steps end at 5, 10, ... 60 s: the 13th would end at 65
    rows = _rows(run)
    assert float(rows[-1]["elapsed_s"]) <= 60.0 and steps[-1][0] - start <= 60.0
    assert [int(r["epoch"]) for r in rows] == [1, 2] and sum(1 for r in rows if r.get("AP")) == 1
    assert steps[-1][1] == pytest.approx(0.001)  # decayed at 80% of the time: 48 s, whatever was planned
    assert [lr for t, lr in steps if t - start < 48][-1] == pytest.approx(0.01)
    assert results["num_images"] == 8


def test_a_faster_machine_uses_its_budget_and_decays_at_its_share(tmp_path, synthetic_root, tiny_model_cfg,
                                                                  monkeypatch, caplog):
    """The first measurement caught a burst of load (12 s a step: 5 steps, 'too few'); the true
    pace is 1 s. The run trains its whole minute, and the lr drops at 48 s, not after 4 steps."""
    clock, steps = _play_machine(monkeypatch, measured=12.0, real=1.0)
    start = clock.now
    with caplog.at_level(logging.INFO):
        run, _ = trainer_module.train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=1.0, epochs=4,
                                           milestones=[0.8], batch_size=2))
    assert "too few to learn much" in caplog.text  # said at the start, from the estimate
    assert 58 <= len(steps) <= 60 and 59.0 <= steps[-1][0] - start <= 60.0
    first_decayed = next(t - start for t, lr in steps if lr < 0.005)
    assert 48.0 <= first_decayed <= 50.0
    assert all(lr == pytest.approx(0.01) for t, lr in steps[3:] if t - start < 48)  # after warmup, before 80%
    rows = _rows(run)
    assert len(rows) == 5 and int(rows[-1]["step"]) == len(steps)  # 5 epochs of 12


def test_a_save_that_eats_the_time_left_still_ends_in_one_validation(tmp_path, synthetic_root, tiny_model_cfg,
                                                                      monkeypatch):
    """CI: the last full epoch ended with time for another step, the save after it took the rest,
    and the loop, asking again, ended the run with no validation at all. The stage's end is
    decided once after the steps, and the validation and the loop both follow it."""
    from detection.checkpoint import Checkpointer

    clock, steps = _play_machine(monkeypatch, measured=1.0, real=1.0)
    start, real_save, slow = clock.now, Checkpointer.save, [5.5]

    def save(self, path, snapshot):
        clock.now += slow.pop() if slow else 0.0  # the first save hits a slow disk
        return real_save(self, path, snapshot)

    monkeypatch.setattr(Checkpointer, "save", save)
    run, results = trainer_module.train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=0.2, epochs=4,
                                             warmup_iters=0))
    rows = _rows(run)
    assert [bool(r.get("AP")) for r in rows] == [False, True] and results["num_images"] == 8
    assert len(steps) == 7 and steps[-1][0] - start == pytest.approx(12.5)  # one step into epoch 2, then stop


def test_a_timed_run_stops_within_its_budget(tmp_path, synthetic_root, tiny_model_cfg):
    """The real clock: 24 s, validation after it."""
    run, results = trainer_module.train(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=0.4, epochs=12,
                                             milestones=[0.8], eval_every=1))
    rows = _rows(run)
    last = rows[-1]
    assert sum(1 for r in rows if r.get("AP")) == 1  # one validation, after the budget
    assert float(last["train_end_s"]) <= 0.4 * 60 * 1.05, last  # the steps end within the budget (set-up included)
    training = float(last["elapsed_s"]) - float(last["val_s"])
    assert training <= 0.4 * 60 * 1.1, last  # and so does the run, but for its validation
    assert float(last["lr"]) == pytest.approx(0.001)  # the milestone at 80% of the time was reached
    assert results["num_images"] == 8


def test_a_low_estimate_never_shortens_the_warmup(tmp_path, synthetic_root, tiny_model_cfg):
    """A start measured under load estimated 42 iterations on BCCD; a warmup cut to fit them
    reached the full lr at iteration 41 and the losses blew up once the machine sped up."""
    cfg = _cfg(tmp_path, synthetic_root, tiny_model_cfg, time=2.0, warmup_iters=100)
    schedule = Schedule(cfg, RunClock(), {"plan": [42]})
    assert schedule.warmup(0) == 100
    shared = Schedule(with_values(cfg, {"train.warmup_fraction": 0.1}), RunClock(), {"plan": [42]})
    assert shared.warmup(0) == 4  # asked for a share: of the estimate, capped


def test_time_validations_come_at_equal_shares_and_a_hook_can_stop_the_run(tmp_path, synthetic_root,
                                                                           tiny_model_cfg, monkeypatch):
    """train.time_validations=3: validations at the first epoch ends past 25%, 50% and 75% of
    the time, and at the end; on_validation sees each, and raising there stops the run (a
    pruned tuning trial) with last.pt on disk."""
    clock, steps = _play_machine(monkeypatch, measured=1.0, real=1.0)
    start, seen = clock.now, []
    run, results = trainer_module.train(
        _cfg(tmp_path, synthetic_root, tiny_model_cfg, time=1.0, epochs=4, time_validations=3),
        on_validation=lambda epoch, res: seen.append((epoch, clock.now - start, res["coco"]["AP"])))
    rows = _rows(run)
    validated = [int(r["epoch"]) for r in rows if r.get("AP")]
    assert validated == [e for e, _, _ in seen] and len(seen) == 4
    shares = [t / 60.0 for _, t, _ in seen]
    assert [int(s * 4) for s in shares[:3]] == [1, 2, 3] and all(s - k / 4 < 0.11 for s, k in zip(shares, (1, 2, 3)))
    assert [ap for *_, ap in seen][-1] == results["coco"]["AP"]

    class Pruned(Exception):
        pass

    def prune(epoch, res):
        raise Pruned(epoch)

    with pytest.raises(Pruned):
        trainer_module.train(with_values(_cfg(tmp_path, synthetic_root, tiny_model_cfg, time=1.0, epochs=4,
                                              time_validations=3), {"name": "p"}), on_validation=prune)
    assert (tmp_path / "runs" / "p" / "weights" / "last.pt").is_file()
    assert len(_rows(tmp_path / "runs" / "p")) == 2  # stopped at the first check: 2 epochs of 6 steps, 12 s < 15 s


def test_a_budget_spent_in_set_up_exits_with_one_line_not_zero(tmp_path, synthetic_root, tiny_model_cfg, monkeypatch):
    """train.time=0.75 on a loaded machine: set-up took 45 s of 45, nothing was trained, no last.pt,
    and the run exited 0."""
    from detection.cli import train as train_cli

    clock = FakeClock()
    monkeypatch.setattr(tb, "clock", clock)

    def slow_measure(*a, **k):
        clock.now += 50.0  # set-up (here the step measurement) eats the whole budget
        return 0.5

    monkeypatch.setattr(trainer_module, "measure_step_time", slow_measure)
    cfg = _cfg(tmp_path, synthetic_root, tiny_model_cfg, time=0.75)
    with pytest.raises(SystemExit) as e:
        train_cli.main(["--cfg", _write(tmp_path, cfg)])
    msg = str(e.value.code)
    assert "ran out in set-up" in msg and "train.time=" in msg and "\n" not in msg
    assert not list((tmp_path / "runs").rglob("last.pt"))


def _write(tmp_path, cfg) -> str:
    from detection.config import save_config

    path = tmp_path / "cfg.yaml"
    save_config(cfg, path)
    return str(path)


def test_a_stage_shorter_than_its_warmup_reaches_the_full_lr_by_a_quarter_of_its_time(monkeypatch):
    """train.time=3 held about 17 iterations; the 100-iteration warmup filled them, the lr peaked
    at 0.0016 of 0.02 and the model learnt nothing."""
    clock = FakeClock()
    monkeypatch.setattr(tb, "clock", clock)
    budget = TimeBudget(3.0, [1])
    budget.enter(0)
    t = {"scheduler": "multistep", "gamma": 0.1, "warmup_factor": 0.001, "warmup_fraction": 0.0}
    f = share_lr_lambda(t, 100, [0.8], budget)
    lrs = []
    for it in range(17):  # 17 steps over the 180 s
        lrs.append(f(it))
        clock.now += 180 / 17
    assert lrs[0] < 0.01 and max(lrs) == pytest.approx(1.0)
    assert next(i for i, v in enumerate(lrs) if v == pytest.approx(1.0)) <= 5  # by 25% of the time
    # a long stage keeps its 100 iterations: by time the warmup would end later than that
    budget = TimeBudget(60.0, [1])
    budget.enter(0)
    f = share_lr_lambda(t, 100, [0.8], budget)
    clock.now += 30  # 30 s of 3600 in
    assert f(50) == pytest.approx(0.001 * 0.5 + 0.5, rel=1e-3)
    # the explicit key wins: warmup_fraction's iterations, no time cap
    f = share_lr_lambda({**t, "warmup_fraction": 0.5}, 100, [0.8], budget)
    clock.now += 1800
    assert f(10) < 0.2


def test_the_hint_names_warmup_fraction_and_not_auto_size_when_it_is_on():
    msg = too_few_iterations(17, 3, 3, 10.0, auto_size=True)
    assert "train.warmup_fraction" in msg and "auto_size" not in msg
    assert "model.auto_size=true" in too_few_iterations(17, 3, 3, 10.0, auto_size=False)


def test_the_progress_eta_follows_the_budget():
    from detection.utils.progress import Progress

    bar = Progress(range(1000), "epoch 1/1", stream=open("/dev/null", "w"), time_left=lambda: 42.0)
    bar.done, bar.t0 = 10, bar.t0 - 100  # 10 s an item: the epoch would end in 2:45:00
    assert bar.line({}).endswith("ETA 0:42")
    plain = Progress(range(1000), "epoch 1/1", stream=open("/dev/null", "w"))
    plain.done, plain.t0 = 10, plain.t0 - 100
    assert plain.line({}).endswith("ETA 2:45:00")
