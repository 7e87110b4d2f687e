"""Output details a new user reads: n/a where nothing was scored, which loss is which, a progress
line by time too, a lone validation shown as its value, a missing data.root, _base_ by name, and
hints that name the command the user has."""

import logging
import os
import sys

import pytest

from detection.config import ConfigError, load_config


def test_empty_size_buckets_print_na_not_minus_one():
    from detection.evaluation.evaluator import format_results, metric

    res = {"coco": {k: 0.5 for k in ("AP", "AP50", "AP75", "APs", "AR100")} | {"APm": -1.0, "APl": float("nan")},
           "coco_per_class": [{"class": "a", "AP": 0.5, "AP50": 0.6}], "voc": [{"class": "a", "AP": 0.5, "gt": 3,
                                                                              "dets": 4}],
           "voc_mAP": 0.5, "voc_metric": "voc07", "num_images": 2}
    text = format_results(res)
    assert "APm n/a  APl n/a" in text and "-1.000" not in text and "n/a: no ground-truth box of that size" in text
    assert metric(0.25) == "0.250" and metric(-1) == "n/a"


def test_progress_lines_come_by_time_as_well_as_by_count(monkeypatch, caplog):
    import detection.utils.progress as progress

    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    bar = progress.Progress(range(100), "epoch 1/2", every=20, stream=open(os.devnull, "w"), every_s=30)
    with caplog.at_level(logging.INFO, logger="detection.utils.progress"):
        for i, _ in enumerate(bar):
            now[0] += 7.0  # slow steps: 20 of them take 140 s
            bar.update(loss_last="1.0", loss_mean="1.2")
            if i == 9:
                break
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 5/100")  # at 35 s, not at item 20
    assert "loss_last 1.0  loss_mean 1.2" in lines[0]


def test_a_lone_validation_shows_its_value(tmp_path):
    import matplotlib.pyplot as plt

    from detection.training.results_log import plot_results

    (tmp_path / "results.csv").write_text("epoch,loss,AP\n1,1.5,\n2,1.2,\n3,1.0,0.4321\n")
    seen = {}
    real = plt.Figure.savefig

    def keep(fig, *a, **k):
        seen["texts"] = [t.get_text() for ax in fig.axes for t in ax.texts + [ax.title]]
        seen["ticks"] = [list(ax.get_xticks()) for ax in fig.axes if ax.get_title()]
        return real(fig, *a, **k)

    plt.Figure.savefig = keep
    try:
        plot_results(tmp_path / "results.csv", tmp_path / "results.png")
    finally:
        plt.Figure.savefig = real
    assert "0.432" in seen["texts"] and "AP  0.4321" in seen["texts"]
    assert all(ticks == [1, 2, 3] for ticks in seen["ticks"])  # the lone point's panel too: whole epochs


def test_a_wrong_data_root_says_the_folder_does_not_exist(tmp_path):
    from detection.data.dataset import read_split
    from detection.errors import DataError

    cfg = load_config(None, ["data.format=yolo", f"data.root={tmp_path / 'nope'}"])
    with pytest.raises(DataError, match=r"data.root=.*nope does not exist"):
        read_split(cfg["data"], "train", True)


def test_a_users_config_can_build_on_a_shipped_one(tmp_path):
    (tmp_path / "mine.yaml").write_text("_base_: bccd_frcnn.yaml\ntrain: {epochs: 2}\n")
    cfg = load_config(tmp_path / "mine.yaml")
    assert cfg["name"] == "bccd_frcnn" and cfg["train"]["epochs"] == 2 and cfg["data"]["classes"][0] == "RBC"
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: nothing_like_it.yaml\n")
    with pytest.raises(ConfigError, match=r"config file not found: .*nothing_like_it.yaml \(through `_base_`: "
                                          r".*a.yaml -> .*b.yaml -> .*nothing_like_it.yaml\)"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("train: {lrr: 1}\n")
    with pytest.raises(ConfigError, match=r"b.yaml: unknown config key `train.lrr`.*through `_base_`"):
        load_config(tmp_path / "a.yaml")


def test_hints_name_the_command_the_user_has(monkeypatch, tmp_path):
    import detection.utils.commands as commands

    monkeypatch.setattr(sys, "argv", ["/venv/bin/det-infer"])
    assert commands.command("train") == "det-train"
    monkeypatch.setattr(sys, "argv", ["tools/infer.py"])
    assert commands.command("train") == "python tools/train_det.py"  # this checkout has tools/
    monkeypatch.setattr(commands, "CHECKOUT_TOOLS", tmp_path / "no_tools")  # an installed wheel has none
    assert commands.command("data_check") == "det-data-check"
