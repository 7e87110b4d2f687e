"""Checkpoints: writing them safely, reading them weights-only, rebuilding their model.

A checkpoint holds state dicts and plain Python values only (config dict, class names,
versions), so it loads with `torch.load(weights_only=True)`. It is written to a
temporary file, flushed to disk and renamed: a kill, a full disk or a read-only folder
during a save never leaves a broken file, and the previous checkpoint stays intact.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path

import torch
import torchvision

from .config import load_config, thaw
from .errors import CheckpointError, OutputError
from .models.builders import build_model
from .models.freeze import apply_policy
from .models.weights import load_weights_into, torch_load_safe

FULL_DISK_BYTES = 16 << 20  # free space under which a failed write is said to be a full disk


def save_checkpoint(path: str | Path, **state) -> None:
    """Write `state` to `path` atomically; OutputError (one line) when the disk refuses."""
    path = Path(path)
    for key in ("config", "class_names"):  # a loaded config is frozen; weights_only loads plain types only
        if key in state:
            state[key] = thaw(state[key])
    state["versions"] = {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk reaches torch's zip writer as a RuntimeError
        tmp.unlink(missing_ok=True)
        if isinstance(e, RuntimeError) and not _zip_writer_failed(str(e)):
            raise
        raise OutputError(f"cannot write checkpoint {path}: {_why_not_written(e, path.parent)}; free space or "
                          "choose a writable output_dir (the previous checkpoint is kept)") from None


def _zip_writer_failed(message: str) -> bool:
    """torch's zip writer fails on a full disk with RuntimeErrors that name the writer
    (`PytorchStreamWriter failed writing file ...`) or only its source file and a position
    (`[enforce fail at inline_container.cc:672] . unexpected pos 123 vs 456`, at write_end_of_file)."""
    text = message.lower()
    return "writ" in text or "inline_container" in text or "unexpected pos" in text


def _why_not_written(e: Exception, folder: Path) -> str:
    """The reason in words: a full disk said as one (naming the folder), else the error's own line."""
    full = isinstance(e, OSError) and e.errno == errno.ENOSPC
    try:
        full = full or shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        pass
    if full:
        return f"the disk holding {folder} is full"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e).strip().splitlines()[-1][:200]


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint of this toolkit, loaded weights-only; CheckpointError names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    ckpt = torch_load_safe(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (it holds a {type(ckpt).__name__})")
    for key in ("model", "config", "class_names"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: not a checkpoint of this toolkit (no `{key}`): a plain state dict goes "
                                  "to model.weights_file")
    return ckpt


def restore_model(model: torch.nn.Module, ckpt: dict, source: str | Path = "checkpoint",
                  weights: dict | None = None) -> torch.nn.Module:
    """Load a checkpoint's weights (`weights`, default its training model's) into `model`, with
    the freezing it was saved under first (freezing swaps BatchNorm types, so the modules must
    match before the weights go in)."""
    if ckpt.get("freeze") and "freeze_bn" in ckpt["freeze"] and ckpt["freeze"] != model.facts.freeze:
        apply_policy(model, ckpt["freeze"])
    load_weights_into(model, ckpt["model"] if weights is None else weights, str(source))
    return model


def predicting_weights(ckpt: dict) -> dict:
    """The weights to predict with: the EMA's when the run kept one (those are what its
    validations scored and its thresholds were chosen on; last.pt's `model` is the raw weights
    training goes on from), else the model's."""
    ema = {k.removeprefix("module."): v for k, v in (ckpt.get("ema") or {}).items() if k.startswith("module.")}
    return ema or ckpt["model"]


def model_from_checkpoint(ckpt: dict, source: str | Path = "checkpoint") -> torch.nn.Module:
    """Rebuild the detector of a checkpoint to predict with: its arch, classes and freezing,
    then its predicting weights."""
    # through today's defaults, so checkpoints from before a new key was added still load
    mcfg = load_config(base=ckpt["config"])["model"]
    model = build_model(mcfg, ckpt["class_names"], load_pretrained=False, verbose=False)
    return restore_model(model, ckpt, source, predicting_weights(ckpt))


class Checkpointer:
    """Saves and restores everything a run needs to go on: the training parts' state dicts,
    the loop's `TrainState`, RNG states, and plain values (config, classes, freezing)."""

    def __init__(self, fixed: dict, enabled: bool = True):
        self.fixed, self.enabled = fixed, enabled

    def snapshot(self, parts, state, rng: dict, metrics: dict | None = None) -> dict:
        return dict(
            model=parts.model.state_dict(), optimizer=parts.optimizer.state_dict(),
            scheduler=parts.scheduler.state_dict(),
            scaler=parts.scaler.state_dict() if parts.scaler is not None else None,
            ema=parts.ema.state_dict() if parts.ema is not None else None,
            rng=rng, metrics=dict(metrics or {}), **self.fixed, freeze=dict(parts.model.facts.freeze),
            **dataclasses.asdict(state),
        )

    def save(self, path: Path, snapshot: dict) -> Path | None:
        """Write `snapshot` to `path` (a run's `last` or `best`); only rank 0 writes."""
        if not self.enabled:
            return None
        save_checkpoint(path, **snapshot)
        return path

    @staticmethod
    def restore_parts(ckpt: dict, parts) -> None:
        """Optimizer, scheduler, scaler and EMA of the stage the checkpoint was taken in."""
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        parts.scheduler.load_state_dict(ckpt["scheduler"])
        if parts.scaler is not None and ckpt.get("scaler"):
            parts.scaler.load_state_dict(ckpt["scaler"])
        if parts.ema is not None and ckpt.get("ema"):
            parts.ema.load_state_dict(ckpt["ema"])
