"""inference/outputs.py: infer.py and `Detector.predict(save=...)` run one writer, so the same
options write the same files, byte for byte."""

import json
from pathlib import Path

import pytest

from detection import Detector, SaveOptions
from detection.cli import infer as infer_cli
from detection.errors import ConfigError
from detection.inference.predictor import class_indices
from tests.inference.test_model_out import _checkpoint, _images


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_detector_writes_what_infer_writes_for_the_same_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ckpt = _checkpoint(tmp_path / "run" / "tiny" / "weights" / "best.pt")
    _images(tmp_path / "data", 3)
    infer_cli.main(["--source", "data", "--ckpt", str(ckpt), "--score", "0.3", "--classes", "blob,0", "--max-det",
                    "5", "--save-json", "--save-txt", "--save-conf", "--save-crops", "--save-labels", "yolo",
                    "--rank", "2", "--out", "by_cli"])
    det = Detector.from_checkpoint(ckpt)
    options = SaveOptions(json=True, txt=True, conf=True, crops=True, labels="yolo", rank=2)
    results = det.predict("data", score=0.3, classes=["blob", 0], max_det=5, save=options, out="by_api")
    cli, api = _tree(tmp_path / "by_cli"), _tree(tmp_path / "by_api")
    assert any(name.endswith(".jpg") and "/" not in name for name in cli)  # the drawn images
    assert {"predictions.json", "to_label.txt"} <= cli.keys() and any(n.startswith("labels_yolo/") for n in cli)
    assert cli == api
    # what predict returns is what the files keep: the detections reaching the score
    kept = [p for p in json.loads(cli["predictions.json"]) if p["kept"]]
    assert sum(len(r) for r in results) == len(kept) and all(float(s) >= 0.3 for r in results for s in r.scores)
    assert det.saved_to == tmp_path / "by_api"


def test_one_class_filter_for_the_command_and_the_api():
    names = ["cell", "blob", "RBC"]
    assert class_indices("blob, 0", names) == class_indices(["blob", 0], names) == [1, 0]
    assert class_indices("RBC", names) == class_indices(2, names) == [2] and class_indices(None, names) is None
    for bad in ("dog", 3, [True]):
        with pytest.raises(Exception, match="is not a class of this model"):
            class_indices(bad, names)


def test_save_options_refuse_what_they_cannot_write():
    with pytest.raises(ConfigError, match="labels='pascal'"):
        SaveOptions(labels="pascal")
    with pytest.raises(ConfigError, match="rank=0"):
        SaveOptions(rank=0)
    with pytest.raises(ConfigError, match="needs track=True"):
        SaveOptions(line=(0, 0, 1, 1))
