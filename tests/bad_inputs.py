"""Makers of broken and hostile inputs, shared by the bad-input tests beside the modules they break."""

from __future__ import annotations

import csv
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detection.data.records import DatasetInfo
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


def coco_file(tmp_path, images, annotations=(), categories=({"id": 1, "name": "a"},)) -> str:
    (tmp_path / "imgs").mkdir(exist_ok=True)
    for im in images:
        if not os.path.isabs(im["file_name"]):
            cv2.imwrite(str(tmp_path / "imgs" / im["file_name"]), np.zeros((32, 40, 3), np.uint8))
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": list(images), "annotations": list(annotations),
                                "categories": list(categories)}))
    return str(path)


def _jpg(path: Path, w=64, h=48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8))
    return path


def _info() -> DatasetInfo:
    return DatasetInfo(class_names=["a"], cat_ids=[1], source="test")


def _torchscript_like(path: Path, meta: dict | bytes, claimed_size: int | None = None) -> Path:
    """A zip laid out as torch.jit.save writes one, with our metadata entry; `claimed_size` makes
    the entry's headers lie about how large it inflates."""
    data = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("m/extra/detection", data)
        z.writestr("m/data.pkl", b"not a model")
    if claimed_size is not None:
        buf = bytearray(path.read_bytes())
        struct.pack_into("<I", buf, 22, claimed_size)  # the local header of the first entry
        central = buf.find(b"PK\x01\x02")
        struct.pack_into("<I", buf, central + 24, claimed_size)
        path.write_bytes(bytes(buf))
    return path


class _Graph:
    """A backend whose graph returns fixed labels (as an exported file might)."""

    device = torch.device("cpu")

    def __init__(self, labels):
        self.labels = np.array(labels)

    def __call__(self, batch):
        n = len(self.labels)
        return [(np.tile([[1.0, 1.0, 9.0, 9.0]], (n, 1)), np.linspace(0.9, 0.5, n), self.labels) for _ in batch]


def _yolo(root: Path, yaml_text: str, label_bytes: bytes | None = b"0 0.5 0.5 0.5 0.5\n", unlabelled: int = 0):
    for split in ("train", "val"):
        _jpg(root / "images" / split / "0.jpg")
        if label_bytes is not None:
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / "0.txt").write_bytes(label_bytes)
        for i in range(unlabelled):
            _jpg(root / "images" / split / f"neg{i}.jpg")
    (root / "data.yaml").write_text(yaml_text)
    return root


def _video(path: Path, frames=20, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 255, (size[1], size[0], 3), np.uint8))
    writer.release()
    return path


def _identity_predictor():
    from detection.inference.predictor import Predictor

    return Predictor(_Graph([1]), ["a"], 32, 32)


def _laughs(levels: int = 6, width: int = 10) -> str:
    """A few hundred bytes of nested aliases that expand to width**levels values."""
    lines = ['a0: &a0 "lol"']
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _tracking_parts(tmp_path, monkeypatch, classes=("red", "blue")):
    from detection.inference.predictor import Predictor
    from tests.inference.test_model_out import _checkpoint
    from tests.inference.test_tracking import _colour_detector

    monkeypatch.setattr(Predictor, "predict", _colour_detector)
    return _checkpoint(tmp_path / "run" / "weights" / "best.pt", classes=classes)


def _tune_args(synthetic_root, tmp_path, *extra, space="model.freeze_at: [0, 1]\n"):
    (tmp_path / "space.yaml").write_text(space)
    return ["--cfg", "configs/demo.yaml", "--holdout", "0.4", "--space", str(tmp_path / "space.yaml"),
            "--time", "5", "--no-final", *extra, "data.format=coco", f"data.root={synthetic_root / 'coco'}",
            f"output_dir={tmp_path / 'runs'}", "model.weights=none"]


def _tune(args) -> str:
    """tools/tune.py's main: '' when it ran, else the one line it exited with."""
    from detection.cli import tune as tune_cli

    try:
        tune_cli.main(args)
    except SystemExit as e:
        return str(e.code)
    return ""


def _benchmarked_run(tmp_path, rows):
    import time

    from detection.utils.runs import Run

    run = Run(tmp_path / "run")
    run.weights.mkdir(parents=True)
    for name in ("best.pt", "best.onnx", "best.int8.onnx"):
        (run.weights / name).write_bytes(b"model")
    outside = tmp_path / "evil.onnx"
    outside.write_bytes(b"not this run's")
    time.sleep(0.01)
    with open(run.benchmark_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["format", "file", "ips_1", "AP"])
        w.writeheader()
        w.writerows(rows)
    return run


def _pipeline(path: Path, *steps) -> str:
    import albumentations as A

    A.save(A.Compose(list(steps)), str(path), data_format="yaml" if path.suffix != ".json" else "json")
    return str(path)


KILL_AFTER_SAVE = '''
import os, signal, sys
from detection.checkpoint import Checkpointer
from detection.config import load_config
from detection.training.trainer import train

real, count = Checkpointer.save, [0]

def save(self, path, snapshot):
    out = real(self, path, snapshot)
    count[0] += 1
    if count[0] == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return out

Checkpointer.save = save
train(load_config(sys.argv[1]))
'''
