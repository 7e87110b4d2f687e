"""Starting a run from a trained model (model.init, training/start.py): weights carried tensor by
tensor for the same and for other class lists in every family, matched names carried, the scale
and anchors kept with the model, and a wrong file refused in one line."""

import logging

import pytest
import torch

from detection.checkpoint import predicting_weights
from detection.cli import train as train_cli
from detection.config import CONFIG_DIR, load_config
from detection.errors import CheckpointError
from detection.models.builders import build_model
from detection.models.heads import carry_trained, class_rows
from detection.training import plan
from detection.training.start import Start
from detection.utils.yaml_io import yaml_load

from ..conftest import write_voc

# one arch a family: frcnn, retinanet, fcos, ssd, ssdlite
FAMILIES = {"fasterrcnn_mobilenet_v2_fpn": 128, "retinanet_mobilenet_v2_fpn": 128, "fcos_resnet50_fpn": 128,
            "ssd300_vgg16": 300, "ssdlite_mobilenet_v2": 160}


def _model(arch, classes, size):
    m = load_config(None, {"data": {"format": "voc", "root": "x"},
                           "model": {"arch": arch, "weights": "none", "min_size": size, "max_size": size,
                                     "fpn_channels": 32}})["model"]
    return build_model(m, classes, verbose=False)


