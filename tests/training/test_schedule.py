"""Learning-rate schedules that fit runs of any length: warmup as a share, milestones as fractions, cosine floor."""

import pytest

from detection.config import ConfigError, load_config
from detection.training.optim import fit_milestones, lr_lambda, warmup_length


def _tcfg(**kw):
    return load_config(None, {"data": {"format": "voc", "root": "x"}, "train": kw})["train"]


def test_warmup_is_a_share_of_the_run_with_a_cap():
    t = _tcfg(warmup_fraction=0.05, warmup_iters=100)
    assert warmup_length(t, 100, 200) == 10  # 160 images, 5 epochs of batch 4: not 100 of 200 iterations
    assert warmup_length(t, 100, 100_000) == 100  # the cap
    assert warmup_length(_tcfg(warmup_iters=100), 100, 50) == 49  # never the whole run
    f = lr_lambda(t, 40, 5, 100)
    assert f(0) == pytest.approx(0.001) and f(10) == pytest.approx(1.0) and f(5) < 1


@pytest.mark.parametrize("iters_per_epoch,epochs", [(1, 3), (7, 2), (40, 5), (500, 12)])
@pytest.mark.parametrize("scheduler", ["multistep", "cosine"])
def test_schedules_of_any_length_reach_their_decay(iters_per_epoch, epochs, scheduler):
    t = _tcfg(scheduler=scheduler, milestones=[0.7, 0.9], warmup_fraction=0.1, warmup_iters=1000, min_lr_ratio=0.05)
    f = lr_lambda(t, iters_per_epoch, epochs, t["warmup_iters"])
    total = iters_per_epoch * epochs
    peak = max(f(i) for i in range(total))
    last = f(total - 1)
    assert peak > 0.5
    if scheduler == "cosine":
        assert last == pytest.approx(0.05, abs=0.05 + 1.0 / total)  # ends near the floor, never below it
        after_warmup = range(warmup_length(t, t["warmup_iters"], total), total + 5)
        assert min(f(i) for i in after_warmup) >= 0.05 - 1e-9
    elif total >= 10:
        assert last == pytest.approx(0.01)  # both milestones passed: gamma squared
        assert f(int(0.7 * total) - 1) == pytest.approx(1.0)


def test_fraction_milestones_follow_the_whole_run_across_stages():
    t = _tcfg(milestones=[0.5], warmup_iters=0)
    # a second stage of epochs 4..8 of an 8-epoch run: the run's midpoint is the stage's start
    f = lr_lambda(t, 10, 4, 0, start_epoch=4, run_epochs=8)
    assert f(0) == pytest.approx(1.0)  # passed before the stage: a milestone belongs to the stage it falls in
    g = lr_lambda(t, 10, 6, 0, start_epoch=2, run_epochs=8)
    assert g(19) == pytest.approx(1.0) and g(20) == pytest.approx(0.1)  # epoch 4 = 2 epochs into this stage


@pytest.mark.parametrize("bad", [[0], [1.5], [-0.2], [True]])
def test_milestones_are_epochs_or_fractions(bad):
    with pytest.raises(ConfigError, match="train.milestones"):
        _tcfg(milestones=bad)


def test_milestones_past_a_short_run_are_scaled_to_it():
    """train.epochs=3 under the default [8, 11]: the lr used to end at its peak, unsaid."""
    fitted, note = fit_milestones([8, 11], 3)
    assert fitted == [2.0, 2.75] and "train.milestones [8, 11]" in note and "3-epoch" in note
    f = lr_lambda(_tcfg(milestones=[8, 11], warmup_iters=0), 10, 3, 0)
    assert f(19) == pytest.approx(1.0) and f(20) == pytest.approx(0.1) and f(29) == pytest.approx(0.01)
    assert fit_milestones([8, 11], 12) == ([8, 11], None)  # within the run: as given
    assert fit_milestones([0.7, 0.9], 3) == ([0.7, 0.9], None)  # fractions fit any run


def test_the_schedule_lays_out_stages_alone_and_continues_from_its_state(monkeypatch):
    """Stages in epochs, the lr per stage, and (train.time) the estimates and deadlines a resume continues."""
    import detection.training.time_budget as tb
    from detection.training.schedule import Schedule
    from detection.training.time_budget import RunClock

    base = {"data": {"format": "voc", "root": "x"}}
    cfg = load_config(None, {**base, "train": {"stages": [{"epochs": 2}, {"epochs": 3, "lr": 0.002}],
                                               "milestones": [4], "warmup_iters": 0}})
    s = Schedule(cfg, RunClock(), iters_per_epoch=10)
    assert not s.timed and [s.stage_end(0), s.stage_end(1), s.stage_start(1)] == [2, 5, 2]
    assert not s.stage_done(0, 1) and s.stage_done(0, 2) and not s.run_over(0, True) and s.run_over(1, True)
    assert s.due_for_validation(1, 5, True) and s.due_for_validation(0, 2, False)  # eval_every: 1
    assert s.lr_lambda(1)(0) == 1.0 and s.lr_lambda(1)(20) == pytest.approx(0.1)  # run epoch 4 = 2 into stage 2
    assert s.total_epochs(7) == 7  # never fewer than the epochs done
    # the trainer calls these whatever the run: planned by epochs, they do and add nothing
    s.epoch_break(), s.save_took(3.0)
    assert s.after_step(0, False, "cpu", 1) == (False, False) and s.after_step(0, True, "cpu", 1) == (False, True)
    assert s.steps_ended_row(12.0) == {} and s.progress_row(0, 5, 12.0) == {} and s.time_left(0) is None

    now = [100.0]
    monkeypatch.setattr(tb, "clock", lambda: now[0])
    timed = load_config(None, {**base, "train": {"time": 1.0, "epochs": 1}})
    s = Schedule(timed, RunClock(), iters_per_epoch=10)
    s.enter(0, lambda: 0.5, num_classes=3)  # 60 s at 0.5 s a step
    assert s.timed and s.plan == [120] and s.stage_epochs(0) == 12
    now[0] += 30
    saved = s.state_dict()
    again = Schedule(timed, RunClock(elapsed=30), saved, stage=0, iters_per_epoch=10)
    again.enter(0, lambda: pytest.fail("a planned stage is not measured again"), num_classes=3)
    assert again.plan == [120] and again.budget.deadline == s.budget.deadline
    assert again.budget.stage_share(0) == pytest.approx(0.5)
    assert not again.due_for_validation(0, 6, False) and again.due_for_validation(0, 6, True)  # timed: after the last
    assert again.steps_ended_row(31.04) == {"train_end_s": 31.0}
    assert again.progress_row(0, 7, 31.0) == {"plan_iters": 120, "step": 7, "elapsed_s": 31.0}
    again.save_took(31.0)  # a save longer than what is left: the next step would end past the deadline
    assert again.after_step(0, False, "cpu", 1) == (True, False)
