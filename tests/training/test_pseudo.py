"""Adding classes without forgetting (model.keep_old_classes, training/pseudo.py): the old model's
pseudo-labels on the new training images, its unsure regions trained as neither object nor
background, never scored as ground truth, and the old classes' AP reported before and after."""

import json
import re

import numpy as np
import pytest
import torch

from detection.cli import train as train_cli
from detection.config import CONFIG_DIR, load_config
from detection.data.dataset import DetectionDataset
from detection.data.records import DatasetInfo, ImageRecord
from detection.errors import ConfigError
from detection.models.builders import build_model
from detection.training import pseudo
from detection.utils.yaml_io import yaml_load

from ..conftest import write_voc


def _record(boxes, labels, crowd=None, size=(100, 100)):
    n = len(labels)
    return ImageRecord(path="/data/a.jpg", width=size[0], height=size[1],
                       boxes=np.array(boxes, np.float32).reshape(-1, 4),
                       labels=np.array(labels, np.int64), iscrowd=np.array(crowd or [False] * n, bool),
                       difficult=np.zeros(n, bool), image_id=0)


def test_the_class_list_is_the_old_models_then_the_new_datas():
    records, names = pseudo.union_classes(["RBC", "WBC"], [_record([[0, 0, 9, 9], [5, 5, 20, 20]], [1, 2])],
                                          ["Platelets", "WBC"])
    assert names == ["RBC", "WBC", "Platelets"]
    assert records[0].labels.tolist() == [3, 2]  # Platelets is new, WBC is the old model's WBC


def test_sure_detections_become_boxes_unsure_ones_crowd_and_labelled_places_are_left_alone():
    names, old = ["RBC", "WBC", "Platelets"], ["RBC", "WBC"]
    r = _record([[60, 60, 80, 80]], [3])  # a labelled platelet
    dets = (np.array([[10, 10, 30, 30], [40, 10, 55, 30], [61, 61, 80, 80], [5, 70, 20, 90], [0, 0, 150, 5]],
                     np.float32),
            np.array([0.9, 0.3, 0.95, 0.1, 0.8], np.float32), np.array([1, 2, 1, 2, 2]))
    out, listing, counts = pseudo.add_pseudo_labels([r], names, old, [dets], {"RBC": 0.5, "WBC": 0.5})
    got = out[0]
    # RBC 0.9: a box; WBC 0.3 (over half its 0.5): an unsure crowd region; RBC 0.95 on the platelet:
    # left out; WBC 0.1: nothing; WBC 0.8 over the border: clipped to the image
    assert got.labels.tolist() == [3, 1, 2, 2] and got.iscrowd.tolist() == [False, False, True, False]
    assert np.allclose(got.boxes[-1], [0, 0, 100, 5])
    assert counts == {"pseudo": 2, "unsure": 1, "overlapping a label": 1}
    assert [e["kind"] for e in listing["/data/a.jpg"]] == ["pseudo", "unsure", "pseudo"]
    assert r.labels.tolist() == [3]  # the record read from the labels is not changed in place


def test_crowd_boxes_train_as_ignored_only_where_asked(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((64, 64, 3), 100, np.uint8))
    r = _record([[5, 5, 30, 30], [35, 35, 60, 60]], [1, 2], [False, True], size=(64, 64))
    r.path = str(tmp_path / "a.jpg")
    info = DatasetInfo(class_names=["a", "b"], cat_ids=[1, 2], source="t")
    kept = DetectionDataset([r], info, True, 64, 64, augment="none", ignore_crowd=True)[0][1]
    dropped = DetectionDataset([r], info, True, 64, 64, augment="none")[0][1]
    val = DetectionDataset([r], info, False, 64, 64, augment="none", ignore_crowd=True)[0][1]
    assert kept["labels"].tolist() == [1, -1] and dropped["labels"].tolist() == [1]
    assert val["labels"].tolist() == [1, 2]  # validation reads the labels as they are


def test_faster_rcnn_samples_an_ignored_region_as_neither_object_nor_background(tiny_model_cfg):
    """The RoI head's labels for proposals on a -1 box are -1, which its sampler never draws."""
    cfg = load_config(None, {"data": {"format": "voc", "root": "x"}, "model": tiny_model_cfg})
    model = build_model(cfg["model"], ["a"], verbose=False).train()
    heads = model.roi_heads
    gt = torch.tensor([[0.0, 0, 50, 50], [60, 60, 120, 120]])
    proposals = [torch.tensor([[1.0, 1, 50, 50], [61, 61, 119, 120], [0, 70, 30, 100]])]
    _, labels = heads.assign_targets_to_proposals(proposals, [gt], [torch.tensor([1, -1])])
    assert labels[0].tolist() == [1, -1, 0]
    pos, neg = heads.fg_bg_sampler(labels)
    assert pos[0].tolist() == [1, 0, 0] and neg[0].tolist() == [0, 0, 1]
    images = [torch.rand(3, 128, 128)]
    losses = model(images, [{"boxes": gt, "labels": torch.tensor([1, -1])}])
    assert all(torch.isfinite(v) for v in losses.values())


def test_keep_old_classes_needs_a_model_to_start_from():
    with pytest.raises(ConfigError, match="set model.init=runs/<name> too"):
        load_config(None, {"data": {"format": "voc", "root": "x"}, "model": {"keep_old_classes": True}})


