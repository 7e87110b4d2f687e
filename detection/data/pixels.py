"""Decoded pixels at the training size: from the file (JPEGs decoded at reduced size), RAM or disk.

Every epoch used to decode every full-size photo and then shrink it: a 12-megapixel JPEG
costs ~100 ms on one core, the shrunk 640 px image ~5 ms. Three levers, each optional:

- reduced decode (training): a JPEG at least twice the training size is decoded by libjpeg
  at 1/2, 1/4 or 1/8 scale (OpenCV's IMREAD_REDUCED modes), never below the training size,
  then resized to exactly the size a full decode would give, so boxes scale the same.
  Validation decodes at full size, as inference does: the same model, the same detections.
- `data.cache: ram`: every image decoded once, up front, kept as uint8 at the training size
  (the size is estimated first and a cache that would not fit is refused).
- `data.cache: disk`: the same pixels as .npy files under `data.cache_dir`, keyed by the
  file's content and the training size; built on first use, reused by later runs.

Augmentation runs on these pixels each epoch as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..errors import DataError
from .images import DEFAULT_MAX_PIXELS, read_image
from .transforms import resize_scale

log = logging.getLogger("detection.data")

RAM_SHARE = 0.5  # at most this share of the available memory goes to a RAM cache


def target_size(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """(w, h) of an image after the detector's resize rule (unchanged when within 0.1%). `min_size`
    0: the image's own size (a tiled model's data: its tiles are cut from the native pixels and
    the detector's transform scales each)."""
    if not min_size:
        return width, height
    s = resize_scale(height, width, min_size, max_size)
    if abs(s - 1.0) < 1e-3:
        return width, height
    return max(1, round(width * s)), max(1, round(height * s))


def reduce_factor(width: int, height: int, new_w: int, new_h: int) -> int:
    """The largest JPEG decode reduction (8, 4, 2) that stays at or above the target size."""
    for r in (8, 4, 2):
        if width // r >= new_w and height // r >= new_h:
            return r
    return 1


def load_resized(path: str, width: int, height: int, min_size: int, max_size: int,
                 max_pixels: int = DEFAULT_MAX_PIXELS, reduced: bool = True) -> np.ndarray:
    """HxWx3 uint8 at the training size of an image whose file is `width` x `height`.

    `reduced=False` (validation) decodes at full size, as inference does, so that a model
    gives the same detections in eval_det.py as in infer.py."""
    new_w, new_h = target_size(width, height, min_size, max_size)
    image = read_image(path, max_pixels, reduce=reduce_factor(width, height, new_w, new_h) if reduced else 1)
    return resize_to(image, new_w, new_h)


def resize_to(image: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """The one uint8 resize of training, evaluation and inference (area when shrinking): the same
    pixels everywhere, so a model's detections do not depend on which tool ran it."""
    if image.shape[:2] == (new_h, new_w):
        return image
    interp = cv2.INTER_AREA if new_w < image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=interp)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "detection", "images")


class ImagePixels:
    """`get(i)`: the training-size pixels of record i, through the configured cache."""

    def __init__(self, records, min_size: int, max_size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                 cache: str = "none", cache_dir: str = "", reduced: bool = True):
        self.records, self.min_size, self.max_size, self.max_pixels = records, min_size, max_size, max_pixels
        self.reduced = reduced
        self.cache = cache
        self.cache_dir = cache_dir or default_cache_dir()
        self.ram: list[np.ndarray | None] = []
        self.keys: dict[int, str] = {}  # disk keys, per process (workers compute their own)
        if cache == "ram":
            self._fill_ram()
        elif cache == "disk":
            try:
                os.makedirs(self.cache_dir, exist_ok=True)
            except OSError as e:
                raise DataError(f"data.cache_dir {self.cache_dir} cannot be created ({e}); set data.cache_dir to "
                                "a writable folder, or data.cache=none") from None

    def _size(self, i: int) -> tuple[int, int]:
        r = self.records[i]
        return target_size(r.width, r.height, self.min_size, self.max_size)

    def ram_bytes(self) -> int:
        return sum(w * h * 3 for w, h in map(self._size, range(len(self.records))))

    def _fill_ram(self) -> None:
        need, free = self.ram_bytes(), _available_memory()
        if free is not None and need > RAM_SHARE * free:
            raise DataError(f"data.cache=ram needs {need / 2**30:.1f} GiB for {len(self.records)} images at the "
                            f"training size, over {RAM_SHARE:.0%} of the {free / 2**30:.1f} GiB available; use "
                            "data.cache=disk, or a smaller model.min_size / data.fraction")

        def one(i):
            try:
                return self._decode(i)
            except OSError:  # unreadable: decoded (and named) on access like without a cache
                return None

        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            self.ram = list(pool.map(one, range(len(self.records))))
        log.info("data.cache=ram: %d images, %.2f GiB", sum(a is not None for a in self.ram), need / 2**30)

    def _decode(self, i: int) -> np.ndarray:
        r = self.records[i]
        return load_resized(r.path, r.width, r.height, self.min_size, self.max_size, self.max_pixels, self.reduced)

    def get(self, i: int) -> np.ndarray:
        if self.cache == "ram" and self.ram[i] is not None:
            return self.ram[i]
        if self.cache == "disk":
            return self._from_disk(i)
        return self._decode(i)

    def _disk_path(self, i: int) -> str:
        if i not in self.keys:
            h = hashlib.sha1()
            with open(self.records[i].path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            w, hh = self._size(i)
            self.keys[i] = f"{h.hexdigest()[:24]}_{w}x{hh}" + ("" if self.reduced else "_full")
        key = self.keys[i]
        return os.path.join(self.cache_dir, key[:2], key + ".npy")

    def _from_disk(self, i: int) -> np.ndarray:
        try:
            path = self._disk_path(i)
        except OSError:
            return self._decode(i)  # missing file: the decode names it
        if os.path.isfile(path):
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass  # a torn or foreign file: decode again and rewrite it
        image = self._decode(i)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), suffix=".tmp", delete=False) as f:
                np.save(f, image)
            os.replace(f.name, path)  # atomic: another worker or run never reads half a file
        except OSError as e:
            log.warning("data.cache=disk: cannot write %s (%s); going on without caching it", path, e)
        return image
