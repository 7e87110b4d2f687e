"""Broken and hostile inputs, second round (issue 23): memory bombs in labels and exported files,
checkpoints on a full disk, partial videos, tampered split files, training that diverges across
epochs. Every input is built here; each case fails on the code before it."""

from __future__ import annotations

import json
import logging
import struct
import tracemalloc
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detection.config import ConfigError, load_config
from detection.data.records import MAX_BOXES_PER_IMAGE, DatasetInfo, RawImage, build_records
from detection.errors import CheckpointError, DataError, OutputError
from tests.conftest import write_voc


def _jpg(path: Path, w=64, h=48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8))
    return path


def _info() -> DatasetInfo:
    return DatasetInfo(class_names=["a"], cat_ids=[1], source="test")


# --- unbounded memory ---------------------------------------------------------------------------

def test_an_image_with_too_many_boxes_trains_on_the_cap_and_names_the_file(tmp_path, caplog):
    image = _jpg(tmp_path / "dense.jpg", 200, 200)
    n = MAX_BOXES_PER_IMAGE + 700
    xs = np.random.default_rng(1).uniform(0, 150, (n, 2))
    raw = RawImage(str(image), "dense.xml", 1, None, boxes=[[x, y, x + 20, y + 20] for x, y in xs], labels=[1] * n)
    with caplog.at_level(logging.WARNING):
        [train] = build_records([raw], _info(), {})
    assert len(train.boxes) == MAX_BOXES_PER_IMAGE
    assert f"700 boxes dropped: over {MAX_BOXES_PER_IMAGE} in one image" in caplog.text and "dense.xml" in caplog.text
    [val] = build_records([raw], _info(), {}, strict=True)  # validation keeps every box: the metric counts them
    assert len(val.boxes) == n


def _torchscript_like(path: Path, meta: dict | bytes, claimed_size: int | None = None) -> Path:
    """A zip laid out as torch.jit.save writes one, with our metadata entry; `claimed_size` makes
    the entry's headers lie about how large it inflates."""
    data = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/extra/detection", data)
        z.writestr("m/data.pkl", b"not a model")
    if claimed_size is not None:
        buf = bytearray(path.read_bytes())
        struct.pack_into("<I", buf, 22, claimed_size)  # the local header of the first entry
        central = buf.find(b"PK\x01\x02")
        struct.pack_into("<I", buf, central + 24, claimed_size)
        path.write_bytes(bytes(buf))
    return path


@pytest.mark.parametrize("meta, field", [
    ({"class_names": ["a"], "min_size": 200000, "max_size": 200000}, "200000"),
    ({"class_names": ["a"], "min_size": 320, "max_size": 320, "fixed_size": [320, 90000]}, "90000"),
    ({"class_names": ["a"], "min_size": 640, "max_size": 320}, "min_size <= max_size"),
    ({"class_names": [1, None], "min_size": 320, "max_size": 320}, "class_names"),
])
def test_exported_metadata_values_are_range_checked_when_the_file_is_opened(tmp_path, meta, field):
    from detection.inference.loading import open_model

    path = _torchscript_like(tmp_path / "m.torchscript", meta)
    with pytest.raises(CheckpointError) as e:
        open_model(path)
    assert str(path) in str(e.value) and field in str(e.value) and "export the checkpoint again" in str(e.value)


def test_a_zip_entry_lying_about_its_size_is_never_inflated_whole(tmp_path):
    """50 MB of zeros deflate to 50 kB; the headers claim 10 bytes. Inflating it in one call (as
    ZipFile.read does) allocates the 50 MB before the size is compared."""
    from detection.inference.metadata import read_metadata

    path = _torchscript_like(tmp_path / "bomb.torchscript", b"\0" * 50_000_000, claimed_size=10)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="bomb.torchscript"):
            read_metadata(path, "torchscript")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak


def test_video_frames_over_the_pixel_budget_are_refused_before_decoding(tmp_path):
    from detection.inference.sources import open_source

    video = _video(tmp_path / "big.avi", frames=3, size=(64, 48))
    with pytest.raises(DataError, match=r"big.avi: frames of 64x48 .* over the pixel budget"):
        open_source(str(video), max_pixels=1000)


def test_the_data_check_decodes_by_the_budget_the_image_was_admitted_by(tmp_path):
    """A file swapped for a far larger one after the split was read is refused, not decoded."""
    from detection.data.doctor import _decode_and_hash
    from detection.data.images import ImageReadError, read_record_image

    image = _jpg(tmp_path / "a.jpg", 64, 48)
    [record] = build_records([RawImage(str(image), "a", 1, None)], _info(), {})
    _jpg(image, 640, 480)  # the same name, 100x the pixels
    with pytest.raises(ImageReadError, match="pixel budget"):
        read_record_image(record)
    assert _decode_and_hash(record)[0] == "cannot be decoded"


