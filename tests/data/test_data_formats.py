"""YOLO data, data without split files (hash split, split.json), subsets, and the pixel cache."""

import json
import os

import cv2
import numpy as np
import pytest

from detection.config import load_config
from detection.data.dataset import DetectionDataset, get_dataset, read_split
from detection.data.images import ImageReadError
from detection.data.pixels import ImagePixels, load_resized, reduce_factor
from detection.data.records import DatasetInfo, ImageRecord
from detection.data.splits import in_val, select
from detection.data.yolo import YOLOFormatError, label_path, read_yolo
from detection.errors import DataError


def _image(path, w=64, h=48, value=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(abs(hash(path)) % 2**32)
    img = rng.integers(0, 255, (h, w, 3), np.uint8) if value is None else np.full((h, w, 3), value, np.uint8)
    cv2.imwrite(str(path), img)


def _labels(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _yolo_set(root, names="[cat, dog]"):
    """images/{train,val}, labels/{train,val}, data.yaml; every defect the reader must count."""
    for split in ("train", "val"):
        for i in range(3):
            _image(root / "images" / split / f"{i}.jpg")
    _labels(root / "labels/train/0.txt", ["0 0.5 0.5 0.5 0.5", "1 0.25 0.25 0.25 0.5"])
    _labels(root / "labels/train/1.txt", ["1 0.5 0.5 0.2 0.2", "", "1 0.5 0.5 0.2 0.2", "0 0.9 0.9 0.4 0.4"])
    # train/2.jpg has no label file: a negative
    _labels(root / "labels/train/ghost.txt", ["0 0.5 0.5 0.1 0.1"])  # no image
    _labels(root / "labels/train/bad.txt", [])
    for i in range(3):
        _labels(root / "labels/val" / f"{i}.txt", ["0 0.5 0.5 0.5 0.5"])
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/val\nnames: {names}\n")


def test_yolo_reads_boxes_in_pixels_and_counts_every_defect(tmp_path):
    _yolo_set(tmp_path)
    recs, info = read_yolo(str(tmp_path / "data.yaml"), "train")
    assert info.class_names == ["cat", "dog"] and len(recs) == 3
    by_name = {os.path.basename(r.path): r for r in recs}
    np.testing.assert_allclose(by_name["0.jpg"].boxes, [[16, 12, 48, 36], [8, 0, 24, 24]], atol=1e-4)
    assert by_name["0.jpg"].labels.tolist() == [1, 2]
    assert len(by_name["2.jpg"].boxes) == 0  # no label file: a negative
    # the repeated line is used once; the box past the corner is clipped to the image
    assert by_name["1.jpg"].labels.tolist() == [2, 1]
    np.testing.assert_allclose(by_name["1.jpg"].boxes[1], [44.8, 33.6, 64, 48], atol=1e-3)
    assert info.defects["empty_label_lines"] == {"1.txt": 1}
    assert info.defects["repeated_labels"] == {"1.txt": 1}
    assert info.defects["out_of_range_labels"] == {"1.txt": 1}
    assert set(info.defects["orphan_labels"]) == {"train/ghost.txt", "train/bad.txt"}


def test_yolo_names_map_txt_lists_folder_layout_and_polygons(tmp_path):
    _yolo_set(tmp_path, names="{0: cat, 1: dog}")
    (tmp_path / "train.txt").write_text("./images/train/0.jpg\nimages/train/1.jpg\n")
    (tmp_path / "data.yaml").write_text("train: train.txt\nval: images/val\nnames: {0: cat, 1: dog}\n")
    recs, info = read_yolo(str(tmp_path), "train")  # the folder holding data.yaml
    assert info.class_names == ["cat", "dog"] and sorted(os.path.basename(r.path) for r in recs) == ["0.jpg", "1.jpg"]
    # the folder layout without a yaml takes names from classes.txt; a polygon line becomes its box
    plain = tmp_path / "plain"
    _image(plain / "images/train/a.png")
    _labels(plain / "labels/train/a.txt", ["1 0.25 0.25 0.75 0.25 0.75 0.5 0.25 0.5"])
    (plain / "classes.txt").write_text("cat\ndog\n")
    recs, info = read_yolo(str(plain), "train")
    np.testing.assert_allclose(recs[0].boxes, [[16, 12, 48, 24]], atol=1e-4)
    assert recs[0].labels.tolist() == [2]
    os.remove(plain / "classes.txt")
    with pytest.raises(DataError, match="class ids, not names"):
        read_yolo(str(plain), "train")
    assert read_yolo(str(plain), "train", classes=["x", "y"])[1].class_names == ["x", "y"]


@pytest.mark.parametrize("line", ["2 0.5 0.5 0.1 0.1", "-1 0.5 0.5 0.1 0.1", "cat 0.5 0.5 0.1 0.1"])
def test_yolo_class_id_beyond_names_names_the_file_and_line(tmp_path, line):
    _yolo_set(tmp_path)
    _labels(tmp_path / "labels/train/2.txt", ["0 0.5 0.5 0.1 0.1", line])
    with pytest.raises(YOLOFormatError, match=r"2\.txt line 2: class id"):
        read_yolo(str(tmp_path / "data.yaml"), "train")


def test_yolo_refuses_list_entries_outside_the_data_set(tmp_path):
    _yolo_set(tmp_path / "d")
    _image(tmp_path / "elsewhere.jpg")
    (tmp_path / "d/train.txt").write_text("../elsewhere.jpg\n")
    (tmp_path / "d/data.yaml").write_text("train: train.txt\nval: images/val\nnames: [cat, dog]\n")
    with pytest.raises(DataError, match="outside"):
        read_yolo(str(tmp_path / "d"), "train")


def test_a_yolo_export_with_a_symlinked_image_folder_is_named_and_allowed_on_request(tmp_path, caplog):
    """The common export: images -> ../images beside a config.yaml (no data.yaml)."""
    import logging

    _yolo_set(tmp_path / "real")
    export = tmp_path / "export"
    export.mkdir()
    os.symlink("../real/images", export / "images")
    os.symlink("../real/labels", export / "labels")
    (export / "config.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [cat, dog]\n")
    (export / "notes.yaml").write_text("author: me\n")  # another YAML, without names
    with caplog.at_level(logging.INFO), pytest.raises(DataError) as e:
        read_yolo(str(export), "train")
    msg = str(e.value)
    assert "reading config.yaml" in caplog.text  # the one YAML here with `names`, said
    assert f"symlink {export / 'images'} -> ../real/images" in msg and "data.allow_outside_root=true" in msg
    assert "fix the annotation" not in msg
    recs, info = read_yolo(str(export), "train", allow_outside=True)
    assert info.class_names == ["cat", "dog"] and len(recs) == 3
    (export / "other.yaml").write_text("names: [a]\n")
    with pytest.raises(DataError, match="several YAML files have `names` .config.yaml, other.yaml."):
        read_yolo(str(export), "train")


def test_label_path_follows_ultralytics():
    expected = os.path.join("/d", "labels", "train", "a.b.txt")
    assert label_path(os.path.join("/d", "images", "train", "a.b.jpg")) == expected
    assert label_path(os.path.join("/d", "x", "a.jpg")) == os.path.join("/d", "x", "a.txt")


# --- splits ---------------------------------------------------------------------------------


def test_hash_split_is_stable_when_images_are_added():
    names = [f"img_{i:04d}.jpg" for i in range(2000)]
    val = set(select(names, names, "val", val_fraction=0.2))
    train = set(select(names, names, "train", val_fraction=0.2))
    assert not val & train and len(val | train) == 2000 and 340 < len(val) < 460
    more = names + [f"new_{i}.jpg" for i in range(500)]
    assert set(select(more, more, "val", val_fraction=0.2)) & set(names) == val  # nothing moved
    # the order of the list does not matter, and a subset of the training side is seeded
    backwards = more[::-1]
    val_more = set(select(more, more, "val", val_fraction=0.2))
    assert set(select(backwards, backwards, "val", val_fraction=0.2)) == val_more
    sub = select(names, names, "train", val_fraction=0.2, fraction=0.25, seed=1)
    assert set(sub) <= train and 0.18 < len(sub) / len(train) < 0.32
    assert sub != select(names, names, "train", val_fraction=0.2, fraction=0.25, seed=2)
    assert in_val("a.jpg", 1.0) and not in_val("a.jpg", 0.0)


def _labelimg_folder(root, n=20):
    """xml beside jpg, no ImageSets: what LabelImg writes."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _image(root / f"photo_{i}.jpg", 80, 60)
        (root / f"photo_{i}.xml").write_text(
            f"<annotation><filename>photo_{i}.jpg</filename><size><width>80</width><height>60</height></size>"
            f"<object><name>{'cat' if i % 2 else 'dog'}</name><bndbox><xmin>11</xmin><ymin>11</ymin>"
            "<xmax>40</xmax><ymax>30</ymax></bndbox></object></annotation>")


def _cfg(root, fmt="voc", **data):
    return load_config(None, {"data": {"format": fmt, "root": str(root), "num_workers": 0, **data},
                              "model": {"weights": "none", "min_size": 64, "max_size": 96}})


def test_labelimg_folder_splits_by_hash_and_without_val_fraction_says_how(tmp_path):
    _labelimg_folder(tmp_path / "li")
    cfg = _cfg(tmp_path / "li", val_fraction=0.3)
    train, val = get_dataset(cfg, train=True), get_dataset(cfg, train=False, class_names=["cat", "dog"])
    names = lambda ds: {os.path.basename(r.path) for r in ds.records}  # noqa: E731
    assert not names(train) & names(val) and len(names(train) | names(val)) == 20 and len(val) > 0
    assert train.records[0].boxes.tolist() == [[10, 10, 40, 30]]  # VOC's 1-based pixels, as with ImageSets
    with pytest.raises(DataError, match="val_fraction"):
        get_dataset(_cfg(tmp_path / "li"), train=True)


def test_split_file_pins_the_lists_even_when_the_folder_grows(tmp_path):
    _labelimg_folder(tmp_path / "li", 12)
    cfg = _cfg(tmp_path / "li", val_fraction=0.4)
    val_before = [r.path for r in read_split(cfg["data"], "val", False, ["cat", "dog"])[0]]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [], "val": [os.path.basename(p) for p in val_before]}))
    _labelimg_folder(tmp_path / "li", 40)  # more images arrive
    pinned = _cfg(tmp_path / "li", val_fraction=0.4, split_file=str(split))
    assert [r.path for r in read_split(pinned["data"], "val", False, ["cat", "dog"])[0]] == val_before
    os.remove(tmp_path / "li" / os.path.basename(val_before[0]).replace(".jpg", ".xml"))
    with pytest.raises(DataError, match="no longer in the data set"):
        read_split(pinned["data"], "val", False, ["cat", "dog"])


def test_coco_single_json_and_yolo_split_by_val_fraction(tmp_path):
    _yolo_set(tmp_path / "y")
    cfg = _cfg(tmp_path / "y" / "data.yaml", "yolo", val_fraction=0.5, classes=["cat", "dog"])
    train, _ = read_split(cfg["data"], "train", True)
    val, _ = read_split(cfg["data"], "val", False, ["cat", "dog"])
    every = {str(tmp_path / f"y/images/train/{i}.jpg") for i in range(3)}
    assert {r.path for r in train} | {r.path for r in val} == every


# --- pixels at the training size, with and without a cache ----------------------------------


def _records(tmp_path, n=3, w=640, h=480):
    recs = []
    for i in range(n):
        _image(str(tmp_path / f"p{i}.jpg"), w, h)
        recs.append(ImageRecord(str(tmp_path / f"p{i}.jpg"), w, h, np.array([[64, 48, 320, 240]], np.float32),
                                np.array([1]), np.zeros(1, bool), np.zeros(1, bool), i))
    return recs


def test_reduced_jpeg_decode_gives_the_full_decodes_size_and_close_pixels(tmp_path):
    import torch

    recs = _records(tmp_path, 1, 1280, 960)
    assert reduce_factor(1280, 960, 320, 240) == 4 and reduce_factor(1280, 960, 400, 300) == 2
    img = load_resized(recs[0].path, 1280, 960, 240, 400)
    rgb = cv2.cvtColor(cv2.imread(recs[0].path), cv2.COLOR_BGR2RGB)
    full = cv2.resize(rgb, (320, 240), interpolation=cv2.INTER_AREA)
    assert img.shape == full.shape == (240, 320, 3)
    assert np.abs(img.astype(int) - full.astype(int)).mean() < 12  # random noise: the worst case for DCT scaling
    ds = DetectionDataset(recs, DatasetInfo(["a"], [1], "t"), train=False, min_size=240, max_size=400)
    tensor, t = ds[0]
    assert tuple(tensor.shape) == (3, 240, 320) and t["scale"] == (0.25, 0.25)
    assert torch.allclose(t["boxes"], torch.tensor([[16.0, 12, 80, 60]]))


@pytest.mark.parametrize("mode", ["ram", "disk"])
def test_cache_gives_the_same_tensors_as_no_cache(tmp_path, mode):
    import torch

    recs = _records(tmp_path / "img")
    info = DatasetInfo(["a"], [1], "t")
    plain = DetectionDataset(recs, info, train=True, min_size=240, max_size=320)
    cached = DetectionDataset(recs, info, train=True, min_size=240, max_size=320, cache=mode,
                              cache_dir=str(tmp_path / "cache"))
    for i in range(len(recs)):
        for seed in (1, 2):
            a, ta = plain[(i, seed)]
            b, tb = cached[(i, seed)]
            assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
    if mode == "disk":
        files = [f for _, _, fs in os.walk(tmp_path / "cache") for f in fs]
        assert len(files) == 3 and all(f.endswith("_320x240.npy") for f in files)
        again = DetectionDataset(recs, info, train=True, min_size=240, max_size=320, cache="disk",
                                 cache_dir=str(tmp_path / "cache"))
        assert torch.equal(again[(0, 1)][0], plain[(0, 1)][0])  # a new run reads the files written
        os.rename(recs[0].path, recs[0].path + ".moved")
        with pytest.raises(ImageReadError, match="not found"):  # keyed by the file's content: a missing
            ImagePixels(recs, 240, 320, cache="disk", cache_dir=str(tmp_path / "cache")).get(0)  # file is named


def test_ram_cache_refuses_what_would_not_fit(tmp_path, monkeypatch):
    import detection.data.pixels as pixels

    monkeypatch.setattr(pixels, "_available_memory", lambda: 1_000_000)
    with pytest.raises(DataError, match="data.cache=ram needs .* data.cache=disk"):
        ImagePixels(_records(tmp_path), 480, 640, cache="ram")


# --- end to end: the README's commands on a LabelImg folder and a YOLO copy -----------------


def _tiny(run_name):
    return [f"name={run_name}", "data.num_workers=0", "model.weights=none", "model.min_size=64", "model.max_size=96",
            "model.fpn_channels=32", "model.rpn_pre_nms_top_n_train=100", "model.rpn_post_nms_top_n_train=50",
            "model.rpn_pre_nms_top_n_test=50", "model.rpn_post_nms_top_n_test=20", "train.epochs=1",
            "train.batch_size=4", "train.warmup_iters=1"]


def test_labelimg_folder_trains_from_the_readme_command_and_eval_reuses_its_split(tmp_path, monkeypatch):
    from detection.cli import evaluate as eval_cli
    from detection.cli import train as train_cli
    from detection.config import CONFIG_DIR

    monkeypatch.chdir(tmp_path)
    _labelimg_folder(tmp_path / "photos", 16)
    train_cli.main(["--cfg", str(CONFIG_DIR / "labelimg_frcnn.yaml"), "data.root=photos"] + _tiny("li"))
    run = tmp_path / "runs" / "li"
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) + len(split["val"]) == 16 and split["val"]
    assert not set(split["train"]) & set(split["val"])
    saved = load_config(run / "config.yaml")
    assert saved["data"]["split_file"] == str(run / "split.json")
    _labelimg_folder(tmp_path / "photos", 40)  # the folder grows after training
    eval_cli.main(["--ckpt", str(run / "weights" / "best.pt")])
    assert json.loads((run / "eval" / "results.json").read_text())["num_images"] == len(split["val"])


def test_a_yolo_copy_trains(tmp_path, monkeypatch):
    from detection.cli import train as train_cli
    from detection.config import CONFIG_DIR
    from detection.data.convert import convert

    monkeypatch.chdir(tmp_path)
    _labelimg_folder(tmp_path / "photos", 12)
    convert("voc", "yolo", str(tmp_path / "photos"), str(tmp_path / "yolo"))
    train_cli.main(["--cfg", str(CONFIG_DIR / "yolo_frcnn.yaml"), "data.root=yolo/data.yaml", "data.train_split=all",
                    "data.val_fraction=0.25"] + _tiny("y"))
    assert (tmp_path / "runs/y/weights/best.pt").is_file()
    assert load_config(tmp_path / "runs/y/config.yaml")["data"]["classes"] == ["cat", "dog"]


def test_one_table_of_formats_feeds_the_config_the_converter_and_the_data_check(tmp_path, monkeypatch):
    from detection.cli import data_check
    from detection.config import ConfigError, load_config
    from detection.data import convert, formats

    assert convert.FORMATS == formats.ON_DISK and set(formats.CHOICES) == set(formats.ON_DISK) | {"synthetic"}
    with pytest.raises(ConfigError, match=r"`data.format` must be one of voc, coco, yolo, synthetic.*`yolo`"):
        load_config(None, ["data.format=yoloo", "data.root=x"])
    with pytest.raises(SystemExit):
        data_check.main(["--data", "x", "--format", "pascal"])  # argparse's choices are the table's
    with pytest.raises(DataError, match="must be one of voc, coco, yolo, got 'pascal'"):
        formats.write("pascal", "x", {}, [], {})
    # the converter reads and writes through the table's rows, nothing else
    _yolo_set(tmp_path / "y")
    calls = []
    row = formats.FORMATS["coco"]
    monkeypatch.setitem(formats.FORMATS, "coco", formats.Format(row.splits, row.read,
                                                                lambda dst, *a: calls.append(sorted(a[0]))))
    convert.convert("yolo", "coco", str(tmp_path / "y"), str(tmp_path / "c"))
    assert calls == [["train", "val"]]


def test_a_big_yaml_beside_a_yolo_set_is_not_parsed_while_looking_for_its_names(tmp_path, caplog):
    import logging

    _yolo_set(tmp_path / "y")
    (tmp_path / "y" / "data.yaml").rename(tmp_path / "y" / "export.yaml")
    (tmp_path / "y" / "dump.yaml").write_text("names: [a]\nx: '" + "a" * (2 << 20) + "'\n")  # 2 MB: not a data.yaml
    with caplog.at_level(logging.INFO):
        recs, info = read_yolo(str(tmp_path / "y"), "train")
        read_yolo(str(tmp_path / "y"), "val")
    assert info.class_names == ["cat", "dog"]
    assert caplog.text.count("reading export.yaml") == 1  # said once, not at every split
