"""Broken and hostile input to infer: each case asserts the one line that names the file, the field and
the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.cli import infer as infer_cli
from tests.bad_inputs import (
    _jpg,
    _tracking_parts,
)


@pytest.mark.parametrize("flag", [["--batch", "0"], ["--batch", "-2"], ["--vid-stride", "0"], ["--max-det", "0"]])
def test_infer_refuses_counts_below_one(flag, capsys):

    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", "x.jpg", *flag])
    assert e.value.code == 2 and "must be 1 or more" in capsys.readouterr().err


def test_track_on_a_folder_of_images_is_one_line_and_makes_nothing(tmp_path, monkeypatch):

    ckpt = _tracking_parts(tmp_path, monkeypatch)
    _jpg(tmp_path / "frames" / "000001.jpg")
    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", str(tmp_path / "frames"), "--ckpt", str(ckpt), "--track",
                        "--out", str(tmp_path / "out")])
    assert "--track follows objects through the frames of a video" in str(e.value.code)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("line", ["nan,0,10,10", "0,0,inf,10", "0,-inf,1,1"])
def test_a_counting_line_of_non_finite_points_is_refused(line, capsys):

    with pytest.raises(SystemExit):
        infer_cli.parse_args(["--source", "x.mp4", "--track", "--line", line])
    assert "finite numbers" in capsys.readouterr().err


def test_infer_with_a_one_pixel_tile_step_exits_in_one_line(tmp_path, capsys):
    from tests.inference.test_model_out import _checkpoint

    ckpt = _checkpoint(tmp_path / "run" / "weights" / "best.pt")
    _jpg(tmp_path / "in" / "x.jpg", 640, 640)
    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", str(tmp_path / "in"), "--ckpt", str(ckpt), "--slice", "32", "--overlap", "0.99",
                        "--out", str(tmp_path / "out")])
    assert "370,881 tiles" in str(e.value.code)
