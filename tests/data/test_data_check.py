"""tools/data_check.py: every defect named in report.md, leakage found, non-zero exit when training would fail."""

import json
import shutil

import cv2
import numpy as np
import pytest

from detection.cli.data_check import main


def _voc(root):
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(root / "JPEGImages" / f"im{i}.jpg"), rng.integers(0, 255, (60, 80, 3), np.uint8))
        declared = "<size><width>99</width><height>60</height></size>" if i == 1 else ""
        degenerate = "<object><name>cat</name><bndbox><xmin>9</xmin><ymin>9</ymin><xmax>9</xmax><ymax>30</ymax>" \
                     "</bndbox></object>" if i == 2 else \
            "<object><name>cat</name><bndbox><xmin>50</xmin><ymin>9</ymin><xmax>120</xmax><ymax>30</ymax>" \
            "</bndbox></object>" if i == 0 else ""  # partly outside: clipped, kept, listed
        (root / "Annotations" / f"im{i}.xml").write_text(
            f"<annotation><filename>im{i}.jpg</filename>{declared}<object><name>{'cat' if i % 2 else 'dog'}</name>"
            f"<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>{10 + 5 * i}</xmax><ymax>40</ymax></bndbox></object>"
            f"{degenerate}</annotation>")
    (root / "ImageSets/Main/train.txt").write_text("im0\nim1\nim2\nim3\nim2\n")
    (root / "ImageSets/Main/val.txt").write_text("im4\nim5\n")
    data = (root / "JPEGImages/im3.jpg").read_bytes()
    (root / "JPEGImages/im3.jpg").write_bytes(data[: len(data) // 2])  # truncated: usable, but named
    shutil.copy(root / "JPEGImages/im0.jpg", root / "JPEGImages/im5.jpg")  # the same picture in train and val


def _run(args):
    try:
        main(args)
    except SystemExit as e:
        return e.code
    return 0


def test_report_names_every_defect_and_the_leak(tmp_path):
    _voc(tmp_path / "voc")
    code = _run(["--data", str(tmp_path / "voc"), "--format", "voc", "--out", str(tmp_path / "out"),
                 "model.min_size=32", "model.max_size=48"])
    assert code == 0
    report = (tmp_path / "out/report.md").read_text()
    assert "**Training can start.**" in report
    assert "train: degenerate_boxes (1)\n- im2.xml" in report
    assert "train: size_mismatch (1)\n- im1.xml" in report
    assert "train: clipped_boxes (1)\n- im0.xml" in report
    assert "train: duplicate_ids (1)\n- im2" in report
    assert "im3.jpg: truncated JPEG" in report
    assert "- im5.jpg = train im0.jpg" in report
    assert "thinner than 8 px" in report and "| train | 4 | 5 | 0 |" in report  # 4 images, 5 boxes, 0 negatives
    assert (tmp_path / "out/class_histogram.png").stat().st_size > 0 and (tmp_path / "out/box_sizes.png").is_file()
    assert len(list((tmp_path / "out/browse/train").glob("*.jpg"))) == 4
    assert "## Fingerprint of the training split" in report and "fingerprint: 4 images (0 without boxes), 5 boxes" \
        in report
    assert json.loads((tmp_path / "out/fingerprint.json").read_text())["boxes"] == 5
    # a second check never overwrites the first
    assert _run(["--data", str(tmp_path / "voc"), "--format", "voc", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out-2/report.md").is_file()


@pytest.mark.parametrize("breakage", ["val_image", "no_boxes"])
def test_exit_status_says_training_would_fail(tmp_path, breakage):
    _voc(tmp_path / "voc")
    if breakage == "val_image":
        (tmp_path / "voc/JPEGImages/im4.jpg").write_bytes(b"not an image")
    else:
        for i in range(4):
            (tmp_path / f"voc/Annotations/im{i}.xml").write_text(f"<annotation><filename>im{i}.jpg</filename>"
                                                                   "</annotation>")
    code = _run(["--data", str(tmp_path / "voc"), "--format", "voc", "--out", str(tmp_path / "out"),
                 "data.classes=[cat,dog]"])
    assert code == 1
    report = (tmp_path / "out/report.md").read_text()
    assert "**Training would fail:**" in report
    assert ("im4.jpg" in report) if breakage == "val_image" else ("no boxes" in report)


def test_needs_cfg_or_data(tmp_path, capsys):
    with pytest.raises(SystemExit, match="config error: give --cfg"):
        main([])


def test_every_split_found_is_checked_at_the_configs_input_size(tmp_path):
    """A converted YOLO set with train and test but no val: the missing val stops training (exit 1),
    and the test split, where the truncated image is, is still read and reported; sizes are those
    training would use: the recipe's from yolo_frcnn.yaml's 480 / 800 (24-px boxes at 8x are far over
    the 32-px smallest anchor: shrunk to auto_size's floor of 256), and a user's own sizes as given."""
    root = tmp_path / "y"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), rng.integers(0, 255, (60, 80, 3), np.uint8))
            (root / "labels" / split / f"{i}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    data = (root / "images/test/1.jpg").read_bytes()
    (root / "images/test/1.jpg").write_bytes(data[: len(data) // 2])
    (root / "data.yaml").write_text("path: .\ntrain: images/train\ntest: images/test\nnames: [cell]\n")
    out = tmp_path / "out"
    assert _run(["--data", str(root / "data.yaml"), "--format", "yolo", "--out", str(out), "--browse", "0"]) == 1
    report = (out / "report.md").read_text()
    assert "has no `val` entry" in report  # what stops training
    assert "| test | 3 |" in report and "### test: damaged_images (1)" in report and "1.jpg: truncated JPEG" in report
    assert "(min_size 256, max_size 427)" in report
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("_base_: yolo_frcnn.yaml\nmodel: {min_size: 320, max_size: 512}\n")
    _run(["--data", str(root / "data.yaml"), "--cfg", str(cfg), "--out", str(tmp_path / "out2"), "--browse", "0"])
    assert "(min_size 320, max_size 512)" in (tmp_path / "out2" / "report.md").read_text()


def test_a_config_whose_splits_the_data_lacks_gets_the_report_and_the_splits_it_has(tmp_path, capfd):
    """voc_frcnn.yaml reads trainval / test; a set with train / val only, and a class the train
    split has but val lacks, used to stop in a traceback (each split had read its own classes, in
    its own order). Now: exit 1, both splits counted under one class list, the fix named."""
    _voc(tmp_path / "voc")
    (tmp_path / "voc/ImageSets/Main/val.txt").write_text("im4\n")  # a dog only: its label 1 is train's 2
    out = tmp_path / "out"
    code = _run(["--cfg", "voc_frcnn.yaml", "--data", str(tmp_path / "voc"), "--out", str(out), "--browse", "1",
                 "data.classes=[]"])
    assert code == 1
    report = (out / "report.md").read_text()
    assert report.count("**Training would fail:** VOC split file not found") == 2
    assert "| cat | 3 | 0 |" in report and "| dog | 2 | 1 |" in report  # im0, im1, im3 cats; im0, im2 dogs
    assert "| train-split | 4 | 5 |" in report and (out / "browse/train-split").is_dir()
    said = capfd.readouterr()
    assert "data.train_split=train data.val_split=val reads them" in said.out + said.err


@pytest.mark.parametrize("lo,hi", [(8.5, 60), (9, 40), (10, 30), (3, 2000), (110, 650)])
def test_box_sizes_tick_labels_never_overlap(tmp_path, monkeypatch, lo, hi):
    """Boxes of 8.5 to 60 px made matplotlib label its minor log ticks (2x10^1, 3x10^1, 4x10^1 ...) on
    top of each other; the plot is ticked in plain pixels with room between the labels."""
    from matplotlib.figure import Figure

    from detection.data.doctor import SideReport, write_plots
    from detection.data.records import ImageRecord

    rng = np.random.default_rng(0)
    recs = []
    for i in range(20):
        wh = rng.uniform(lo, hi, (5, 2))
        boxes = np.concatenate([np.zeros((5, 2)), wh], 1)
        recs.append(ImageRecord(f"{i}.jpg", 640, 480, boxes, np.ones(5, int), np.zeros(5, bool), np.zeros(5, bool), i))
    figures = {}
    real_save = Figure.savefig

    def keep(fig, path, *a, **k):
        figures[str(path).rsplit("/", 1)[-1]] = fig
        return real_save(fig, path, *a, **k)

    monkeypatch.setattr(Figure, "savefig", keep)
    write_plots([SideReport("train", recs)], ["thing"], str(tmp_path), 480, 640)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures["box_sizes.png"]
    canvas = FigureCanvasAgg(fig)  # pyplot closed it: draw it again to measure the labels
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    for axis, (vmin, vmax), at in ((ax.xaxis, ax.get_xlim(), 0), (ax.yaxis, ax.get_ylim(), 1)):
        shown = [t for t in axis.get_ticklabels(minor=False) + axis.get_ticklabels(minor=True)
                 if t.get_visible() and t.get_text() and vmin <= t.get_position()[at] <= vmax]
        assert len(shown) >= 2, [t.get_text() for t in shown]
        extents = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: (b.x0, b.y0))
        for a, b in zip(extents, extents[1:]):
            assert not a.overlaps(b), [t.get_text() for t in shown]
