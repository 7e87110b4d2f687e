"""The start-up lines of a split (data/summary.py)."""

import numpy as np

from detection.data.records import DatasetInfo, ImageRecord
from detection.data.summary import box_stats, short_summary


def rec(size):
    boxes = np.array([[10, 10, 10 + size, 10 + size]] * 5, np.float32)
    return ImageRecord("x.jpg", 4000, 3000, boxes, np.ones(5, np.int64), np.zeros(5, bool), np.zeros(5, bool), 1)


def test_tiny_boxes_at_the_input_get_the_recipe_or_tiles_advised_never_slicing_alone():
    info = DatasetInfo(["a"], [1], "test")
    tiny = short_summary([rec(40)], info, 480, 640)  # 40 px of 3000 -> 6 px at a 480 input
    assert "let the recipe choose the scale and tiles (recipe.fit=true" in tiny and "model.tile_size" in tiny
    assert "--slice" not in tiny  # slicing a model trained on whole images lowered HIT-UAV's AP
    assert "recipe" not in short_summary([rec(400)], info, 480, 640)


def test_a_tiled_model_sees_boxes_at_its_tile_scale():
    """Tiles of 500 native px fed at 480: a 40-px box is 38 px to the model, not the 6 px a whole
    4000 x 3000 image at 480 would make it, so no advice."""
    info = DatasetInfo(["a"], [1], "test")
    assert "recipe" not in short_summary([rec(40)], info, 480, 480, tile=500)
    stats = box_stats([rec(40)], 480, 480, tile=500)
    assert np.allclose(stats["w"], 40 * 480 / 500)
