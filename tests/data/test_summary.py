"""The start-up lines of a split (data/summary.py)."""

import numpy as np

from detection.data.records import DatasetInfo, ImageRecord
from detection.data.summary import short_summary


def test_tiny_boxes_at_the_input_get_a_larger_input_advised_never_slicing_alone():
    def rec(size):
        boxes = np.array([[10, 10, 10 + size, 10 + size]] * 5, np.float32)
        return ImageRecord("x.jpg", 4000, 3000, boxes, np.ones(5, np.int64), np.zeros(5, bool), np.zeros(5, bool), 1)

    info = DatasetInfo(["a"], [1], "test")
    tiny = short_summary([rec(40)], info, 480, 640)  # 40 px of 3000 -> 6 px at a 480 input
    assert "train at a larger input (model.min_size=960 model.max_size=1280" in tiny
    assert "--slice" not in tiny  # slicing a model trained on whole images lowered HIT-UAV's AP
    assert "larger input" not in short_summary([rec(400)], info, 480, 640)
