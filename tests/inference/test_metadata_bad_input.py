"""Broken and hostile input to metadata: each case asserts the one line that names the file, the field
and the fix (or the counted, named skip), and that nothing is lost or written outside."""

from __future__ import annotations

import tracemalloc

import pytest

from detection.config import load_config
from detection.errors import CheckpointError
from tests.bad_inputs import (
    _torchscript_like,
)


@pytest.mark.parametrize("meta, field", [
    ({"class_names": ["a"], "min_size": 200000, "max_size": 200000}, "200000"),
    ({"class_names": ["a"], "min_size": 320, "max_size": 320, "fixed_size": [320, 90000]}, "90000"),
    ({"class_names": ["a"], "min_size": 640, "max_size": 320}, "min_size <= max_size"),
    ({"class_names": [1, None], "min_size": 320, "max_size": 320}, "class_names"),
    ({"class_names": ["a"], "min_size": 320, "max_size": 320, "tile_size": 4}, "tile_size"),
    ({"class_names": ["a"], "min_size": 320, "max_size": 320, "tile_size": "256"}, "tile_size"),
])
def test_exported_metadata_values_are_range_checked_when_the_file_is_opened(tmp_path, meta, field):
    from detection.inference.loading import open_model

    path = _torchscript_like(tmp_path / "m.torchscript", meta)
    with pytest.raises(CheckpointError) as e:
        open_model(path)
    assert str(path) in str(e.value) and field in str(e.value) and "export the checkpoint again" in str(e.value)


def test_a_zip_entry_lying_about_its_size_is_never_inflated_whole(tmp_path):
    """50 MB of zeros deflate to 50 kB; the headers claim 10 bytes. Inflating it in one call (as
    ZipFile.read does) allocates the 50 MB before the size is compared."""
    from detection.inference.metadata import read_metadata

    path = _torchscript_like(tmp_path / "bomb.torchscript", b"\0" * 50_000_000, claimed_size=10)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="bomb.torchscript"):
            read_metadata(path, "torchscript")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000, peak


def test_a_torchscript_file_that_will_not_load_says_why(tmp_path, monkeypatch):
    import detection.inference.metadata as export_module
    from detection.inference.loading import open_model

    path = _torchscript_like(tmp_path / "m.torchscript", {"class_names": ["a"], "min_size": 32, "max_size": 32})

    def refuse(*a, **k):
        raise RuntimeError("\n\n")  # torch's message can be blank on its first lines

    monkeypatch.setattr(export_module, "load_torchscript", refuse)
    with pytest.raises(CheckpointError, match=r"not a loadable TorchScript file \(RuntimeError\); give a file written "
                                              r"by torch.jit.save"):
        open_model(path)


@pytest.mark.parametrize("thresholds", [{"per_class": {"a": "high"}}, {"per_class": {"a": 7.0}},
                                        {"per_class": {"zebra": 0.5}}, {"per_class": {"a": 0.5}, "temperature": -1},
                                        ["not", "a", "mapping"]])
def test_stored_thresholds_that_are_not_scores_are_one_line(tmp_path, tiny_model_cfg, thresholds):
    """A checkpoint edited by hand (or by an attacker): refused where it is opened and where it is exported."""
    from detection.checkpoint import save_checkpoint
    from detection.config import thaw
    from detection.inference.export import export
    from detection.inference.loading import open_model
    from detection.models.builders import build_model

    cfg = load_config(None, {"data": {"format": "voc", "root": "x", "classes": ["a"]}, "model": tiny_model_cfg})
    model = build_model(cfg["model"], ["a"], verbose=False)
    path = tmp_path / "best.pt"
    save_checkpoint(path, model=model.state_dict(), config=thaw(cfg), class_names=["a"],
                    freeze=model.facts.freeze, thresholds=thresholds)
    for attempt in (lambda: open_model(path), lambda: export(path, "torchscript")):
        with pytest.raises(CheckpointError, match=r"best.pt: its stored thresholds must map class names to scores"):
            attempt()
    assert not list(tmp_path.glob("*.torchscript"))
