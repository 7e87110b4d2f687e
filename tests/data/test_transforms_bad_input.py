"""Broken and hostile input to transforms: each case asserts the one line that names the file, the
field and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import numpy as np
import pytest

from detection.config import ConfigError
from tests.bad_inputs import (
    _laughs,
    _pipeline,
)


@pytest.mark.parametrize("make,said", [
    (lambda A, T: [A.HorizontalFlip(), T()], "ToTensorV2 makes a CxHxW tensor"),
    (lambda A, T: [A.OneOf([A.Normalize(), A.Blur()])], "Normalize normalizes the image, which the model"),
    (lambda A, T: [A.ToFloat()], "ToFloat scales the image to 0-1"),
])
def test_a_pipeline_that_changes_the_tensor_form_is_refused_naming_the_transform(tmp_path, make, said):
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from detection.data.transforms import build_transforms

    for suffix in (".yaml", ".json"):
        path = _pipeline(tmp_path / f"aug{suffix}", *make(A, ToTensorV2))
        with pytest.raises(ConfigError, match=said) as e:
            build_transforms(path, train=True)
        assert path in str(e.value) and "remove it" in str(e.value)


def test_a_plain_pipeline_file_still_runs_and_an_alias_bomb_does_not(tmp_path):
    import albumentations as A

    from detection.data.transforms import apply_transforms, build_transforms

    tf = build_transforms(_pipeline(tmp_path / "ok.yaml", A.HorizontalFlip(p=1.0), A.Blur(p=1.0)), train=True)
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :10] = 255
    out, boxes, _, _ = apply_transforms(tf, image, np.array([[0, 0, 10, 10]], np.float32), np.array([1]),
                                        np.array([False]))
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3) and boxes[0, 0] == 50  # flipped, still HxWx3 uint8
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs() + "transform: {__class_fullname__: Compose, transforms: *a6}\n")
    with pytest.raises(ConfigError, match="expand to more than"):
        build_transforms(str(bomb), train=True)
