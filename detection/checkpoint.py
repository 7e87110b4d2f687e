"""Checkpoints and run folders.

A checkpoint holds state dicts and plain Python values only (config dict, class names,
versions), so it loads with `torch.load(weights_only=True)`. It is written to a
temporary file and renamed, so a kill during a save never leaves a broken file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision

from .config import load_config
from .models.builders import build_model
from .models.freeze import freeze_model


def save_checkpoint(path: str | Path, **state) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state["versions"] = {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a loadable checkpoint ({type(e).__name__}: {e})") from None
    for key in ("model", "config", "class_names"):
        if key not in ckpt:
            raise ValueError(f"{path}: not a checkpoint of this toolkit (no `{key}`)")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> torch.nn.Module:
    """Rebuild the detector of a checkpoint (same freezing, so the same module types)."""
    # through today's defaults, so checkpoints from before a new key was added still load
    mcfg = load_config(base=ckpt["config"])["model"]
    model = build_model(mcfg, ckpt["class_names"], load_pretrained=False, verbose=False)
    f = ckpt.get("freeze")
    if f and "freeze_bn" in f and f != model.freeze:  # a staged run's last stage
        freeze_model(model, f["freeze_at"], f["freeze_bn"], f["mode"])
    model.load_state_dict(ckpt["model"])
    return model


def new_run_dir(output_dir: str, name: str) -> Path:
    """`<output_dir>/<name>`, or `<name>-2`, `<name>-3`... when taken: a run never overwrites another."""
    base = Path(output_dir)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        p = base / (name if i == 1 else f"{name}-{i}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder for {name} in {base}")


def newest_run(output_dir: str = "runs") -> Path:
    """The most recently written run folder that has a checkpoint."""
    runs = [p for p in Path(output_dir).glob("*/weights") if (p / "best.pt").is_file() or (p / "last.pt").is_file()]
    if not runs:
        raise FileNotFoundError(
            f"no trained run under {output_dir}/; train one with `python tools/train_det.py --cfg ...` "
            "or pass --ckpt"
        )
    return max(runs, key=lambda p: p.stat().st_mtime).parent


def run_checkpoint(run: Path) -> Path:
    best = run / "weights" / "best.pt"
    return best if best.is_file() else run / "weights" / "last.pt"
