"""tools/convert_dataset.py: VOC -> COCO -> YOLO -> VOC keeps every box (to a pixel) and class."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.data.coco import read_coco
from detection.data.convert import convert
from detection.data.voc import read_voc
from detection.data.yolo import read_yolo
from detection.errors import DataError

REPO = Path(__file__).resolve().parents[2]
BCCD = REPO.parent / "shared" / "datasets" / "bccd_voc" / "BCCD"


def _voc(root, n=8):
    """A VOC set with fractional, difficult, degenerate and out-of-image boxes, a negative and a PNG."""
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        ext = ".png" if i == 3 else ".jpg"
        w, h = 90 + 7 * i, 70 + 3 * i
        cv2.imwrite(str(root / "JPEGImages" / f"im{i}{ext}"), rng.integers(0, 255, (h, w, 3), np.uint8))
        objs = "" if i == 5 else (
            f"<object><name>{'cat' if i % 2 else 'dog'}</name><difficult>{int(i == 2)}</difficult>"
            f"<bndbox><xmin>{3 + i}</xmin><ymin>5</ymin><xmax>{40 + i}</xmax><ymax>{h - 2}</ymax></bndbox></object>"
            "<object><name>bird</name><bndbox><xmin>20</xmin><ymin>10</ymin><xmax>20</xmax><ymax>30</ymax>"
            "</bndbox></object>"  # zero width: dropped, counted
            f"<object><name>cat</name><bndbox><xmin>50</xmin><ymin>30</ymin><xmax>{w + 40}</xmax><ymax>60</ymax>"
            "</bndbox></object>")  # past the right edge: clipped
        (root / "Annotations" / f"im{i}.xml").write_text(
            f"<annotation><filename>im{i}{ext}</filename><size><width>{w}</width><height>{h}</height></size>"
            f"{objs}</annotation>")
    (root / "ImageSets/Main/train.txt").write_text("".join(f"im{i}\n" for i in range(6)))
    (root / "ImageSets/Main/val.txt").write_text("im6\nim7\n")


def _same(a, b, tol=1.0):
    assert [os.path.basename(r.path) for r in a] == [os.path.basename(r.path) for r in b]
    for x, y in zip(a, b):
        assert x.labels.tolist() == y.labels.tolist() and (x.width, x.height) == (y.width, y.height)
        assert np.abs(x.boxes - y.boxes).max(initial=0) <= tol


def test_round_trip_keeps_boxes_and_classes(tmp_path):
    _voc(tmp_path / "voc")
    classes = ["bird", "cat", "dog"]
    convert("voc", "coco", str(tmp_path / "voc"), str(tmp_path / "coco"))
    convert("coco", "yolo", str(tmp_path / "coco"), str(tmp_path / "yolo"))
    convert("yolo", "voc", str(tmp_path / "yolo"), str(tmp_path / "back"))
    for split in ("train", "val"):
        orig, _ = read_voc(str(tmp_path / "voc"), split, classes)
        coco, _ = read_coco(str(tmp_path / f"coco/annotations/instances_{split}.json"), str(tmp_path / "coco" / split),
                            classes)
        yolo, _ = read_yolo(str(tmp_path / "yolo"), split, classes)
        back, info = read_voc(str(tmp_path / "back"), split, classes)
        _same(orig, coco, tol=1e-3)
        _same(orig, yolo, tol=1e-3)
        _same(orig, back)
        assert info.skipped["degenerate_boxes"] == 0  # the bad box was dropped once, at the first read
    assert read_voc(str(tmp_path / "voc"), "train")[0][2].difficult.any()
    convert("voc", "voc", str(tmp_path / "voc"), str(tmp_path / "vv"))
    assert read_voc(str(tmp_path / "vv"), "train")[0][2].difficult.any()  # VOC -> VOC keeps `difficult`
    assert os.path.samefile(tmp_path / "voc/JPEGImages/im0.jpg", tmp_path / "coco/train/im0.jpg")  # hard-linked


def test_convert_never_overwrites_and_leaves_nothing_half_written(tmp_path):
    _voc(tmp_path / "voc")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    with pytest.raises(DataError, match="not an empty folder"):
        convert("voc", "coco", str(tmp_path / "voc"), str(tmp_path / "taken"))
    assert (tmp_path / "taken" / "x").read_text() == "mine"
    # two different images that would share one VOC id: refused before anything is written
    yolo = tmp_path / "y"
    for split, value in (("train", 0), ("val", 255)):
        (yolo / "images" / split).mkdir(parents=True)
        cv2.imwrite(str(yolo / "images" / split / "a.jpg"), np.full((20, 20, 3), value, np.uint8))
    (yolo / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [x]\n")
    with pytest.raises(DataError, match="share the VOC id 'a'"):
        convert("yolo", "voc", str(yolo), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["taken", "voc", "y"]


def test_cli_one_line_error(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "tools/convert_dataset.py"), "--from", "voc", "--to", "coco",
                          str(tmp_path / "nothing"), str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr


@pytest.mark.skipif(not BCCD.is_dir(), reason="needs ../shared/datasets/bccd_voc")
def test_bccd_reads_the_same_from_its_three_copies(tmp_path):
    classes = ["RBC", "WBC", "Platelets"]
    convert("voc", "coco", str(BCCD), str(tmp_path / "coco"), splits=["train", "val"])
    convert("voc", "yolo", str(BCCD), str(tmp_path / "yolo"), splits=["train", "val"])
    for split in ("train", "val"):
        orig, _ = read_voc(str(BCCD), split, classes)
        _same(orig, read_coco(str(tmp_path / f"coco/annotations/instances_{split}.json"),
                              str(tmp_path / "coco" / split), classes)[0], tol=1e-3)
        _same(orig, read_yolo(str(tmp_path / "yolo"), split, classes)[0], tol=1e-3)
