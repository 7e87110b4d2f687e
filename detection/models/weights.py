"""Pretrained weights that work offline: explicit file, torch hub cache, then download.

torchvision downloads into `$TORCH_HOME/hub/checkpoints/<file name of the URL>`; we look
there first, so a cache seeded once (by `tools/fetch_weights.py` or by copying the file)
serves every later run without a network. Files load with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch
from torchvision.models import WeightsEnum


class WeightsUnavailableError(RuntimeError):
    pass


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_path(weights: WeightsEnum) -> Path:
    return hub_checkpoint_dir() / os.path.basename(weights.url)


def hash_prefix(weights: WeightsEnum) -> str | None:
    """torchvision names its files `<name>-<first 8+ hex digits of sha256>.pth`."""
    m = re.search(r"-([a-f0-9]{8,})\.", os.path.basename(weights.url))
    return m.group(1) if m else None


def sha256_matches(path: Path, prefix: str) -> bool:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest().startswith(prefix)


def seed_hint(weights: WeightsEnum) -> str:
    name = os.path.basename(weights.url)
    return (
        f"Seed the cache with `python tools/fetch_weights.py {weights.__class__.__name__}.{weights.name}`, "
        f"or copy {name} (from {weights.url}) to {cache_path(weights)}, "
        f"or set model.weights_file=/path/to/{name}, or model.weights=none to train from scratch."
    )


def resolve_weights_file(weights: WeightsEnum, explicit: str = "", download: bool = True) -> Path:
    """The local path of `weights`: explicit file, else hub cache, else downloaded into the cache."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise WeightsUnavailableError(f"model.weights_file={explicit!r} does not exist")
        return p
    p = cache_path(weights)
    if p.is_file():
        return p
    if download:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(p), hash_prefix=hash_prefix(weights), progress=True)
            return p
        except Exception as e:  # offline, proxy, hash mismatch: all end the same way for the user
            if p.exists():
                p.unlink()
            raise WeightsUnavailableError(
                f"cannot download {weights.__class__.__name__}.{weights.name} ({type(e).__name__}: {e}). "
                + seed_hint(weights)
            ) from None
    raise WeightsUnavailableError(f"{p} is not in the torch hub cache. " + seed_hint(weights))


def load_state_dict(weights: WeightsEnum, explicit: str = "") -> dict:
    path = resolve_weights_file(weights, explicit)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsUnavailableError(f"{path}: cannot load as a state dict ({e})") from None
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]  # a checkpoint of ours or a references/detection checkpoint
    return sd
