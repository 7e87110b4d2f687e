"""Broken and hostile input to predictor: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import numpy as np
import torch


def test_inference_shrinks_large_images_before_they_become_floats(tiny_ckpt, monkeypatch):
    from detection.inference.loading import open_model

    pred = open_model(tiny_ckpt, torch.device("cpu")).predictor
    seen = []
    real = pred.model.forward
    monkeypatch.setattr(pred.model, "forward", lambda images: seen.append(images[0].shape) or real(images))
    big = np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), np.uint8)
    pred.model.eval()
    out = pred(big, conf=0.0)
    assert seen[0][1:] == (107, 160)  # the tiny model: min_size 128, max_size 160 -> 160 / 3000 of each side
    assert all(0 <= d["box"][2] <= 3000 and 0 <= d["box"][3] <= 2000 for d in out)  # original pixels
