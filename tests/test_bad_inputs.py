"""Broken and hostile inputs, one generated case per class of issue 11, through the CLIs where
a user meets them: each asserts the exit, that the one line names the file and the field, and
that no traceback is printed. Imperfect data is a counted, named warning instead."""

from __future__ import annotations

import csv
import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detection.cli import evaluate as eval_cli
from detection.cli import infer as infer_cli
from detection.cli import train as train_cli
from detection.config import ConfigError, load_config
from detection.data.coco import read_coco
from detection.data.images import ImageReadError, read_image
from detection.data.voc import read_voc
from detection.errors import CheckpointError, DataError, OutputError
from tests.conftest import write_voc

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.weights=none", "model.min_size=96", "model.max_size=96", "model.fpn_channels=32", "device=cpu",
        "model.rpn_pre_nms_top_n_train=100", "model.rpn_post_nms_top_n_train=50", "data.num_workers=0",
        "train.epochs=1", "train.batch_size=2", "train.warmup_iters=1", "train.milestones=[]"]


def cli_error(main, argv, capsys) -> str:
    """Run a CLI that must fail; return its one line, checking nothing else was printed as a traceback."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    msg = str(e.value)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "\n" not in msg.strip(), msg
    return msg


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> None:
    """A valid PNG header declaring width x height, with one tiny compressed row: a few hundred bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def voc_set(tmp_path, n=4, size=(96, 80)) -> Path:
    items = {f"img{i}": [("cat", 10, 10, 60, 50, 0)] for i in range(n)}
    root = write_voc(tmp_path / "voc", items, split="train", size=size)
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n".join(list(items)[:2]) + "\n")
    return root


def train_args(root, tmp_path, *extra):
    return ["--cfg", os.devnull, "data.format=voc", f"data.root={root}", f"output_dir={tmp_path / 'runs'}",
            *TINY, *extra]


# 1. resource exhaustion ------------------------------------------------------------------------

@pytest.fixture
def tiny_ckpt(tmp_path, tiny_model_cfg) -> Path:
    from detection.checkpoint import save_checkpoint
    from detection.models.builders import build_model

    cfg = load_config(None, {"data": {"format": "coco", "root": "x"}, "model": tiny_model_cfg})
    model = build_model(cfg["model"], ["a"], verbose=False)
    path = tmp_path / "tiny" / "weights" / "best.pt"
    save_checkpoint(path, model=model.state_dict(), config=cfg, class_names=["a"], freeze=model.facts.freeze)
    return path


@pytest.mark.parametrize("size", [(20000, 20000), (12000, 9000)])  # PIL's own limit, and only ours
def test_decompression_bomb_is_refused_without_decoding(size, tmp_path, monkeypatch, capsys, tiny_ckpt):
    bomb = tmp_path / "bomb.png"
    bomb_png(bomb, *size)
    assert bomb.stat().st_size < 1000
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("the bomb was decoded"))
    with pytest.raises(ImageReadError, match=r"bomb.png: .*over the pixel budget data.max_pixels=100000000"):
        read_image(str(bomb))
    msg = cli_error(infer_cli.main, ["--image", str(bomb), "--ckpt", str(tiny_ckpt), "--device", "cpu",
                                       "--out", str(tmp_path / "pred")], capsys)
    assert "bomb.png" in msg and "data.max_pixels" in msg


def test_bomb_in_training_is_skipped_and_named_in_validation_an_error(tmp_path, caplog):
    root = voc_set(tmp_path)
    bomb_png(root / "JPEGImages" / "img3.jpg", 30000, 30000)  # the name does not decide the decoder
    with caplog.at_level(logging.WARNING):
        recs, info = read_voc(str(root), "train")
    assert len(recs) == 3 and info.skipped["unreadable_images"] == 1 and "img3.jpg" in caplog.text
    with pytest.raises(DataError, match=r"1 validation image\(s\) cannot be used: .*img3.jpg.*data.max_pixels"):
        (root / "ImageSets" / "Main" / "val.txt").write_text("img0\nimg3\n")
        read_voc(str(root), "val", strict=True)


# 2. reads outside the data set ------------------------------------------------------------------

