"""Broken and hostile input to images: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from detection.cli import infer as infer_cli
from detection.cli import train as train_cli
from detection.data.images import ImageReadError, read_image
from detection.data.records import RawImage, build_records
from detection.data.voc import read_voc
from detection.errors import DataError
from tests.bad_inputs import (
    _info,
    _jpg,
    bomb_png,
    cli_error,
    train_args,
    voc_set,
)


@pytest.mark.parametrize("size", [(20000, 20000), (12000, 9000)])  # PIL's own limit, and only ours
def test_decompression_bomb_is_refused_without_decoding(size, tmp_path, monkeypatch, capsys, tiny_ckpt):
    bomb = tmp_path / "bomb.png"
    bomb_png(bomb, *size)
    assert bomb.stat().st_size < 1000
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("the bomb was decoded"))
    with pytest.raises(ImageReadError, match=r"bomb.png: .*over the pixel budget data.max_pixels=100000000"):
        read_image(str(bomb))
    msg = cli_error(infer_cli.main, ["--image", str(bomb), "--ckpt", str(tiny_ckpt), "--device", "cpu",
                                       "--out", str(tmp_path / "pred")], capsys)
    assert "bomb.png" in msg and "data.max_pixels" in msg


def test_bomb_in_training_is_skipped_and_named_in_validation_an_error(tmp_path, caplog):
    root = voc_set(tmp_path)
    bomb_png(root / "JPEGImages" / "img3.jpg", 30000, 30000)  # the name does not decide the decoder
    with caplog.at_level(logging.WARNING):
        recs, info = read_voc(str(root), "train")
    assert len(recs) == 3 and info.skipped["unreadable_images"] == 1 and "img3.jpg" in caplog.text
    with pytest.raises(DataError, match=r"1 validation image\(s\) cannot be used: .*img3.jpg.*data.max_pixels"):
        (root / "ImageSets" / "Main" / "val.txt").write_text("img0\nimg3\n")
        read_voc(str(root), "val", strict=True)


def test_all_unreadable_training_images_end_in_one_line_not_recursion(tmp_path, capsys):
    root = voc_set(tmp_path)
    for i in range(4):
        (root / "JPEGImages" / f"img{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    msg = cli_error(train_cli.main, train_args(root, tmp_path, "data.val_split=train"), capsys)
    assert "no usable images" in msg and "img0.jpg" in msg


def test_unreadable_training_image_is_skipped_once_and_named(tmp_path, caplog):
    from detection.data.dataset import DetectionDataset

    root = voc_set(tmp_path)
    recs, info = read_voc(str(root), "train")
    (root / "JPEGImages" / "img1.jpg").write_bytes(b"broken after the header was read")
    ds = DetectionDataset(recs, info, True, 64, 64, "none")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            for seed in range(4):
                ds[(1, seed)]
    assert ds.unreadable == {1}
    assert caplog.text.count("img1.jpg") == 1  # named once, however often it is drawn


def test_unreadable_validation_image_stops_before_training(tmp_path, capsys):
    root = voc_set(tmp_path)
    data = (root / "JPEGImages" / "img1.jpg").read_bytes()
    (root / "JPEGImages" / "img1.jpg").write_bytes(data[:20])  # header kept, pixels gone
    msg = cli_error(train_cli.main, train_args(root, tmp_path), capsys)
    assert "validation image(s) cannot be" in msg and "img1.jpg" in msg and "remove them from the split" in msg
    assert not list((tmp_path / "runs").glob("*/weights/*.pt"))  # nothing trained, nothing claimed


def test_truncated_jpeg_is_used_with_a_warning(tmp_path, caplog):
    img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8), (0, 0), 5)
    ok, enc = cv2.imencode(".jpg", img)
    path = tmp_path / "cut.jpg"
    path.write_bytes(enc.tobytes()[: len(enc) * 2 // 3])
    with caplog.at_level(logging.WARNING):
        out = read_image(str(path))
    assert out.shape == (120, 160, 3) and "truncated image" in caplog.text and "cut.jpg" in caplog.text
    assert np.abs(out[:20].astype(int) - img[:20, :, ::-1]).mean() < 10  # the top decodes (BGR written, RGB read)


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
