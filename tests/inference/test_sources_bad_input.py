"""Broken and hostile input to sources: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import pytest

from detection.cli import infer as infer_cli
from detection.errors import DataError
from tests.bad_inputs import (
    _identity_predictor,
    _tracking_parts,
    _video,
)


def test_video_frames_over_the_pixel_budget_are_refused_before_decoding(tmp_path):
    from detection.inference.sources import open_source

    video = _video(tmp_path / "big.avi", frames=3, size=(64, 48))
    with pytest.raises(DataError, match=r"big.avi: frames of 64x48 .* over the pixel budget"):
        open_source(str(video), max_pixels=1000)


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


def test_two_videos_of_the_same_name_keep_their_own_outputs(tmp_path, monkeypatch):
    from tests.inference.test_tracking import _shapes_video

    ckpt = _tracking_parts(tmp_path, monkeypatch)
    for day in ("day1", "day2"):
        (tmp_path / day).mkdir()
    a = _shapes_video(tmp_path / "day1" / "clip.mp4", frames=6)
    b = _shapes_video(tmp_path / "day2" / "clip.mp4", frames=9)
    out = tmp_path / "out"
    infer_cli.main(["--source", str(a), str(b), "--ckpt", str(ckpt), "--track", "--save-labels", "yolo",
                    "--score", "0.5", "--out", str(out)])
    assert sorted(p.name for p in out.glob("*.mp4")) == ["clip.mp4", "day2_clip.mp4"]
    tracks = {p.name: len(p.read_text().splitlines()) for p in (out / "tracks").glob("*.txt")}
    assert tracks == {"clip.txt": 6 * 3, "day2_clip.txt": 9 * 3}  # three squares a frame, each video its own
    frames = sorted(p.name for p in (out / "frames").glob("*.jpg"))
    assert len(frames) == 6 + 9 and sum(f.startswith("day2_clip_") for f in frames) == 9
    labels = list((out / "labels_yolo").rglob("*.txt"))
    assert len([p for p in labels if p.name != "classes.txt"]) == 15
