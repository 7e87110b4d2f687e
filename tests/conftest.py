"""Shared fixtures: small data sets written on the fly, and a model config for tiny inputs."""

from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detection.cli import train as train_cli
from detection.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def default_cfg() -> dict:
    with open(ROOT / "configs" / "_base_" / "default.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture
def tiny_model_cfg(default_cfg) -> dict:
    """Random-init MobileNetV2 Faster R-CNN on small images: fast and download-free."""
    m = copy.deepcopy(default_cfg["model"])
    m.update(weights="none", min_size=128, max_size=160, fpn_channels=32,
             rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
             rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=64)
    return m


def write_voc(root: Path, items: dict[str, list[tuple]], split: str = "train", size=(64, 48),
              write_size: bool = True) -> Path:
    """A VOC folder; items: image id -> [(name, xmin, ymin, xmax, ymax, difficult), ...]."""
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    w, h = size
    for image_id, objects in items.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), np.full((h, w, 3), 127, np.uint8))
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
        if write_size:
            s = ET.SubElement(ann, "size")
            ET.SubElement(s, "width").text = str(w)
            ET.SubElement(s, "height").text = str(h)
        for name, x1, y1, x2, y2, difficult in objects:
            o = ET.SubElement(ann, "object")
            ET.SubElement(o, "name").text = name
            ET.SubElement(o, "difficult").text = str(int(difficult))
            bb = ET.SubElement(o, "bndbox")
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x1, y1, x2, y2)):
                ET.SubElement(bb, tag).text = str(v)
        ET.ElementTree(ann).write(root / "Annotations" / f"{image_id}.xml")
    with open(root / "ImageSets" / "Main" / f"{split}.txt", "w") as f:
        f.write("\n".join(items) + "\n")
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    from detection.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic") / "set"
    generate(str(root), num_train=24, num_val=8, image_size=128, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A one-epoch run of a tiny random-init detector on a small synthetic set (its folder)."""
    from detection.config import CONFIG_DIR

    top = tmp_path_factory.mktemp("tiny_run")
    train_cli.main(["--cfg", str(CONFIG_DIR / "demo.yaml"), f"data.root={top / 'data'}", "name=r",
                    f"output_dir={top / 'runs'}", "data.synthetic.num_train=16", "data.synthetic.num_val=6",
                    "data.synthetic.image_size=96", "data.num_workers=0", "model.weights=none", "model.min_size=96",
                    "model.max_size=96", "model.fpn_channels=32", "train.epochs=1", "train.warmup_iters=1"])
    return top / "runs" / "r"


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED} (see ../shared/datasets/README.md)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path, monkeypatch):
    """Tests never read or write the user's hub cache, and never download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    os.environ.pop("HTTPS_PROXY", None)


# --- fixtures of the bad-input tests (tests/bad_inputs.py makes their inputs) ---


@pytest.fixture
def tiny_ckpt(tmp_path, tiny_model_cfg) -> Path:
    from detection.checkpoint import save_checkpoint
    from detection.models.builders import build_model

    cfg = load_config(None, {"data": {"format": "coco", "root": "x"}, "model": tiny_model_cfg})
    model = build_model(cfg["model"], ["a"], verbose=False)
    path = tmp_path / "tiny" / "weights" / "best.pt"
    save_checkpoint(path, model=model.state_dict(), config=cfg, class_names=["a"], freeze=model.facts.freeze)
    return path


@pytest.fixture
def fake_trials(monkeypatch, tmp_path):
    """Trials that 'train' at once: each returns the AP its draw gives (or what `results` says)."""
    import detection.tuning.study as study_module

    results = {"res": None}

    def fake_train(cfg, on_validation=None):
        if results["res"] is not None:
            return tmp_path, results["res"]
        ap = 0.1 + 0.1 * cfg["model"]["freeze_at"]
        return tmp_path, {"coco": {"AP": ap, "AP50": ap}, "intervals": {}}

    monkeypatch.setattr(study_module, "train", fake_train)
    return results


@pytest.fixture(scope="module")
def uninterrupted(synthetic_root, default_cfg, tmp_path_factory):
    from detection.training.trainer import train

    root = tmp_path_factory.mktemp("kill")
    tiny = dict(weights="none", min_size=128, max_size=160, fpn_channels=32, rpn_pre_nms_top_n_train=200,
                rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
                box_batch_size_per_image=64)  # conftest's tiny_model_cfg, which is per test
    cfg = load_config(None, {
        "name": "whole", "output_dir": str(root / "runs"), "model": tiny,
        "data": {"format": "coco", "root": str(synthetic_root / "coco"), "num_workers": 0},
        "train": {"epochs": 2, "batch_size": 12, "warmup_iters": 2, "milestones": [2], "lr": 0.01, "ckpt_every": 1}})
    whole, _ = train(cfg)
    return root, cfg, Path(whole)
