"""Broken and hostile input to trainer: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from detection.config import load_config
from detection.data.images import ImageReadError
from tests.bad_inputs import (
    KILL_AFTER_SAVE,
)


def test_failing_validation_keeps_the_epochs_training(tmp_path, monkeypatch, synthetic_root, tiny_model_cfg):
    from detection.training import trainer

    cfg = load_config(None, {"output_dir": str(tmp_path / "runs"), "model": tiny_model_cfg,
                             "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
                             "train": {"epochs": 1, "warmup_iters": 1, "milestones": []}})

    def broken(self, row):
        raise ImageReadError("cannot decode image: val_00003.jpg")

    monkeypatch.setattr(trainer.Trainer, "validate", broken)
    with pytest.raises(ImageReadError):
        trainer.train(cfg)
    last = next((tmp_path / "runs").glob("*/weights/last.pt"))
    assert torch.load(last, weights_only=True)["epoch"] == 1


@pytest.mark.slow
def test_results_csv_keeps_ap_columns_when_epoch_1_is_not_validated(tmp_path, synthetic_root, tiny_model_cfg):
    from detection.training.trainer import train

    cfg = load_config(None, {"output_dir": str(tmp_path / "runs"), "model": tiny_model_cfg,
                             "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
                             "train": {"epochs": 2, "eval_every": 1000, "warmup_iters": 1, "milestones": []}})
    run, _ = train(cfg)
    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["AP"] == "" and float(rows[1]["AP"]) >= 0 and "voc_mAP" in rows[1]


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [4, 5, 8])  # saves: step 1, step 2, before val, [best], last, ...
def test_a_run_killed_at_any_save_resumes_to_the_uninterrupted_runs_weights_and_rows(uninterrupted, kill_after):
    """24 images in batches of 12: two steps an epoch. Killed during the last validation the run
    was reported finished and never scored its last epoch; killed between last.pt and best.pt,
    best.pt was never written; killed before its results.csv row, the row was lost."""
    import csv

    import torch

    from detection.checkpoint import load_checkpoint
    from detection.config import save_config, with_values
    from detection.training.trainer import train

    root, cfg, whole = uninterrupted
    name = f"cut{kill_after}"
    save_config(with_values(cfg, {"name": name}), root / f"{name}.yaml")
    (root / "kill.py").write_text(KILL_AFTER_SAVE)
    done = subprocess.run([sys.executable, str(root / "kill.py"), str(root / f"{name}.yaml"), str(kill_after)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == -9, done.stderr[-2000:]
    cut = root / "runs" / name
    _, results = train(load_config(cut / "config.yaml", [f"resume={cut}"]))
    assert results, "the resume had something left to do"
    for file in ("last.pt", "best.pt"):
        a, b = load_checkpoint(whole / "weights" / file), load_checkpoint(cut / "weights" / file)
        assert a["step"] == b["step"] and all(torch.equal(v, b["model"][k]) for k, v in a["model"].items()), file

    def rows(run):
        with open(run / "results.csv") as f:
            return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "images_per_s"}
                    for r in csv.DictReader(f)]

    assert rows(cut) == rows(whole) and len(rows(whole)) == 2
