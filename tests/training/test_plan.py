"""The plan resolves the config once: the walk of the config through the modules while it sets a
run up stays short (each module entered at most twice), and a resume reads its config once."""

import importlib.util
import json
from pathlib import Path

import torch

import detection.config as config_module
from detection.cli import train as train_cli
from detection.config import CONFIG_DIR, load_config
from detection.training import plan

BENCH = Path(__file__).resolve().parents[2] / "bench" / "config_walk.py"


def _walker():
    spec = importlib.util.spec_from_file_location("config_walk", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_walk_counts_a_room_entered_again():
    walker = _walker()
    cfg = load_config(None, {"data": {"format": "voc", "root": "x"}})

    def round_trips(c):  # config.py entered three times from here
        for _ in range(3):
            config_module.flat_items(c)

    entered, counts = walker.walk(round_trips, cfg)
    assert counts["config.py"] == 3 and entered == ["config.py"] * 3


def test_prepare_enters_each_module_at_most_twice_with_the_config(tmp_path):
    cfg = load_config(CONFIG_DIR / "demo.yaml", [f"data.root={tmp_path}/data", f"output_dir={tmp_path}/runs",
                                                 "name=w", "model.weights=none", "data.synthetic.num_train=8",
                                                 "data.synthetic.num_val=4", "train.amp=none",
                                                 "data.synthetic.image_size=64", "model.min_size=64",
                                                 "model.max_size=64", "model.auto_size=false"])
    entered, counts = _walker().walk(plan.prepare, cfg, None, None, torch.device("cpu"))
    assert "data/dataset.py" in counts and "models/builders.py" in counts  # the walk sees the calls at all
    assert max(counts.values()) <= 2, counts


def test_a_new_run_writes_its_training_sets_fingerprint(tiny_run):
    fp = json.loads((tiny_run / "fingerprint.json").read_text())
    assert fp["images"] == 16 and fp["boxes"] > 0
    assert set(fp["class_shares"]) == {"circle", "square", "triangle", "cross"}


def test_a_resume_reads_the_runs_config_once(tiny_run, monkeypatch, capsys):
    calls = []
    checked = config_module.check_values
    monkeypatch.setattr(config_module, "check_values", lambda cfg: (calls.append(1), checked(cfg))[1])
    train_cli.main([f"resume={tiny_run}"])
    assert "nothing to do" in capsys.readouterr().err and len(calls) == 1
