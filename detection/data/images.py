"""Image decoding: whatever is on disk becomes an 8-bit, 3-channel RGB array, safely.

- Size first: the header is read before any pixel, and an image over the pixel budget
  (`data.max_pixels`) is refused, so a small file that declares 20000 x 20000 pixels is
  never decoded (a decompression bomb).
- OpenCV's IMREAD_COLOR expands grayscale and palette images, drops alpha, reduces 16-bit
  to 8-bit and applies the EXIF orientation, which is what annotation tools show.
- A truncated file that OpenCV refuses is read by Pillow with truncated loading: the part
  that decodes is used (the rest is grey), with a warning that names it, as Ultralytics does.
"""

from __future__ import annotations

import logging
import os
import warnings

import cv2
import numpy as np

from ..errors import DataError

log = logging.getLogger("detection.data")

# file extensions read as images (folders, globs, lists; VOC ids without <filename>), in lookup order
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".mpo")
DEFAULT_MAX_PIXELS = 100_000_000  # admits 50-megapixel photos with room; refuses declared bombs
_warned_truncated: set[str] = set()


class ImageReadError(DataError, OSError):
    pass


def read_image_size(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header alone, after EXIF orientation; refuses images over `max_pixels`."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ImageReadError(f"image not found: {path}")
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels  # ours is the budget; PIL's own check must not fire first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # lazy: reads the header, no pixels
                w, h = im.size
                # EXIF sits in the header of JPEG and TIFF; elsewhere (PNG) reading it decodes pixels
                orientation = im.getexif().get(0x0112, 1) if w * h <= max_pixels and \
                    im.format in ("JPEG", "MPO", "TIFF") else 1
    except Image.DecompressionBombError:
        raise ImageReadError(f"{path}: declares more than {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} megapixels, over "
                             f"the pixel budget data.max_pixels={max_pixels}; raise it if the image is real") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageReadError(f"cannot decode image (corrupt, truncated or not an image): {path}") from None
    if w * h > max_pixels:
        raise ImageReadError(f"{path}: {w}x{h} = {w * h / 1e6:.0f} megapixels is over the pixel budget "
                             f"data.max_pixels={max_pixels} ({max_pixels / 1e6:.0f} MP); raise it if the image is real")
    if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
        w, h = h, w
    return w, h


def read_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS, reduce: int = 1) -> np.ndarray:
    """HxWx3 uint8 RGB. Raises ImageReadError naming the file when it cannot be decoded.

    `reduce` decodes JPEGs at a fraction of their size. OpenCV's reduced modes exist for 2, 4
    and 8 only, so any other factor takes the largest of those at or under it (3 decodes at a
    half, 9 at an eighth): a caller asking for "about a third" of a 2048-px photo gets a
    picture at least that large, never a KeyError.
    """
    read_image_size(path, max_pixels)
    reduce = _supported_reduction(reduce)
    data = np.fromfile(path, dtype=np.uint8)
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    img = cv2.imdecode(data, flag) if data.size else None
    if img is None:
        return _read_truncated(path, reduce)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _supported_reduction(reduce) -> int:
    """The largest of OpenCV's JPEG reductions (1, 2, 4, 8) that is at or under `reduce`."""
    for r in (8, 4, 2):
        if reduce >= r:
            return r
    return 1


def read_record_image(record, reduce: int = 1) -> np.ndarray:
    """The pixels of an image a reader admitted (an `ImageRecord`), by the budget it passed: its
    own size. The data check, the error analysis and TensorBoard's validation images decode
    through this, so no path decodes more than the configured data.max_pixels let in."""
    return read_image(record.path, max(1, record.width * record.height), reduce=reduce)


def _read_truncated(path: str, reduce: int) -> np.ndarray:
    """What Pillow can decode of a file OpenCV refused (a truncated JPEG or PNG), with a warning."""
    from PIL import Image, ImageFile, ImageOps

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            arr = np.asarray(im)
    except Exception:  # noqa: BLE001 - any decoder failure means the same to the user
        raise ImageReadError(f"cannot decode image (corrupt, truncated or not an image): {path}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    if path not in _warned_truncated:
        _warned_truncated.add(path)
        log.warning("truncated image, using the part that decodes (%d such files so far in this process): %s",
                    len(_warned_truncated), path)
    if reduce > 1:
        arr = cv2.resize(arr, (max(1, arr.shape[1] // reduce), max(1, arr.shape[0] // reduce)),
                         interpolation=cv2.INTER_AREA)
    return arr
