"""Broken and hostile inputs, third round (issue 29): the surfaces added last (tuning, label
review, benchmark, tracking, slicing, augmentation files, exported-file metadata). Every input
is built here; each case fails on the code before it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detection.config import ConfigError, load_config


def _jpg(path: Path, w=64, h=48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8))
    return path


def _laughs(levels: int = 6, width: int = 10) -> str:
    """A few hundred bytes of nested aliases that expand to width**levels values."""
    lines = ['a0: &a0 "lol"']
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


# --- unsafe -------------------------------------------------------------------------------------

def test_a_billion_laughs_config_is_refused_in_one_line(tmp_path):
    cfg = tmp_path / "laughs.yaml"
    cfg.write_text("name: x\ntrain:\n  time: 1\n" + "\n".join("x" + line for line in _laughs().splitlines()) + "\n")
    assert cfg.stat().st_size < 1000
    with pytest.raises(ConfigError, match="expand to more than 100,000 values") as e:
        load_config(str(cfg))
    assert str(cfg) in str(e.value) and "\n" not in str(e.value)


def test_a_self_referring_alias_is_refused(tmp_path):
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("train: &t\n  lr: 0.01\n  more: *t\n")
    with pytest.raises(ConfigError, match="refers to the value that holds it"):
        load_config(str(cfg))


def test_a_billion_laughs_search_space_is_refused_before_any_trial(tmp_path):
    from detection.tuning.space import load_space

    space = tmp_path / "space.yaml"
    space.write_text(_laughs() + "train.lr: [0.01, 0.02]\n")
    with pytest.raises(ConfigError, match=r"--space .*expand to more than 100,000"):
        load_space(str(space))


def test_a_billion_laughs_data_yaml_is_one_line(tmp_path):
    from detection.data.yolo import YOLOFormatError, load_yolo_yaml

    data = tmp_path / "data.yaml"
    data.write_text(_laughs() + "train: images\nval: images\nnames: [a]\n")
    with pytest.raises(YOLOFormatError, match="expand to more than"):
        load_yolo_yaml(str(data))


def _tracking_parts(tmp_path, monkeypatch, classes=("red", "blue")):
    from detection.inference.predictor import Predictor
    from tests.inference.test_model_out import _checkpoint
    from tests.inference.test_tracking import _colour_detector

    monkeypatch.setattr(Predictor, "predict", _colour_detector)
    return _checkpoint(tmp_path / "run" / "weights" / "best.pt", classes=classes)


def test_class_names_from_a_model_never_write_outside_the_output_folder(tmp_path, monkeypatch):
    """An exported file's metadata names the classes; --save-crops made a folder of each."""
    from detection.cli import infer as infer_cli

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


def test_safe_part_keeps_a_name_one_part_inside_the_folder(tmp_path):
    from detection.runs import safe_part

    for name in ("../..", "..", ".", "/etc/passwd", "C:\\Windows", "a/../../b", "\x00", "", "x" * 500):
        part = safe_part(name)
        assert part and "/" not in part and "\\" not in part and not part.startswith(".") and len(part) <= 120
        assert (tmp_path / part).resolve().parent == tmp_path.resolve()
    assert safe_part("traffic light") == "traffic light" and safe_part("été") == "été"


def test_two_videos_of_the_same_name_keep_their_own_outputs(tmp_path, monkeypatch):
    from detection.cli import infer as infer_cli
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


def test_track_on_a_folder_of_images_is_one_line_and_makes_nothing(tmp_path, monkeypatch):
    from detection.cli import infer as infer_cli

    ckpt = _tracking_parts(tmp_path, monkeypatch)
    _jpg(tmp_path / "frames" / "000001.jpg")
    with pytest.raises(SystemExit) as e:
        infer_cli.main(["--source", str(tmp_path / "frames"), "--ckpt", str(ckpt), "--track",
                        "--out", str(tmp_path / "out")])
    assert "--track follows objects through the frames of a video" in str(e.value.code)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("line", ["nan,0,10,10", "0,0,inf,10", "0,-inf,1,1"])
def test_a_counting_line_of_non_finite_points_is_refused(line, capsys):
    from detection.cli import infer as infer_cli

    with pytest.raises(SystemExit):
        infer_cli.parse_args(["--source", "x.mp4", "--track", "--line", line])
    assert "finite numbers" in capsys.readouterr().err