def test_file_names_cannot_leave_the_image_folder(tmp_path):
    root = voc_set(tmp_path)
    xml = root / "Annotations" / "img0.xml"
    xml.write_text(xml.read_text().replace("<filename>img0.jpg</filename>", "<filename>../../etc/passwd</filename>"))
    with pytest.raises(DataError, match=r"img0.xml: file name '../../etc/passwd' leads outside .*allow_outside_root"):
        read_voc(str(root), "train")
    xml.write_text(xml.read_text().replace("../../etc/passwd", "/etc/passwd"))
    with pytest.raises(DataError, match="leads outside"):
        read_voc(str(root), "train")
    # a symlink inside the folder that points out of it
    outside = tmp_path / "elsewhere.jpg"
    cv2.imwrite(str(outside), np.zeros((80, 96, 3), np.uint8))
    xml.write_text(xml.read_text().replace("/etc/passwd", "link.jpg"))
    (root / "JPEGImages" / "link.jpg").symlink_to(outside)
    with pytest.raises(DataError, match=r"through the symlink .*link.jpg -> .*elsewhere.jpg, which leads outside"):
        read_voc(str(root), "train")
    recs, _ = read_voc(str(root), "train", allow_outside=True)  # the documented opt-in
    assert any(r.path.endswith("link.jpg") for r in recs)


def test_coco_absolute_file_name_is_refused(tmp_path):
    ann = coco_file(tmp_path, images=[{"id": 1, "file_name": "/etc/passwd", "width": 8, "height": 8}])
    with pytest.raises(DataError, match=r"instances.json: image 1: file name '/etc/passwd' leads outside"):
        read_coco(ann, str(tmp_path / "imgs"))


# 3. unreadable images ---------------------------------------------------------------------------

def test_all_unreadable_training_images_end_in_one_line_not_recursion(tmp_path, capsys):
    root = voc_set(tmp_path)
    for i in range(4):
        (root / "JPEGImages" / f"img{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    msg = cli_error(train_cli.main, train_args(root, tmp_path, "data.val_split=train"), capsys)
    assert "no usable images" in msg and "img0.jpg" in msg


def test_unreadable_training_image_is_skipped_once_and_named(tmp_path, caplog):
    from detection.data.dataset import DetectionDataset

    root = voc_set(tmp_path)
    recs, info = read_voc(str(root), "train")
    (root / "JPEGImages" / "img1.jpg").write_bytes(b"broken after the header was read")
    ds = DetectionDataset(recs, info, True, 64, 64, "none")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            for seed in range(4):
                ds[(1, seed)]
    assert ds.unreadable == {1}
    assert caplog.text.count("img1.jpg") == 1  # named once, however often it is drawn


def test_unreadable_validation_image_stops_before_training(tmp_path, capsys):
    root = voc_set(tmp_path)
    data = (root / "JPEGImages" / "img1.jpg").read_bytes()
    (root / "JPEGImages" / "img1.jpg").write_bytes(data[:20])  # header kept, pixels gone
    msg = cli_error(train_cli.main, train_args(root, tmp_path), capsys)
    assert "validation image(s) cannot be" in msg and "img1.jpg" in msg and "remove them from the split" in msg
    assert not list((tmp_path / "runs").glob("*/weights/*.pt"))  # nothing trained, nothing claimed


def test_truncated_jpeg_is_used_with_a_warning(tmp_path, caplog):
    img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8), (0, 0), 5)
    ok, enc = cv2.imencode(".jpg", img)
    path = tmp_path / "cut.jpg"
    path.write_bytes(enc.tobytes()[: len(enc) * 2 // 3])
    with caplog.at_level(logging.WARNING):
        out = read_image(str(path))
    assert out.shape == (120, 160, 3) and "truncated image" in caplog.text and "cut.jpg" in caplog.text
    assert np.abs(out[:20].astype(int) - img[:20, :, ::-1]).mean() < 10  # the top decodes (BGR written, RGB read)


def test_failing_validation_keeps_the_epochs_training(tmp_path, monkeypatch, synthetic_root, tiny_model_cfg):
    from detection.training import trainer

    cfg = load_config(None, {"output_dir": str(tmp_path / "runs"), "model": tiny_model_cfg,
                             "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
                             "train": {"epochs": 1, "warmup_iters": 1, "milestones": []}})

    def broken(self, row):
        raise ImageReadError("cannot decode image: val_00003.jpg")

    monkeypatch.setattr(trainer.Trainer, "validate", broken)
    with pytest.raises(ImageReadError):
        trainer.train(cfg)
    last = next((tmp_path / "runs").glob("*/weights/last.pt"))
    assert torch.load(last, weights_only=True)["epoch"] == 1


# 4. silently wrong metrics and data -------------------------------------------------------------

def coco_file(tmp_path, images, annotations=(), categories=({"id": 1, "name": "a"},)) -> str:
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for im in images:
        if not os.path.isabs(im["file_name"]):
            cv2.imwrite(str(tmp_path / "imgs" / im["file_name"]), np.zeros((32, 40, 3), np.uint8))
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": list(images), "annotations": list(annotations),
                                "categories": list(categories)}))
    return str(path)