# --- crashes ------------------------------------------------------------------------------------

def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    from detection.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, config={}, class_names=["a"], epoch=1)

    def full_disk(obj, f):
        f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
                           "PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputError, match="cannot write checkpoint .*last.pt: PytorchStreamWriter failed writing"):
        save_checkpoint(path, model={"w": torch.zeros(2)}, config={}, class_names=["a"], epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1 and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("lists, words", [
    ({"train": ["a.jpg", 3], "val": ["b.jpg"]}, "are not (e.g. 3)"),
    ({"train": ["a.jpg", "b.jpg"], "val": [{"x": 1}]}, "`val` must list file names"),
    ({"train": ["a.jpg", "b.jpg"], "val": ["b.jpg"]}, "1 images are in both `train` and `val` (e.g. 'b.jpg')"),
])
def test_a_tampered_split_file_is_one_line(tmp_path, lists, words):
    from detection.data.splits import read_split_file

    path = tmp_path / "split.json"
    path.write_text(json.dumps(lists))
    with pytest.raises(DataError) as e:
        read_split_file(str(path))
    assert str(path) in str(e.value) and words in str(e.value)


class _Graph:
    """A backend whose graph returns fixed labels (as an exported file might)."""

    device = torch.device("cpu")

    def __init__(self, labels):
        self.labels = np.array(labels)

    def __call__(self, batch):
        n = len(self.labels)
        return [(np.tile([[1.0, 1.0, 9.0, 9.0]], (n, 1)), np.linspace(0.9, 0.5, n), self.labels) for _ in batch]


def test_labels_outside_the_classes_are_refused_and_background_is_never_a_class():
    from detection.evaluation.evaluator import DetectionEvaluator
    from detection.inference.predictor import Predictor

    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(CheckpointError, match=r"m.onnx: returned class label 3, outside its 2 classes"):
        Predictor(_Graph([1, 3]), ["cat", "dog"], 16, 16, source="m.onnx").predict([image])
    [result] = Predictor(_Graph([0, 2]), ["cat", "dog"], 16, 16, source="m.onnx").predict([image], score=0)
    assert result.names == ["dog"]  # label 0 (background) was named 'dog', the last class, through index -1
    ev = DetectionEvaluator.__new__(DetectionEvaluator)
    ev.predictions = {}
    ev.add(0, np.ones((2, 4)), np.array([0.9, 0.8]), np.array([0, 1]))
    assert ev.predictions[0][2].tolist() == [1]  # scored as the last category before


def test_predict_on_an_empty_array_is_one_line():
    from detection.api import as_rgb

    with pytest.raises(DataError, match=r"at least one pixel, got shape \(0, 0, 3\)"):
        as_rgb(np.zeros((0, 0, 3), np.uint8))


def test_a_train_time_that_would_overflow_is_refused():
    with pytest.raises(ConfigError, match=r"`train.time` must be >= 0.0 and <= 1000000"):
        load_config(None, ["data.format=voc", "data.root=x", "train.time=1e308"])


# --- silently wrong -----------------------------------------------------------------------------

def _yolo(root: Path, yaml_text: str, label_bytes: bytes | None = b"0 0.5 0.5 0.5 0.5\n", unlabelled: int = 0):
    for split in ("train", "val"):
        _jpg(root / "images" / split / "0.jpg")
        if label_bytes is not None:
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / "0.txt").write_bytes(label_bytes)
        for i in range(unlabelled):
            _jpg(root / "images" / split / f"neg{i}.jpg")
    (root / "data.yaml").write_text(yaml_text)
    return root


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


def test_a_split_file_whose_sides_overlap_stops_training(tmp_path):
    from detection.data.dataset import read_split

    root = write_voc(tmp_path / "voc", {f"i{k}": [("cat", 5, 5, 40, 30, 0)] for k in range(4)})
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["i0.jpg", "i1.jpg", "i2.jpg"], "val": ["i2.jpg", "i3.jpg"]}))
    cfg = load_config(None, ["data.format=voc", f"data.root={root}", f"data.split_file={split}"])
    with pytest.raises(DataError, match="in both `train` and `val` .*'i2.jpg'"):
        read_split(cfg["data"], "train", True)


def _video(path: Path, frames=20, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), np.uint8))
    writer.release()
    return path


