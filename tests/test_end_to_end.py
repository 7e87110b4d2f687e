"""Generate a tiny synthetic set, train, evaluate, infer: the README's path, through the CLIs."""

import json
import os

import pytest
import torch
import yaml
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from detection.checkpoint import load_checkpoint
from detection.cli import evaluate as eval_cli
from detection.cli import infer as infer_cli
from detection.cli import train as train_cli
from detection.models.weights import cache_path


@pytest.mark.slow
def test_train_eval_infer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # a 'pretrained' MobileNetV2 in the hub cache: the real offline loading path, no download
    wfile = cache_path(MobileNet_V2_Weights.IMAGENET1K_V1)
    wfile.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(mobilenet_v2().state_dict(), wfile)

    from detection.config import CONFIG_DIR

    train_cli.main([
        "--cfg", str(CONFIG_DIR / "demo.yaml"), "name=e2e", "data.root=data/synthetic",
        "data.synthetic.num_train=12", "data.synthetic.num_val=6", "data.synthetic.image_size=128",
        "data.num_workers=0", "model.min_size=128", "model.max_size=128", "train.epochs=2",
        "train.batch_size=4", "train.warmup_iters=2", "train.milestones=[1]",
    ])
    run = tmp_path / "runs" / "e2e"
    for f in ("config.yaml", "weights/last.pt", "weights/best.pt", "results.csv", "results.png"):
        assert (run / f).is_file(), f
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["classes"] == ["circle", "square", "triangle", "cross"]
    rows = (run / "results.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,stage,lr,") and "AP" in rows[0].split(",") and len(rows) == 3

    ckpt = load_checkpoint(run / "weights" / "best.pt")  # weights_only=True inside
    assert ckpt["class_names"] == saved["data"]["classes"] and ckpt["epoch"] in (1, 2)

    eval_cli.main(["--runs", "runs", "--save-pred"])  # no checkpoint given: the newest run's best
    report = json.loads((run / "eval" / "results.json").read_text())
    for f in ("report.md", "report.json", "confusion_matrix.png", "confusion_matrix.csv", "predictions.json"):
        assert (run / "eval" / f).is_file(), f
    # the saved predictions score the same through the file path
    gt = tmp_path / "data" / "synthetic" / "coco" / "annotations" / "instances_val.json"
    eval_cli.main(["--pred", str(run / "eval" / "predictions.json"), "--gt", str(gt), "--out", "from_files"])
    again = json.loads((tmp_path / "from_files" / "results.json").read_text())
    assert again["coco"] == report["coco"]
    assert set(report["coco"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"}
    assert [c["class"] for c in report["voc"]] == saved["data"]["classes"]

    img = tmp_path / "data" / "synthetic" / "coco" / "val" / "val_00000.jpg"
    infer_cli.main(["--image", str(img), "--conf", "0.0", "--save-json"])
    pred = tmp_path / "runs" / "predict" / "e2e"  # named after the model's run, never beside the input
    assert (pred / "val_00000.jpg").is_file() and not (img.parent / "val_00000_det.jpg").exists()
    dets = json.loads((pred / "predictions.json").read_text())
    assert json.loads((pred / "images.json").read_text())["images"][0]["width"] == 128
    assert all(d["category_name"] in saved["data"]["classes"] and d["file_name"] == "val_00000.jpg" for d in dets)


@pytest.mark.slow
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        train_cli.main(["--cfg", os.devnull, "data.format=voc", "data.root=nowhere"])
    # a relative data.root on the command line is relative to the current folder
    assert str(e.value).startswith(f"error: data.root={tmp_path}/nowhere does not exist")
    with pytest.raises(SystemExit) as e:
        train_cli.main(["--cfg", os.devnull, "data.format=voc", "data.root=x", "train.lr=fast"])
    assert str(e.value).startswith("config error: ") and "train.lr" in str(e.value)
    with pytest.raises(SystemExit) as e:
        eval_cli.main(["--runs", str(tmp_path / "none")])
    assert "no trained run" in str(e.value)


def test_infer_without_a_run_or_network_says_how_to_get_weights(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    cv2.imwrite("street.jpg", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--image", "street.jpg"])
    assert "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1" in str(e.value) and "fetch_weights" in str(e.value)
