"""Pre-labels and what to label next: infer.py --save-labels voc|coco|yolo and --rank N."""

import pytest

from detection.cli import infer as infer_cli
from detection.config import load_config
from detection.data.dataset import read_split
from detection.inference.labeling import uncertainty

from .test_model_out import _checkpoint, _images


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("run") / "tiny" / "weights" / "best.pt")


def test_uncertainty_is_highest_for_scores_near_a_half():
    assert uncertainty([0.5]) == pytest.approx(1.0)
    assert uncertainty([0.99, 0.02, 0.05]) < 0.1  # confident boxes and background: no doubt
    assert uncertainty([0.5, 0.4]) > uncertainty([0.5]) > uncertainty([0.9]) > 0
    assert uncertainty([]) == 0.0


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_prelabels_read_back_with_the_kept_boxes(tmp_path, ckpt, fmt):
    src = _images(tmp_path / "new" / "sub", n=3)
    out = tmp_path / "out"
    infer_cli.main(["--source", str(tmp_path / "new"), "--recursive", "--ckpt", str(ckpt), "--score", "0.3",
                    "--save-labels", fmt, "--save-json", "--no-save", "--out", str(out), "--rank", "2"])
    import json

    kept = [e for e in json.loads((out / "predictions.json").read_text()) if e["kept"]]
    assert kept, "the test model keeps some detections at 0.3"
    d = load_config(None, {"data": {"format": fmt, "root": str(out / f"labels_{fmt}")}})["data"]
    records, info = read_split(d, "train", True)  # the project's own reader and checks
    assert info.class_names == (["blob", "cell"] if fmt == "voc" else ["cell", "blob"])  # VOC keeps no order
    assert len(records) == 3 and sum(len(r.boxes) for r in records) == len(kept)  # every kept box, nothing else
    by_name = {r.path.split("/")[-1]: r for r in records}
    first = kept[0]
    r = by_name[first["file_name"].split("/")[-1]]
    x, y, w, h = first["bbox"]
    assert any(abs(b[0] - x) <= 1.5 and abs(b[2] - (x + w)) <= 1.5 for b in r.boxes.tolist())
    ranked = (out / "to_label.txt").read_text().splitlines()
    assert len(ranked) == 2 and all(p.startswith(str(src)) for p in ranked)
    rows = (out / "to_label.csv").read_text().splitlines()
    assert len(rows) == 4 and float(rows[1].split(",")[1]) >= float(rows[2].split(",")[1])


@pytest.mark.slow
def test_prelabels_of_a_folder_train(tmp_path, ckpt):
    _images(tmp_path / "new", n=6)
    out = tmp_path / "out"
    infer_cli.main(["--source", str(tmp_path / "new"), "--ckpt", str(ckpt), "--score", "0.3", "--save-labels", "coco",
                    "--no-save", "--out", str(out)])
    from detection.training.trainer import train

    run, results = train(load_config(None, {
        "name": "p", "output_dir": str(tmp_path / "runs"),
        "data": {"format": "coco", "root": str(out / "labels_coco"), "val_fraction": 0.34, "num_workers": 0},
        "model": {"weights": "none", "min_size": 96, "max_size": 128, "fpn_channels": 32},
        "train": {"epochs": 1, "warmup_iters": 1, "batch_size": 2}}))
    assert results["num_images"] >= 1 and (run / "weights" / "last.pt").is_file()