def _trained(model, seed=1):
    """`model` with every parameter and buffer moved off its initialisation, so a carried value can
    only have come from it."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g))
    return model


def _rows(tensor, k, per_class, label):
    return tensor.reshape(-1, k, per_class, *tensor.shape[1:])[:, label]


@pytest.mark.parametrize("arch", FAMILIES)
def test_the_same_classes_carry_every_weight(arch):
    old = _trained(_model(arch, ["cat", "dog"], FAMILIES[arch]))
    new = _model(arch, ["cat", "dog"], FAMILIES[arch])
    carried, fresh = carry_trained(new, old.state_dict(), ["cat", "dog"], "old.pt")
    assert carried == ["cat", "dog"] and fresh == []
    for key, value in old.state_dict().items():
        assert torch.equal(new.state_dict()[key], value), key


@pytest.mark.parametrize("arch", FAMILIES)
def test_other_classes_carry_all_but_the_class_rows_and_the_rows_of_matching_names(arch):
    old = _trained(_model(arch, ["cat", "dog"], FAMILIES[arch]))
    new = _model(arch, ["Dog", "bird", "fish"], FAMILIES[arch])
    before = {k: v.clone() for k, v in new.state_dict().items()}
    carried, fresh = carry_trained(new, old.state_dict(), ["cat", "dog"], "old.pt")
    assert carried == ["Dog"] and fresh == ["bird", "fish"]
    rows = class_rows(new, new.facts.family)
    assert rows and set(rows) <= set(before)
    after, was = new.state_dict(), old.state_dict()
    for key, value in after.items():
        if key not in rows:
            assert torch.equal(value, was[key]), key
            continue
        per = rows[key]
        assert torch.equal(_rows(value, 4, per, 1), _rows(was[key], 3, per, 2)), key  # Dog <- dog
        assert torch.equal(_rows(value, 4, per, 0), _rows(was[key], 3, per, 0)), key  # background
        for label in (2, 3):  # bird, fish: as initialised
            assert torch.equal(_rows(value, 4, per, label), _rows(before[key], 4, per, label)), key


def test_another_arch_or_a_foreign_file_is_refused_in_one_line(tmp_path, tiny_ckpt):
    cfg = load_config(None, {"data": {"format": "voc", "root": "x"}, "model": {"arch": "retinanet_mobilenet_v2_fpn",
                                                                                "init": str(tiny_ckpt)}})
    with pytest.raises(CheckpointError) as e:
        Start.read(cfg["model"]["init"]).inherited(cfg)
    assert "fasterrcnn_mobilenet_v2_fpn model and this config builds retinanet_mobilenet_v2_fpn" in str(e.value)
    plain = tmp_path / "plain.pt"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    for init, says in ((plain, "not a checkpoint of this toolkit"), (tmp_path / "none.pt", "not found"),
                       (tmp_path, "without weights/best.pt")):
        with pytest.raises(CheckpointError) as e:
            Start.read(str(init))
        assert str(e.value).startswith(f"model.init={init}") and says in str(e.value) and "\n" not in str(e.value)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="exported onnx file, which cannot train"):
        Start.read(str(onnx))


def test_a_checkpoint_of_other_anchors_does_not_fit_in_one_line(tiny_ckpt, tiny_model_cfg):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    m = load_config(None, {"data": {"format": "voc", "root": "x"},
                           "model": {**tiny_model_cfg, "fpn_channels": 64}})["model"]
    with pytest.raises(CheckpointError, match="does not fit|do not fit"):
        carry_trained(build_model(m, ["a"], verbose=False), ckpt["model"], ["a"], "old.pt")


def _voc(tmp_path, classes):
    root = tmp_path / "voc"
    write_voc(root, {f"i{k}": [(classes[k % len(classes)], 10, 10, 60, 50, 0)] for k in range(6)}, size=(96, 96))
    write_voc(root, {f"v{k}": [(classes[k % len(classes)], 20, 20, 70, 60, 0)] for k in range(2)}, split="val",
              size=(96, 96))
    return [f"data.root={root}", "data.classes=[]", "data.train_split=train", "data.val_split=val",
            f"output_dir={tmp_path}/runs", "name=r2", "data.num_workers=0", "train.amp=none"]


def test_a_second_round_starts_from_the_first_runs_weights_scale_and_anchors(tmp_path, tiny_run, caplog):
    """VOC data of another class list (circle, as in the first run, and star): the first run's
    predicting weights, its 96-px input (not the VOC config's 480 / 800) and its anchors."""
    best = tiny_run / "weights" / "best.pt"
    cfg = load_config(CONFIG_DIR / "voc_frcnn.yaml", [*_voc(tmp_path, ["circle", "star"]), f"model.init={tiny_run}"])
    with caplog.at_level(logging.INFO, logger="detection"):
        p = plan.prepare(cfg, None, None, torch.device("cpu"))
    assert f"model.init: starting from {best}" in caplog.text
    assert "classes carried: circle" in caplog.text and "new classes (their rows start fresh): star" in caplog.text
    first = torch.load(best, weights_only=True)
    m, old = p.cfg["model"], load_config(base=first["config"])["model"]
    assert (m["min_size"], m["max_size"], m["tile_size"], m["init"]) == (96, 96, 0, str(best))
    assert (m["anchors"], m["anchor_sizes"], m["fpn_channels"]) == (old["anchors"], old["anchor_sizes"], 32)
    rows, weights = class_rows(p.model, "frcnn"), predicting_weights(first)
    for key, value in p.model.state_dict().items():
        if key not in rows and not key.endswith("num_batches_tracked"):
            assert torch.equal(value, weights[key]), key


def test_the_run_records_what_it_started_from_and_a_scale_the_user_sets_wins(tmp_path, tiny_run, capsys):
    train_cli.main(["--cfg", str(CONFIG_DIR / "voc_frcnn.yaml"), *_voc(tmp_path, ["circle"]),
                    f"model.init={tiny_run}", "model.min_size=128", "model.max_size=128", "train.epochs=1",
                    "train.warmup_iters=1"])
    err = capsys.readouterr().err
    run = tmp_path / "runs" / "r2"
    best = str(tiny_run / "weights" / "best.pt")
    saved = yaml_load((run / "config.yaml").read_text())
    assert saved["model"]["init"] == best and (saved["model"]["min_size"], saved["model"]["max_size"]) == (128, 128)
    assert torch.load(run / "weights" / "last.pt", weights_only=True)["config"]["model"]["init"] == best
    assert "the input size is yours (model.max_size, model.min_size)" in err
    assert "classes carried: circle" in err and "new classes" not in err


def test_the_stride4_level_comes_with_the_old_model(tmp_path):
    """A /4 level is modules and anchors the old weights were learned with: a new run keeps it."""
    from detection.config import thaw

    old = load_config(None, {"data": {"format": "voc", "root": "x"}, "model": {"stride4_level": True}})
    start = Start(tmp_path / "old.pt", {"config": thaw(old), "class_names": ["a"]})
    new = load_config(None, {"data": {"format": "voc", "root": "x"}})
    changes, _ = start.inherited(new)
    assert changes["model.stride4_level"] is True