def test_a_new_class_is_added_and_the_old_ones_are_pseudo_labelled_reported_and_never_scored(tmp_path, tiny_run,
                                                                                             monkeypatch, capsys):
    """The first run knows circle, square, triangle, cross; the new images label only star. The
    old model is made to see one sure circle and one unsure square on each new training image."""
    def seen(start, records, info, device):
        return [(np.array([[5, 5, 40, 40], [50, 50, 90, 90]], np.float32), np.array([0.99, 0.6 * t], np.float32),
                 np.array([1, 2])) for _ in records]

    t = pseudo.thresholds(torch.load(tiny_run / "weights" / "best.pt", weights_only=True))["square"]
    monkeypatch.setattr(pseudo, "old_detections", seen)
    root = tmp_path / "voc"
    write_voc(root, {f"i{k}": [("star", 10, 50, 40, 90, 0)] for k in range(4)}, size=(96, 96))
    write_voc(root, {f"v{k}": [("star", 20, 20, 70, 60, 0)] for k in range(2)}, split="val", size=(96, 96))
    train_cli.main(["--cfg", str(CONFIG_DIR / "voc_frcnn.yaml"), f"data.root={root}", "data.classes=[]",
                    "data.train_split=train", "data.val_split=val", f"output_dir={tmp_path}/runs", "name=r2",
                    "data.num_workers=0", "train.amp=none", f"model.init={tiny_run}", "model.keep_old_classes=true",
                    "train.epochs=1", "train.warmup_iters=1", "eval.bootstrap=0"])
    err = capsys.readouterr().err
    run = tmp_path / "runs" / "r2"
    saved = yaml_load((run / "config.yaml").read_text())
    assert saved["data"]["classes"] == ["circle", "square", "triangle", "cross", "star"]
    listing = json.loads((run / "pseudo_labels.json").read_text())
    assert len(listing) == 4 and all([e["kind"] for e in v] == ["pseudo", "unsure"] for v in listing.values())
    assert "4 boxes at its thresholds, 4 unsure regions" in err
    # validation counts only the two labelled stars: pseudo-labels are never ground truth
    assert re.search(r"^square +n/a +n/a +n/a +0 ", err, re.M) and re.search(r"^star +[0-9.]+ +[0-9.]+ +[0-9.]+ +2 ",
                                                                            err, re.M)
    f = json.loads((run / "forgetting.json").read_text())
    assert f["classes"] == ["circle", "square", "triangle", "cross"]
    assert set(f["before"]["per_class"]) == set(f["after"]["per_class"]) == set(f["classes"])
    assert "old classes on the old model's validation split" in err
    assert "[train]: 4 images (0 without boxes), 12 boxes: circle 4, square 4, star 4" in err
    # a resume trains on the same pseudo-labels, read back from the run (the old model is not asked again)
    monkeypatch.setattr(pseudo, "old_detections", None)
    train_cli.main([f"resume={run}", "train.epochs=2"])
    again = capsys.readouterr().err
    assert "[train]: 4 images (0 without boxes), 12 boxes: circle 4, square 4, star 4" in again
    (run / "pseudo_labels.json").unlink()
    with pytest.raises(SystemExit, match="pseudo_labels.json is missing"):  # one line, no traceback
        train_cli.main([f"resume={run}", "train.epochs=3"])


def test_the_old_models_detections_are_in_native_pixels_of_each_image(tiny_run):
    """old_detections runs the old model at its own input size and maps its boxes back to the
    images' pixels: the same boxes as the model's own output divided by the dataset's scale."""
    from detection.checkpoint import model_from_checkpoint
    from detection.data.dataset import read_split
    from detection.training.start import Start

    start = Start.read(str(tiny_run))
    cfg = load_config(base=start.ckpt["config"])
    records, info = read_split(cfg["data"], cfg["data"]["val_split"], False, list(start.ckpt["class_names"]))
    got = pseudo.old_detections(start, records, info, torch.device("cpu"))
    assert len(got) == len(records)
    for r, (boxes, scores, labels) in zip(records, got):
        assert boxes.shape == (len(scores), 4) and (boxes >= 0).all()
        assert (boxes[:, [0, 2]] <= r.width).all() and (boxes[:, [1, 3]] <= r.height).all()
        assert ((labels >= 1) & (labels <= len(start.ckpt["class_names"]))).all() and (scores > 0).all()
    m = start.model_cfg
    image, target = DetectionDataset(records, info, False, m["min_size"], m["max_size"], augment="none")[0]
    model = model_from_checkpoint(start.ckpt).eval()
    with torch.no_grad():
        out = model([image])[0]
    sy, sx = target["scale"]
    expected = (out["boxes"].numpy() / np.array([sx, sy, sx, sy], np.float32))
    expected[:, [0, 2]] = expected[:, [0, 2]].clip(0, records[0].width)
    expected[:, [1, 3]] = expected[:, [1, 3]].clip(0, records[0].height)
    keep = out["scores"].numpy() > 0
    assert np.allclose(got[0][0], expected[keep], atol=1e-3) and np.array_equal(got[0][2], out["labels"].numpy()[keep])
