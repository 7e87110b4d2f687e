"""Broken and hostile input to readers: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.data.coco import read_coco
from detection.data.voc import read_voc
from detection.errors import DataError
from tests.bad_inputs import (
    _jpg,
    _laughs,
    _yolo,
    coco_file,
    voc_set,
)
from tests.conftest import write_voc


def test_file_names_cannot_leave_the_image_folder(tmp_path):
    root = voc_set(tmp_path)
    xml = root / "Annotations" / "img0.xml"
    xml.write_text(xml.read_text().replace("<filename>img0.jpg</filename>", "<filename>../../etc/passwd</filename>"))
    with pytest.raises(DataError, match=r"img0.xml: file name '../../etc/passwd' leads outside .*allow_outside_root"):
        read_voc(str(root), "train")
    xml.write_text(xml.read_text().replace("../../etc/passwd", "/etc/passwd"))
    with pytest.raises(DataError, match="leads outside"):
        read_voc(str(root), "train")
    # a symlink inside the folder that points out of it
    outside = tmp_path / "elsewhere.jpg"
    cv2.imwrite(str(outside), np.zeros((80, 96, 3), np.uint8))
    xml.write_text(xml.read_text().replace("/etc/passwd", "link.jpg"))
    (root / "JPEGImages" / "link.jpg").symlink_to(outside)
    with pytest.raises(DataError, match=r"through the symlink .*link.jpg -> .*elsewhere.jpg, which leads outside"):
        read_voc(str(root), "train")
    recs, _ = read_voc(str(root), "train", allow_outside=True)  # the documented opt-in
    assert any(r.path.endswith("link.jpg") for r in recs)


def test_coco_absolute_file_name_is_refused(tmp_path):
    ann = coco_file(tmp_path, images=[{"id": 1, "file_name": "/etc/passwd", "width": 8, "height": 8}])
    with pytest.raises(DataError, match=r"instances.json: image 1: file name '/etc/passwd' leads outside"):
        read_coco(ann, str(tmp_path / "imgs"))


def test_coco_duplicate_image_ids_are_an_error(tmp_path):
    ann = coco_file(tmp_path, [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 32},
                               {"id": 7, "file_name": "b.jpg", "width": 40, "height": 32}])
    with pytest.raises(DataError, match=r"instances.json: image id 7 is used by both 'a.jpg' and 'b.jpg'"):
        read_coco(ann, str(tmp_path / "imgs"))


def test_coco_bad_boxes_and_orphans_are_counted_and_named(tmp_path, caplog):
    boxes = [None, [1, 2, 3], ["x", 0, 1, 1], [float("nan"), 0, 5, 5], [0, 0, float("inf"), 5], [0, 0, 0, 5],
             [2, 2, 10, 10]]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b} for i, b in enumerate(boxes)]
    anns.append({"id": 99, "image_id": 42, "category_id": 1, "bbox": [0, 0, 4, 4]})
    ann = coco_file(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 32}], anns)
    with caplog.at_level(logging.WARNING):
        recs, info = read_coco(ann, str(tmp_path / "imgs"))
    np.testing.assert_allclose(recs[0].boxes, [[2, 2, 12, 12]])  # inf was not clipped into a full-width box
    assert info.skipped["invalid_boxes"] == 5 and info.skipped["degenerate_boxes"] == 1
    assert info.skipped["orphan_annotations"] == 1 and "image_id 42" in caplog.text
    assert "instances.json image 1" in caplog.text


def test_voc_duplicate_ids_and_wrong_or_textual_size(tmp_path, caplog):
    root = voc_set(tmp_path)
    (root / "ImageSets" / "Main" / "train.txt").write_text("img0\nimg1\nimg0\n")
    xml = root / "Annotations" / "img1.xml"
    xml.write_text(xml.read_text().replace("<width>96</width>", "<width>192</width>"))
    xml0 = root / "Annotations" / "img0.xml"
    xml0.write_text(xml0.read_text().replace("<width>96</width>", "<width>wide</width>"))
    with caplog.at_level(logging.WARNING):
        recs, info = read_voc(str(root), "train")
    assert [Path(r.path).name for r in recs] == ["img0.jpg", "img1.jpg"]  # each once
    assert "listed more than once" in caplog.text
    assert info.skipped["size_mismatch"] == 1 and "img1.xml" in caplog.text
    assert (recs[1].width, recs[1].height) == (96, 80)  # the file's size
    np.testing.assert_allclose(recs[1].boxes, [[9, 9, 60, 50]])  # not rescaled by 96/192


def test_yolo_nc_that_disagrees_with_names_is_one_line(tmp_path):
    from detection.data.yolo import YOLOFormatError, read_yolo

    root = _yolo(tmp_path / "y", "train: images/train\nval: images/val\nnc: 3\nnames: [cat, dog]\n")
    with pytest.raises(YOLOFormatError, match=r"data.yaml: `nc: 3` disagrees with `names`, which lists 2 classes; "
                                              r"set nc: 2"):
        read_yolo(str(root), "train")


def test_yolo_images_without_a_label_file_are_named(tmp_path, caplog):
    from detection.data.yolo import read_yolo

    root = _yolo(tmp_path / "y", "train: images/train\nval: images/val\nnames: [cat]\n", unlabelled=2)
    with caplog.at_level(logging.WARNING):
        _, info = read_yolo(str(root), "train")
    assert info.skipped["images_without_labels"] == 2
    assert "2 images without a label file" in caplog.text and "neg0.jpg" in caplog.text


def test_yolo_files_from_windows_tools_read_as_any_other(tmp_path):
    from detection.data.yolo import read_yolo

    root = _yolo(tmp_path / "y", "\ufefftrain: images/train\r\nval: images/val\r\nnames: [cat, dog]\r\n",
                 label_bytes="\ufeff1 0.5 0.5 0.5 0.5\r\n0 0.25 0.25 0.2 0.2\r\n".encode())
    records, info = read_yolo(str(root), "train")
    assert records[0].labels.tolist() == [2, 1] and info.skipped["invalid_label_lines"] == 0


def test_a_data_yaml_path_outside_its_folder_says_where_the_data_is_read_from(tmp_path, caplog):
    from detection.data.yolo import read_yolo

    _yolo(tmp_path / "data", "names: [cat]\n")
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "data.yaml").write_text("path: ../data\ntrain: images/train\nval: images/val\nnames: [cat]\n")
    with caplog.at_level(logging.INFO):
        read_yolo(str(cfg_dir / "data.yaml"), "train")
    assert "leads outside the YAML's folder; reading the data from " + str(tmp_path / "data") in caplog.text


@pytest.mark.parametrize("size_xml", ["<size><width>0</width><height>0</height></size>",
                                      "<size><width>nan</width><height>48</height></size>",
                                      "<size><width>wide</width><height>48</height></size>", ""])
def test_a_voc_size_that_is_zero_missing_nan_or_text_is_counted_and_named(tmp_path, caplog, size_xml):
    from detection.data.voc import read_voc

    root = write_voc(tmp_path / "voc", {"i0": [("cat", 5, 5, 40, 30, 0)], "i1": [("cat", 5, 5, 40, 30, 0)]})
    xml = root / "Annotations" / "i1.xml"
    text = xml.read_text()
    start, end = text.find("<size>"), text.find("</size>") + len("</size>")
    xml.write_text(text[:start] + size_xml + text[end:])
    with caplog.at_level(logging.WARNING):
        records, info = read_voc(str(root), "train")
    assert info.skipped["size_unusable"] == 1 and info.defects["size_unusable"] == {"i1.xml": 1}
    assert "annotated size is missing, zero or not a number" in caplog.text and "i1.xml" in caplog.text
    assert (records[1].width, records[1].height) == (64, 48)  # the file's own size


@pytest.mark.parametrize("width", [0, None, "640", float("nan")])
def test_a_coco_width_that_is_zero_missing_text_or_nan_is_counted_and_named(tmp_path, width):
    from detection.data.coco import read_coco

    _jpg(tmp_path / "images" / "a.jpg")
    image = {"id": 7, "file_name": "a.jpg", "height": 48}
    if width is not None:
        image["width"] = width
    ann = {"images": [image], "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [5, 5, 20, 20]}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(ann).replace("NaN", "NaN"))
    records, info = read_coco(str(path), str(tmp_path / "images"))
    expected = 0 if width == "640" else 1  # "640" reads as 640: disagreeing with the file, counted as such
    assert info.skipped["size_unusable"] == expected
    assert info.skipped["size_mismatch"] == 1 - expected and (records[0].width, records[0].height) == (64, 48)


def test_a_billion_laughs_data_yaml_is_one_line(tmp_path):
    from detection.data.yolo import YOLOFormatError, load_yolo_yaml

    data = tmp_path / "data.yaml"
    data.write_text(_laughs() + "train: images\nval: images\nnames: [a]\n")
    with pytest.raises(YOLOFormatError, match="expand to more than"):
        load_yolo_yaml(str(data))