def test_truncated_and_empty_videos_are_named_with_the_frames_lost(tmp_path):
    from detection.inference.predictor import stream_inference
    from detection.inference.sources import open_source

    full = _video(tmp_path / "full.avi")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    empty = _video(tmp_path / "empty.avi", frames=0)
    predictor = _identity_predictor()
    seen = {}
    for path in (full, cut, empty):
        items = [(item, result) for _, item, result in stream_inference(predictor, [open_source(str(path))])]
        seen[path.name] = ([i for i, r in items if r is not None], [i.error for i, r in items if r is None])
    assert len(seen["full.avi"][0]) == 20 and seen["full.avi"][1] == []
    used, errors = seen["cut.avi"]
    assert 0 < len(used) < 20 and len(errors) == 1
    assert errors[0] == (f"{cut}: {20 - len(used)} of 20 frames could not be decoded (the video is truncated or "
                         "corrupt); the frames before were used")
    assert seen["empty.avi"] == ([], [f"{empty}: no frame could be decoded (an empty, truncated or corrupt video)"])


def _identity_predictor():
    from detection.inference.predictor import Predictor

    return Predictor(_Graph([1]), ["a"], 32, 32)


def test_converting_into_a_folder_inside_the_input_is_refused(tmp_path):
    from detection.data.convert import convert

    root = write_voc(tmp_path / "voc", {"i0": [("cat", 5, 5, 40, 30, 0)]})
    with pytest.raises(DataError, match="is inside the data set being converted"):
        convert("voc", "coco", str(root), str(root / "as_coco"))
    assert not (root / "as_coco").exists()


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


# --- vague or wrong hints -----------------------------------------------------------------------

def test_an_empty_training_side_says_which_way_to_turn_the_knob(tmp_path):
    from detection.data.dataset import read_split

    root = write_voc(tmp_path / "voc", {f"i{k}": [("cat", 5, 5, 40, 30, 0)] for k in range(3)})
    cfg = load_config(None, ["data.format=voc", f"data.root={root}", "data.val_fraction=0.999"])
    with pytest.raises(DataError, match=r"no images on the train side; lower data.val_fraction \(it is 0.999\)"):
        read_split(cfg["data"], "train", True)


def test_a_torchscript_file_that_will_not_load_says_why(tmp_path, monkeypatch):
    import detection.inference.metadata as export_module
    from detection.inference.loading import open_model

    path = _torchscript_like(tmp_path / "m.torchscript", {"class_names": ["a"], "min_size": 32, "max_size": 32})

    def refuse(*a, **k):
        raise RuntimeError("\n\n")  # torch's message can be blank on its first lines

    monkeypatch.setattr(export_module, "load_torchscript", refuse)
    with pytest.raises(CheckpointError, match=r"not a loadable TorchScript file \(RuntimeError\); give a file written "
                                              r"by torch.jit.save"):
        open_model(path)


def test_the_api_skips_and_names_a_missing_file_among_good_ones(tmp_path, caplog):
    from detection.api import Detector

    good = str(_jpg(tmp_path / "good.jpg"))
    detector = Detector(_identity_predictor())
    with caplog.at_level(logging.WARNING):
        results = detector.predict([good, str(tmp_path / "missing.jpg"), good], score=0)
    assert [Path(r.path).name for r in results] == ["good.jpg", "good.jpg"]
    assert "missing.jpg" in caplog.text and "--source" not in caplog.text
    with pytest.raises(ConfigError, match="batch must be a whole number of 1 or more, got 0"):
        detector.predict(good, batch=0)


@pytest.mark.parametrize("flag", [["--batch", "0"], ["--batch", "-2"], ["--vid-stride", "0"], ["--max-det", "0"]])
def test_infer_refuses_counts_below_one(flag, capsys):
    from detection.cli import infer as infer_cli

    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", "x.jpg", *flag])
    assert e.value.code == 2 and "must be 1 or more" in capsys.readouterr().err


@pytest.mark.parametrize("thresholds", [{"per_class": {"a": "high"}}, {"per_class": {"a": 7.0}},
                                        {"per_class": {"zebra": 0.5}}, {"per_class": {"a": 0.5}, "temperature": -1},
                                        ["not", "a", "mapping"]])
def test_stored_thresholds_that_are_not_scores_are_one_line(tmp_path, tiny_model_cfg, thresholds):
    """A checkpoint edited by hand (or by an attacker): refused where it is opened and where it is exported."""
    from detection.checkpoint import save_checkpoint
    from detection.config import thaw
    from detection.inference.export import export
    from detection.inference.loading import open_model
    from detection.models.builders import build_model

    cfg = load_config(None, {"data": {"format": "voc", "root": "x", "classes": ["a"]}, "model": tiny_model_cfg})
    model = build_model(cfg["model"], ["a"], verbose=False)
    path = tmp_path / "best.pt"
    save_checkpoint(path, model=model.state_dict(), config=thaw(cfg), class_names=["a"],
                    freeze=model.facts.freeze, thresholds=thresholds)
    for attempt in (lambda: open_model(path), lambda: export(path, "torchscript")):
        with pytest.raises(CheckpointError, match=r"best.pt: its stored thresholds must map class names to scores"):
            attempt()
    assert not list(tmp_path.glob("*.torchscript"))
