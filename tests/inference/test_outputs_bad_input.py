"""Broken and hostile input to outputs: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import cv2
import numpy as np

from detection.cli import infer as infer_cli
from tests.bad_inputs import (
    _tracking_parts,
)


def test_class_names_from_a_model_never_write_outside_the_output_folder(tmp_path, monkeypatch):
    """An exported file's metadata names the classes; --save-crops made a folder of each."""

    ckpt = _tracking_parts(tmp_path, monkeypatch, classes=("../../escaped", str(tmp_path / "abs")))
    img = np.full((96, 128, 3), 230, np.uint8)
    cv2.rectangle(img, (10, 10), (40, 40), (0, 0, 220), -1)  # red (BGR): class 1
    cv2.rectangle(img, (70, 50), (100, 80), (220, 0, 0), -1)  # blue: class 2
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "x.jpg"), img)
    out = tmp_path / "deep" / "out"
    infer_cli.main(["--source", str(tmp_path / "in"), "--ckpt", str(ckpt), "--save-crops", "--score", "0.5",
                    "--out", str(out)])
    crops = sorted(p.relative_to(out).as_posix() for p in (out / "crops").rglob("*.jpg"))
    assert len(crops) == 2 and all(c.count("/") == 2 for c in crops), crops  # crops/<one name>/<file>
    everything = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(out.resolve() in p.parents or tmp_path / "run" in p.parents or p.parent == (tmp_path / "in")
               for p in everything), sorted(map(str, everything))
    assert not (tmp_path / "abs").exists() and not (tmp_path / "escaped").exists()
