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

from ..errors import CheckpointError, DetectionError


class WeightsUnavailableError(DetectionError, RuntimeError):
    pass


def torch_load_safe(path: str | Path):
    """torch.load with weights_only=True; what it refuses becomes one line that names the file.

    A file that holds pickled Python objects beyond tensors and plain values is refused as
    unsafe: loading it would run code from the file. The line says so and never suggests
    turning the check off.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle_errors() as e:
        text = str(e)
        if "GLOBAL" in text or "Unsupported global" in text:
            raise CheckpointError(
                f"{path}: not a safe checkpoint: it holds Python objects that a weights-only load refuses "
                "(loading them could run code from the file); use a file saved as a state dict, "
                "e.g. a weights/last.pt or best.pt of this toolkit") from None
        detail = "corrupt, truncated or not a torch file" if "weights_only" in text or not text.strip() \
            else text.strip().splitlines()[0][:200]
        raise CheckpointError(f"{path}: not a loadable checkpoint ({detail})") from None


def pickle_errors() -> tuple[type[BaseException], ...]:
    import pickle
    import zipfile

    return (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, AttributeError,
            ImportError, TypeError, KeyError, IndexError, OSError)


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
    from ..utils.commands import command

    name = os.path.basename(weights.url)
    return (
        f"Seed the cache with `{command('fetch_weights')} {weights.__class__.__name__}.{weights.name}`, "
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
        from ..utils.filelock import exclusive

        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with exclusive(str(p) + ".lock"):  # one process downloads, the others wait and find it
                if not p.is_file():
                    torch.hub.download_url_to_file(weights.url, str(p), hash_prefix=hash_prefix(weights),
                                                   progress=True)
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
    sd = torch_load_safe(path)
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]  # a checkpoint of ours or a references/detection checkpoint
    return sd


def load_weights_into(module: torch.nn.Module, state_dict: dict, source: str, strict: bool = True):
    """module.load_state_dict, with torch's page of size mismatches turned into one line.

    `source` names the file or setting the weights came from, for the message.
    """
    try:
        return module.load_state_dict(state_dict, strict=strict)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "size mismatch" in ln or "Missing key" in ln or "Unexpected key" in ln),
                      lines[0] if lines else "")
        raise CheckpointError(f"{source}: its weights do not fit this model ({detail[:300]}); it was saved for "
                              "another architecture or class list") from None