def test_coco_duplicate_image_ids_are_an_error(tmp_path):
    ann = coco_file(tmp_path, [{"id": 7, "file_name": "a.jpg", "width": 40, "height": 32},
                               {"id": 7, "file_name": "b.jpg", "width": 40, "height": 32}])
    with pytest.raises(DataError, match=r"instances.json: image id 7 is used by both 'a.jpg' and 'b.jpg'"):
        read_coco(ann, str(tmp_path / "imgs"))


def test_coco_bad_boxes_and_orphans_are_counted_and_named(tmp_path, caplog):
    boxes = [None, [1, 2, 3], ["x", 0, 1, 1], [float("nan"), 0, 5, 5], [0, 0, float("inf"), 5], [0, 0, 0, 5],
             [2, 2, 10, 10]]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": b} for i, b in enumerate(boxes)]
    anns.append({"id": 99, "image_id": 42, "category_id": 1, "bbox": [0, 0, 4, 4]})
    ann = coco_file(tmp_path, [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 32}], anns)
    with caplog.at_level(logging.WARNING):
        recs, info = read_coco(ann, str(tmp_path / "imgs"))
    np.testing.assert_allclose(recs[0].boxes, [[2, 2, 12, 12]])  # inf was not clipped into a full-width box
    assert info.skipped["invalid_boxes"] == 5 and info.skipped["degenerate_boxes"] == 1
    assert info.skipped["orphan_annotations"] == 1 and "image_id 42" in caplog.text
    assert "instances.json image 1" in caplog.text


def test_voc_duplicate_ids_and_wrong_or_textual_size(tmp_path, caplog):
    root = voc_set(tmp_path)
    (root / "ImageSets" / "Main" / "train.txt").write_text("img0\nimg1\nimg0\n")
    xml = root / "Annotations" / "img1.xml"
    xml.write_text(xml.read_text().replace("<width>96</width>", "<width>192</width>"))
    xml0 = root / "Annotations" / "img0.xml"
    xml0.write_text(xml0.read_text().replace("<width>96</width>", "<width>wide</width>"))
    with caplog.at_level(logging.WARNING):
        recs, info = read_voc(str(root), "train")
    assert [Path(r.path).name for r in recs] == ["img0.jpg", "img1.jpg"]  # each once
    assert "listed more than once" in caplog.text
    assert info.skipped["size_mismatch"] == 1 and "img1.xml" in caplog.text
    assert (recs[1].width, recs[1].height) == (96, 80)  # the file's size
    np.testing.assert_allclose(recs[1].boxes, [[9, 9, 60, 50]])  # not rescaled by 96/192


# 5. run bookkeeping ---------------------------------------------------------------------------

@pytest.mark.parametrize("override, field", [("train.lr=.nan", "train.lr"), ("train.lr=-0.1", "train.lr"),
                                             ("train.epochs=0", "train.epochs"), ("eval.voc_metric=voc2007",
                                                                                    "eval.voc_metric"),
                                             ("train.momentum=1.5", "train.momentum"), ("device=gpu", "device")])
def test_bad_numbers_and_choices_stop_before_any_data_is_read(override, field, tmp_path, capsys):
    msg = cli_error(train_cli.main, ["--cfg", os.devnull, "data.format=voc", f"data.root={tmp_path / 'absent'}",
                                     override], capsys)
    assert msg.startswith("config error: ") and f"`{field}`" in msg


def test_a_set_without_boxes_is_refused(tmp_path, capsys):
    root = write_voc(tmp_path / "voc", {"a": [], "b": []})
    msg = cli_error(train_cli.main, train_args(root, tmp_path, "data.classes=[cat]", "data.val_split=train"), capsys)
    assert "no boxes at all" in msg and not list((tmp_path / "runs").glob("*/weights/best.pt"))


@pytest.mark.slow
def test_results_csv_keeps_ap_columns_when_epoch_1_is_not_validated(tmp_path, synthetic_root, tiny_model_cfg):
    from detection.training.trainer import train

    cfg = load_config(None, {"output_dir": str(tmp_path / "runs"), "model": tiny_model_cfg,
                             "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
                             "train": {"epochs": 2, "eval_every": 1000, "warmup_iters": 1, "milestones": []}})
    run, _ = train(cfg)
    with open(run / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["AP"] == "" and float(rows[1]["AP"]) >= 0 and "voc_mAP" in rows[1]


# 6. faults ------------------------------------------------------------------------------------

def test_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from detection.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "weights" / "last.pt"
    save_checkpoint(path, model={"w": torch.ones(1)}, config={}, class_names=["a"], epoch=1)

    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputError, match=r"cannot write checkpoint .*last.pt: the disk holding .*weights is full"):
        save_checkpoint(path, model={"w": torch.zeros(1)}, config={}, class_names=["a"], epoch=2)
    monkeypatch.undo()
    assert not list(path.parent.glob("*.tmp")) and load_checkpoint(path)["epoch"] == 1


