"""Data as a new user brings it: phone-sized photos, Roboflow's COCO export, a config of another
format, and a data check that reads what training reads."""

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.cli.data_check import main as data_check
from detection.config import load_config
from detection.data.dataset import read_split
from detection.data.images import read_image
from detection.errors import DataError
from tests.conftest import write_voc

CHESS = ["white-king", "black-king"]


def _run(args):
    try:
        data_check(args)
    except SystemExit as e:
        return e.code
    return 0


def roboflow_coco(root: Path, size=(96, 64), splits=("train", "valid", "test")) -> Path:
    """Roboflow's COCO export: <split>/ with its images and _annotations.coco.json, and the
    project's name as category 0, the super-category of the others, with no box."""
    rng = np.random.default_rng(0)
    w, h = size
    for split in splits:
        (root / split).mkdir(parents=True)
        images, anns = [], []
        for i in range(4):
            name = f"{split}_{i}.jpg"
            cv2.imwrite(str(root / split / name), rng.integers(0, 255, (h, w, 3), np.uint8))
            images.append({"id": i, "file_name": name, "width": w, "height": h})
            anns.append({"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [5, 5, 30, 20], "area": 600,
                         "iscrowd": 0})
        cats = [{"id": 0, "name": "pieces", "supercategory": "none"}] + \
            [{"id": k + 1, "name": n, "supercategory": "pieces"} for k, n in enumerate(CHESS)]
        (root / split / "_annotations.coco.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": cats}))
    return root


def test_a_2048_px_photo_decodes_at_any_reduction(tmp_path):
    """Phone photos: the browser asked for a reduction of 3, which OpenCV has no mode for (KeyError: 3)."""
    path = tmp_path / "phone.jpg"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (1371, 2048, 3), np.uint8))
    for reduce, width in ((3, 1024), (5, 512), (7, 512), (9, 256), (1, 2048)):
        assert read_image(str(path), reduce=reduce).shape[1] == width


def test_the_data_check_and_its_page_take_a_2048_px_photo(tmp_path):
    root = write_voc(tmp_path / "voc", {"a": [("cat", 100, 100, 900, 700, 0)], "b": [("cat", 10, 10, 400, 300, 0)]},
                     split="train", size=(2048, 1371))
    write_voc(root, {"c": [("cat", 100, 100, 900, 700, 0)]}, split="val", size=(2048, 1371))
    assert _run(["--data", str(root), "--format", "voc", "--out", str(tmp_path / "out"), "--browse", "2"]) == 0
    assert (tmp_path / "out" / "report.md").is_file()
    assert len(list((tmp_path / "out").rglob("thumbs/*.jpg"))) == 3


def test_roboflow_coco_reads_with_no_setting_and_leaves_the_group_category_out(tmp_path, caplog):
    root = roboflow_coco(tmp_path / "chess")
    cfg = load_config("coco_frcnn.yaml", [f"data.root={root}"])  # train2017 / val2017 by name
    with caplog.at_level(logging.INFO):
        train, info = read_split(cfg["data"], cfg["data"]["train_split"], True)
        val, _ = read_split(cfg["data"], cfg["data"]["val_split"], False, info.class_names)
    assert info.class_names == CHESS  # not 'pieces'
    assert "left out 'pieces'" in caplog.text and "Roboflow's COCO layout" in caplog.text
    assert {Path(r.path).parent.name for r in train} == {"train"} and {Path(r.path).parent.name for r in val} == \
        {"valid"}
    assert sorted(int(x) for r in train for x in r.labels) == [1, 1, 2, 2]


def test_classes_given_keep_a_group_category_that_is_asked_for(tmp_path):
    root = roboflow_coco(tmp_path / "chess", splits=("train",))
    cfg = load_config("coco_frcnn.yaml", [f"data.root={root}", "data.classes=[pieces,white-king,black-king]"])
    _, info = read_split(cfg["data"], "train", True)
    assert info.class_names == ["pieces", *CHESS]


def test_images_not_where_the_annotations_say_name_the_setting(tmp_path):
    root = roboflow_coco(tmp_path / "chess", splits=("train", "valid"))
    cfg = load_config("coco_frcnn.yaml", [f"data.root={root}", "data.val_ann=valid/_annotations.coco.json",
                                          "data.val_images=elsewhere"])
    with pytest.raises(DataError, match=r"4 of them are not in .*elsewhere: point data.val_images \(or data.root\)"):
        read_split(cfg["data"], "val2017", False, CHESS)


def test_the_data_check_reads_the_splits_training_reads(tmp_path, capsys):
    """--data --format coco read train/val and said 'Training can start'; coco_frcnn.yaml then
    failed on train2017 / val2017. Both read Roboflow's folders now, and the test split is checked."""
    root = roboflow_coco(tmp_path / "chess")
    assert _run(["--data", str(root), "--format", "coco", "--out", str(tmp_path / "out"), "--browse", "0"]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    out = capsys.readouterr()
    assert "**Training can start.**" in report and "train = train2017, val = val2017" in out.out + out.err
    assert "validation images are also training images" not in out.out + out.err  # train is not checked twice
    assert "test/_annotations.coco.json" in report


@pytest.mark.parametrize("cfg_name, fmt", [("coco_frcnn.yaml", "yolo"), ("voc_frcnn.yaml", "yolo"),
                                           ("yolo_frcnn.yaml", "coco")])
def test_a_config_of_another_format_says_what_the_data_looks_like(tmp_path, cfg_name, fmt):
    if fmt == "yolo":
        root = tmp_path / "y"
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir()
        (root / "data.yaml").write_text("names: [a]\ntrain: images\nval: images\n")
        data_root = root / "data.yaml" if cfg_name == "coco_frcnn.yaml" else root
    else:
        data_root = roboflow_coco(tmp_path / "c", splits=("train",))
    cfg = load_config(cfg_name, [f"data.root={data_root}"])
    with pytest.raises(DataError, match=rf"looks like {fmt} data .* configs/{fmt}_frcnn.yaml.* data.format={fmt}"):
        read_split(cfg["data"], cfg["data"]["train_split"], True)


def test_thousands_of_group_categories_are_left_out_in_one_short_line(tmp_path, caplog):
    from detection.data.coco import coco_raws

    (tmp_path / "train").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "x.jpg"), np.zeros((20, 20, 3), np.uint8))
    cats = [{"id": i, "name": f"c{i}", "supercategory": f"c{i - 1}"} for i in range(1, 5001)]  # a chain of groups
    (tmp_path / "train" / "_annotations.coco.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "x.jpg", "width": 20, "height": 20}],
         "annotations": [{"id": 1, "image_id": 1, "category_id": 5000, "bbox": [1, 1, 5, 5]}], "categories": cats}))
    with caplog.at_level(logging.INFO):
        _, info, _ = coco_raws(str(tmp_path / "train" / "_annotations.coco.json"), str(tmp_path / "train"))
    assert info.class_names == ["c5000"]
    line = next(r.getMessage() for r in caplog.records if "left out" in r.getMessage())
    assert "and 4989 more" in line and len(line) < 400
