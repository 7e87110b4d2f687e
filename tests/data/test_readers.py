import json
import logging

import numpy as np
import pytest

from detection.data.coco import COCOFormatError, coco_paths, read_coco
from detection.data.voc import VOCFormatError, read_voc
from detection.errors import DataError
from tests.conftest import write_voc


def test_voc_reader_boxes_labels_difficult(tmp_path):
    root = write_voc(tmp_path, {
        "a": [("cat", 1, 1, 10, 20, 0), ("dog", 5, 5, 30, 40, 1)],
        "b": [],  # a negative image is kept
    })
    recs, info = read_voc(str(root), "train", classes=["cat", "dog"])
    assert info.class_names == ["cat", "dog"]
    assert [len(r.boxes) for r in recs] == [2, 0]
    a = recs[0]
    # 1-based inclusive VOC pixels -> 0-based xyxy
    np.testing.assert_allclose(a.boxes[0], [0, 0, 10, 20])
    assert a.labels.tolist() == [1, 2]
    assert a.difficult.tolist() == [False, True]
    assert (a.width, a.height) == (64, 48)
    recs, _ = read_voc(str(root), "train", classes=["cat", "dog"], use_difficult=False)
    assert recs[0].labels.tolist() == [1]


def test_voc_degenerate_and_clipped_boxes_are_counted(tmp_path, caplog):
    root = write_voc(tmp_path, {
        "a": [("cat", 10, 10, 10, 10, 0), ("cat", 50, 40, 100, 100, 0)],  # zero-area; crosses the border
        "b": [("cat", 200, 200, 300, 300, 0)],  # entirely outside: nothing left after clipping
    })
    with caplog.at_level(logging.WARNING):
        recs, info = read_voc(str(root), "train")
    assert info.skipped["degenerate_boxes"] == 2
    np.testing.assert_allclose(recs[0].boxes, [[49, 39, 64, 48]])  # clipped to the 64x48 image
    assert "2 boxes dropped: zero or negative width/height" in caplog.text and "a.xml" in caplog.text


def test_voc_unknown_classes_error_or_ignore(tmp_path):
    root = write_voc(tmp_path, {"a": [("cat", 1, 1, 10, 10, 0), ("zebra", 1, 1, 5, 5, 0)]})
    with pytest.raises(ValueError, match=r"classes not in data.classes: 'zebra' \(1 boxes\).*ignore_unknown_classes"):
        read_voc(str(root), "train", classes=["cat"])
    recs, info = read_voc(str(root), "train", classes=["cat"], ignore_unknown=True)
    assert recs[0].labels.tolist() == [1] and info.skipped["unknown_class_boxes"] == 1


def test_voc_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(DataError, match="ImageSets/Main/train.txt"):
        read_voc(str(tmp_path), "train")
    root = write_voc(tmp_path, {"a": [("cat", 1, 1, 10, 10, 0)]})
    (root / "Annotations" / "a.xml").write_text("<annotation><object><name>cat</name></object></annotation>")
    recs, info = read_voc(str(root), "train")  # an object without a box is dropped, counted
    assert info.skipped["invalid_boxes"] == 1 and len(recs[0].boxes) == 0
    (root / "Annotations" / "a.xml").write_text("<annotation>")
    with pytest.raises(VOCFormatError, match="a.xml: not valid XML"):
        read_voc(str(root), "train")


def test_voc_size_missing_is_read_from_the_image(tmp_path):
    root = write_voc(tmp_path, {"a": [("cat", 1, 1, 10, 10, 0)]}, size=(70, 30), write_size=False)
    recs, _ = read_voc(str(root), "train")
    assert (recs[0].width, recs[0].height) == (70, 30)


def _coco_file(tmp_path, images, annotations, categories):
    (tmp_path / "annotations").mkdir(exist_ok=True)
    (tmp_path / "imgs").mkdir(exist_ok=True)
    import cv2

    for im in images:
        cv2.imwrite(str(tmp_path / "imgs" / im["file_name"]), np.zeros((im["height"], im["width"], 3), np.uint8))
    path = tmp_path / "annotations" / "instances_x.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(path), str(tmp_path / "imgs")


def test_coco_reader_noncontiguous_ids_crowd_and_missing_iscrowd(tmp_path):
    ann, imgs = _coco_file(
        tmp_path,
        images=[{"id": 0, "file_name": "a.jpg", "width": 40, "height": 30}],
        annotations=[
            {"id": 0, "image_id": 0, "category_id": 90, "bbox": [1, 2, 10, 5]},  # no iscrowd field
            {"id": 1, "image_id": 0, "category_id": 7, "bbox": [0, 0, 20, 20], "iscrowd": 1},
            {"id": 2, "image_id": 0, "category_id": 7, "bbox": [5, 5, 0, 4]},  # zero width
        ],
        categories=[{"id": 90, "name": "toothbrush"}, {"id": 7, "name": "train"}],
    )
    recs, info = read_coco(ann, imgs)
    assert info.class_names == ["train", "toothbrush"]  # ordered by category id
    assert info.cat_ids == [7, 90]
    r = recs[0]
    assert r.image_id == 0
    assert r.labels.tolist() == [2, 1]
    np.testing.assert_allclose(r.boxes[0], [1, 2, 11, 7])
    assert r.iscrowd.tolist() == [False, True]
    assert info.skipped["degenerate_boxes"] == 1


def test_coco_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="instances_x.json"):
        read_coco(str(tmp_path / "instances_x.json"), str(tmp_path))
    ann, imgs = _coco_file(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
                           [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 1, 1]}],
                           [{"id": 1, "name": "a"}])
    with pytest.raises(COCOFormatError, match="category_id 3, not in `categories`"):
        read_coco(ann, imgs)
    ann, imgs = _coco_file(tmp_path, [{"id": 1, "file_name": "gone.jpg", "width": 4, "height": 4}], [],
                           [{"id": 1, "name": "a"}])
    (tmp_path / "imgs" / "gone.jpg").unlink()
    with pytest.raises(DataError, match="no usable images; e.g. image not found.*gone.jpg"):
        read_coco(ann, imgs)


def test_bccd_real_data(shared_datasets, caplog):
    """All 364 images and 4888 boxes, minus the 2 zero-area boxes, which are reported."""
    root = str(shared_datasets / "bccd_voc" / "BCCD")
    with caplog.at_level(logging.WARNING):
        trainval, info = read_voc(root, "trainval", classes=["RBC", "WBC", "Platelets"])
        test, _ = read_voc(root, "test", classes=["RBC", "WBC", "Platelets"])
    assert len(trainval) + len(test) == 364
    assert sum(len(r.boxes) for r in trainval + test) == 4888 - 2
    assert info.skipped["degenerate_boxes"] == 2
    assert "BloodImage_00338.xml" in caplog.text and "BloodImage_00343.xml" in caplog.text
    assert all((r.boxes[:, 2] <= r.width).all() and (r.boxes[:, 3] <= r.height).all() for r in trainval)


def test_coco_tiny_real_data(shared_datasets):
    root = str(shared_datasets / "coco_tiny_cocojson")
    recs, info = read_coco(*coco_paths(root, "val2017"))
    assert len(recs) == 80 and len(info.class_names) == 80
    assert max(info.cat_ids) == 90  # original ids kept for writing results
    assert sum(int(r.iscrowd.sum()) for r in recs) > 0
