"""One way to open a model: a run folder, a `.pt`, an `.onnx` or a `.torchscript` file becomes
a `LoadedModel` (a ready Predictor, class names, the training config, the run). Every command,
the Python API and the benches open models here, so each accepts the same four things.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import load_config, with_values, yaml_load
from ..errors import CheckpointError
from ..utils.runs import Run, model_file
from .predictor import ONNXBackend, OpenVINOBackend, Predictor, TorchBackend, TorchScriptBackend

log = logging.getLogger("detection.inference")


@dataclass
class LoadedModel:
    path: Path  # the file opened
    kind: str  # checkpoint | onnx | torchscript
    run: Run | None  # the run folder it belongs to, when it is in one
    predictor: Predictor
    config: dict | None  # the config it was trained with (None: an exported file outside a run folder)

    @property
    def class_names(self) -> list[str]:
        return self.predictor.class_names

    @property
    def name(self) -> str:
        """What its predictions are filed under (runs/predict/<name>): the run's name, else the file's."""
        return self.run.name if self.run else Path(self.path).stem

    @property
    def torch_model(self) -> torch.nn.Module | None:
        """The PyTorch detector of a checkpoint (None for an exported file)."""
        return self.predictor.model if self.kind == "checkpoint" else None


def open_model(path=None, device: torch.device | str = "cpu", amp: str = "none", runs="runs") -> LoadedModel:
    """Open what the user passed as a model (None: the newest run under `runs`)."""
    device = torch.device(device)
    file, kind, run = model_file(path, runs)
    loaded = _open_checkpoint(file, run, device, amp) if kind == "checkpoint" else _open_export(file, kind, run, device)
    warn_if_weak(loaded)
    return loaded


WEAK_AP50 = 0.10  # a model under this validation AP50 finds too little for its thresholds to mean much
_weak_said: set[str] = set()


def validation_ap(loaded: LoadedModel) -> tuple[float, float, str] | None:
    """(AP, AP50, split) of the validation that chose the model's stored thresholds, when it says."""
    t = loaded.predictor.thresholds or {}
    try:
        return float(t["AP"]), float(t["AP50"]), str(t.get("split", "validation"))
    except (KeyError, TypeError, ValueError):
        return None


def warn_if_weak(loaded: LoadedModel) -> None:
    """Once per model file: a model that scored (nearly) nothing on validation still has stored
    thresholds, and they draw walls of boxes (5,693 'fish' on 63 images at AP 0.000), flag every
    label as spurious and let a backend be chosen 'within 0.01 AP' of 0. Say so where it starts."""
    ap = validation_ap(loaded)
    key = str(loaded.path)
    if ap is None or not 0 <= ap[1] < WEAK_AP50 or key in _weak_said:
        return
    _weak_said.add(key)
    log.warning("%s scored AP %.3f (AP50 %.3f) on %s: too low for its thresholds, drawings, label review or "
                "backend choice to mean much; train it longer or on more data first", loaded.path, ap[0], ap[1],
                ap[2])


def _open_export(file: Path, kind: str, run: Run | None, device: torch.device) -> LoadedModel:
    from .metadata import load_torchscript, read_metadata

    meta = read_metadata(file, kind)
    if kind == "onnx":
        backend = ONNXBackend(str(file), device)
    elif kind == "openvino":
        backend = OpenVINOBackend(str(file))
    else:
        try:
            backend = TorchScriptBackend(load_torchscript(file, device), device)
        except (RuntimeError, ValueError) as e:
            reason = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)[:200]
            raise CheckpointError(f"{file}: not a loadable TorchScript file ({reason}); give a file written by "
                                  "torch.jit.save, such as tools/export.py's") from None
    predictor = Predictor(backend, meta["class_names"], meta["min_size"], meta["max_size"],
                          tuple(meta["fixed_size"]) if meta.get("fixed_size") else None, str(file),
                          thresholds=meta.get("thresholds"), tile_size=int(meta.get("tile_size") or 0))
    return LoadedModel(file, kind, run, predictor, run_config(run) if run else None)


def on_device(loaded: LoadedModel, device: torch.device) -> LoadedModel:
    """`loaded` on `device`: a checkpoint's module moves there; an exported file's runtime session
    is made for its device, so the file is opened again there, keeping the slicing the user set
    (`eval_det.py --slice` on a GPU scored an exported file whole without it)."""
    if loaded.predictor.backend.device == device:
        return loaded
    if loaded.kind == "checkpoint":
        backend = loaded.predictor.backend
        loaded.predictor.backend = TorchBackend(backend.model, device, backend.amp)
        return loaded
    moved = open_model(loaded.path, device)
    moved.predictor.slicing = loaded.predictor.slicing
    return moved


def _open_checkpoint(file: Path, run: Run | None, device: torch.device, amp: str) -> LoadedModel:
    from ..checkpoint import load_checkpoint, model_from_checkpoint
    from ..config import load_config
    from .metadata import check_thresholds

    ckpt = load_checkpoint(file)
    model = model_from_checkpoint(ckpt, file)
    cfg = with_run_split(load_config(base=ckpt["config"]), run)
    m = cfg["model"]
    check_thresholds(file, ckpt.get("thresholds"), ckpt["class_names"])
    predictor = Predictor(TorchBackend(model, device, amp), ckpt["class_names"], m["min_size"], m["max_size"],
                          source=str(file), thresholds=ckpt.get("thresholds"), tile_size=m["tile_size"])
    return LoadedModel(file, "checkpoint", run, predictor, cfg)


def run_config(run: Run) -> dict | None:
    """The config a run was trained with, from its config.yaml (None when it has none)."""

    if not run.config.is_file():
        return None
    saved = yaml_load(run.config.read_text(encoding="utf-8"))
    return with_run_split(load_config(base=saved), run) if isinstance(saved, dict) else None


def with_run_split(cfg: dict, run: Run | None) -> dict:
    """A run folder moved or copied elsewhere: its config's split_file points at the old place;
    the run's own split.json is the same file."""
    split_file = cfg["data"]["split_file"]
    if run is not None and split_file and not Path(split_file).is_file() and run.split.is_file():
        return with_values(cfg, {"data.split_file": str(run.split)})
    return cfg
