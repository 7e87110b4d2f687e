"""The training set's fingerprint on crafted records: every number checked against a count by hand."""

import json
import math

import numpy as np

from detection.data.fingerprint import fingerprint
from detection.data.records import ImageRecord


def _record(i, size, boxes, labels):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return ImageRecord(f"/x/{i}.jpg", size[0], size[1], boxes, np.array(labels, np.int64), np.zeros(n, bool),
                       np.zeros(n, bool), i)


def test_the_fingerprint_counts_sizes_crowding_and_shares():
    # 10 images of 640x480: nine with one 16x16 box of class a, one with 9 boxes 64x16 (sqrt 32) of class b,
    # and two more images without boxes, of 1000x500
    recs = [_record(i, (640, 480), [[0, 0, 16, 16]], [1]) for i in range(9)]
    recs.append(_record(9, (640, 480), [[k, 0, k + 64, 16] for k in range(9)], [2] * 9))
    recs += [_record(10 + i, (1000, 500), [], []) for i in range(2)]
    fp = fingerprint(recs, ["a", "b", "c"])
    assert (fp.images, fp.negatives, fp.boxes) == (12, 2, 18)
    assert fp.box_side[5] == 16 and fp.box_side[95] == 32 and fp.box_short[50] == 16
    assert fp.box_long_ratio[5] == 16 / 640
    assert fp.boxes_per_image == {"median": 1.0, "p95": 5.4, "max": 9}  # linear p95 of 9 ones and a 9: 1 + 0.55 * 8
    assert fp.image_long[50] == 640 and fp.image_short[95] == 500
    assert list(fp.class_shares) == ["a", "b", "c"] and fp.class_shares["b"] == 0.5 and fp.rare_classes == ["c"]
    text = "\n".join(fp.lines())
    assert "18 boxes" in text and "median 1, p95 5.4, max 9" in text and "rare (under 1%): c" in text


def test_a_set_without_boxes_has_a_fingerprint_that_says_so(tmp_path):
    fp = fingerprint([_record(0, (64, 48), [], [])], ["a"])
    assert fp.boxes == 0 and math.isnan(fp.box_side[50]) and fp.lines() == ["fingerprint: 1 images, no boxes"]
    fp.write(tmp_path / "fingerprint.json")
    assert json.loads((tmp_path / "fingerprint.json").read_text())["images"] == 1


def test_grey_images_are_told_from_colour_ones_on_a_sample_of_real_files(tmp_path):
    """A single-channel PNG and a grey picture saved as a colour JPEG (its chroma rounded) are
    grey; a colour JPEG is not; a file that does not decode is left out of the sample."""
    import cv2

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (96, 128), np.uint8)
    colour = rng.integers(0, 256, (96, 128, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "0.png"), grey)
    cv2.imwrite(str(tmp_path / "1.jpg"), cv2.merge([grey, grey, grey]), [cv2.IMWRITE_JPEG_QUALITY, 70])
    cv2.imwrite(str(tmp_path / "2.jpg"), colour)
    (tmp_path / "3.jpg").write_bytes(b"not an image")
    recs = [ImageRecord(str(tmp_path / f"{i}.{'png' if i == 0 else 'jpg'}"), 128, 96, np.zeros((0, 4), np.float32),
                        np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, bool), i) for i in range(4)]
    fp = fingerprint(recs, ["a"])
    assert (fp.grey_images, fp.sampled_images) == (2, 3) and fp.grey_share == 2 / 3
    assert fingerprint(recs[2:3], ["a"]).grey_share == 0.0 and fingerprint([], ["a"]).sampled_images == 0
    assert fingerprint(recs[:2], ["a"]).grey_share == 1.0