def test_unwritable_output_dir_is_one_line(tmp_path, capsys):
    root = voc_set(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    msg = cli_error(train_cli.main, train_args(root, tmp_path, f"output_dir={blocker / 'runs'}"), capsys)
    assert msg.startswith("error: cannot create a folder in ") and "file/runs" in msg and "writable output_dir" in msg


@pytest.mark.slow
def test_ddp_start_on_a_fresh_clone_generates_the_synthetic_set_once(tmp_path):
    from tests.training.test_ddp import free_port

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(ROOT / "tools" / "train_det.py"), "--cfg",
           str(ROOT / "configs" / "demo.yaml"), f"data.root={tmp_path / 'synthetic'}", "data.synthetic.num_train=8",
           "data.synthetic.num_val=4", "data.synthetic.image_size=96", f"output_dir={tmp_path / 'runs'}", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "synthetic" / "coco" / "annotations" / "instances_train.json").is_file()
    assert not (tmp_path / "synthetic.tmp").exists()  # one generation, finished, no half-written copy
    assert len(json.loads((tmp_path / "synthetic" / "coco" / "annotations" / "instances_val.json").read_text())[
        "images"]) == 4
    assert len(list((tmp_path / "runs").glob("*/weights/last.pt"))) == 1


# 7. wrong checkpoints -------------------------------------------------------------------------

def test_checkpoint_of_other_classes_as_weights_file_is_one_line(tmp_path, tiny_model_cfg, capsys):
    from detection.checkpoint import save_checkpoint
    from detection.models.builders import build_model

    other = build_model(tiny_model_cfg, ["a", "b", "c", "d", "e"], verbose=False)
    ck = tmp_path / "other.pt"
    save_checkpoint(ck, model=other.state_dict(), config={"model": {"arch": "fasterrcnn_mobilenet_v2_fpn"}},
                    class_names=list("abcde"))
    root = voc_set(tmp_path)
    msg = cli_error(train_cli.main, train_args(root, tmp_path, "model.weights=pretrained",
                                               f"model.weights_file={ck}"), capsys)
    assert "other.pt" in msg and "do not fit" in msg and "weights_only" not in msg


def test_corrupt_or_foreign_checkpoints_in_eval_infer_and_resume(tmp_path, capsys):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"garbage")
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((16, 16, 3), np.uint8))
    for main, argv in ((eval_cli.main, ["--ckpt", str(bad)]), (infer_cli.main, ["--image", str(img), "--ckpt",
                                                                                 str(bad)])):
        msg = cli_error(main, argv, capsys)
        assert "best.pt: not a loadable checkpoint" in msg
    torch.save({"w": torch.ones(1)}, bad)
    msg = cli_error(train_cli.main, [f"resume={bad}"], capsys)
    assert "no run there" in msg
    (tmp_path / "run" / "weights").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("data: {format: voc, root: x}\n")
    torch.save({"w": torch.ones(1)}, tmp_path / "run" / "weights" / "last.pt")
    msg = cli_error(train_cli.main, [f"resume={tmp_path / 'run'}"], capsys)
    assert "last.pt: not a checkpoint of this toolkit" in msg


# 8. errors in general -------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((16, 16, 3), np.uint8))
    msg = cli_error(infer_cli.main, ["--image", str(img), "--device", "cuda"], capsys)
    assert "device=cuda but CUDA is not available" in msg


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    from detection.training import trainer

    root = voc_set(tmp_path)
    monkeypatch.setattr(trainer, "train", lambda cfg: (_ for _ in ()).throw(ValueError("a bug, not the user's")))
    with pytest.raises(ValueError, match="a bug"):
        train_cli.main(train_args(root, tmp_path))


def test_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="train.max_nonfinite"):
        load_config(None, ["data.format=voc", "data.root=x", "train.max_nonfinite=0"])
    with pytest.raises(CheckpointError):
        from detection.checkpoint import load_checkpoint

        load_checkpoint("/nonexistent/last.pt")


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


def test_results_and_config_writes_fail_in_one_line(tmp_path):
    from detection.config import save_config
    from detection.training.results_log import ResultsLog

    gone = tmp_path / "no" / "such" / "folder"
    with pytest.raises(OutputError, match=r"cannot write .*results.csv"):
        ResultsLog(gone / "results.csv").append({"epoch": 1})
    with pytest.raises(OutputError, match=r"cannot write .*config.yaml"):
        save_config({"a": 1}, gone / "config.yaml")
