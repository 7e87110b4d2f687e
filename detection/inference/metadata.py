"""What an exported file carries besides the network: class names, the input size, the
preprocessing and the stored thresholds (ONNX `metadata_props`, TorchScript extra files, the
OpenVINO IR's rt_info), written by `export.py` and read back, checked, by the model loader and
the deployment check. One module both import, so neither needs the other to read it.
"""

from __future__ import annotations

import json
import warnings
import zipfile
import zlib
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..utils.commands import command

META_KEY = "detection"  # ONNX metadata_props key / TorchScript extra file name / OpenVINO rt_info key (json)


def metadata(class_names: list[str], min_size: int, max_size: int, arch: str, fixed_size=None,
             source: str = "", thresholds: dict | None = None, tile_size: int = 0,
             candidates: int | None = None) -> dict:
    return {"class_names": list(class_names), "min_size": int(min_size), "max_size": int(max_size), "arch": arch,
            "fixed_size": list(fixed_size) if fixed_size else None, "source": source,
            "thresholds": thresholds,  # the per-class score thresholds chosen on validation, or None
            # trained on tiles of this many native pixels (model.tile_size): predict sliced into them; 0: whole
            "tile_size": int(tile_size),
            "candidates": candidates,  # proposals (two-stage) or top anchors (one-stage) kept at test time
            "preprocessing": "RGB, float32 in [0, 1], CHW, one image; resized so the shorter side is min_size and "
                             "the longer at most max_size (with fixed_size: fitted inside it and padded right and "
                             "bottom with 0); the mean/std normalisation is inside the graph",
            "outputs": "boxes (N, 4) xyxy in the input's pixels, scores (N,), labels (N,) in 1..K naming "
                       "class_names[label - 1]"}


def load_torchscript(path, device="cpu", extra: dict | None = None):
    """torch.jit.load without its deprecation notice (TorchScript still works in this torch; ONNX is
    the export to prefer), and with the scripted detector's (losses, detections) note silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location=device, _extra_files=extra if extra is not None else {})


def read_metadata(path: Path, kind: str) -> dict:
    """The metadata an exported file carries (CheckpointError when it has none)."""
    if kind == "onnx":
        try:
            import onnx
        except ImportError:
            raise CheckpointError(f"{path}: reading an .onnx file needs the onnx package: pip install onnx "
                                  "onnxruntime") from None
        try:
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception as e:  # noqa: BLE001 - protobuf errors have no common base
            raise CheckpointError(f"{path}: not a readable ONNX file ({str(e)[:200]})") from None
    elif kind == "openvino":
        props = {META_KEY: _openvino_meta(path)}
    else:
        props = {META_KEY: _torchscript_extra(path, META_KEY)}
    if not props.get(META_KEY):
        raise CheckpointError(f"{path}: has no '{META_KEY}' metadata (class names, input size); export it with "
                              f"{command('export')}")
    try:
        meta = json.loads(props[META_KEY])
        ok = isinstance(meta, dict) and isinstance(meta.get("class_names"), list) and all(
            isinstance(meta.get(k), int) and meta[k] > 0 for k in ("min_size", "max_size"))
    except ValueError:
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: its '{META_KEY}' metadata is not what {command('export')} writes (json with "
                              "class_names, min_size, max_size); export the checkpoint again")
    _check_meta_values(path, meta)
    return meta


MAX_INPUT_SIDE = 4096  # px: what an exported file may ask the resize for (a 1333 px COCO model is far under)


def _check_meta_values(path: Path, meta: dict) -> None:
    """Metadata values a hostile or broken file could use to make the resize allocate gigabytes,
    or to name classes that are not names, refused in one line."""
    sides = [meta["min_size"], meta["max_size"], *(meta.get("fixed_size") or [])]
    if any(not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_INPUT_SIDE for v in sides) \
            or meta["max_size"] < meta["min_size"]:
        raise CheckpointError(f"{path}: its metadata asks for an input of {sides} px; {command('export')} writes "
                              f"sizes of 1..{MAX_INPUT_SIDE} with min_size <= max_size: export the checkpoint again")
    tile = meta.get("tile_size", 0)  # files exported before tiles have none: whole images
    if not isinstance(tile, int) or isinstance(tile, bool) or not (tile == 0 or 32 <= tile <= 100_000):
        raise CheckpointError(f"{path}: its metadata's tile_size is {tile!r}; {command('export')} writes 0 (whole "
                              "images) or the training tiles' side of 32 px or more: export the checkpoint again")
    names = meta["class_names"]
    if not names or len(names) > 100_000 or not all(isinstance(n, str) and n for n in names):
        raise CheckpointError(f"{path}: its metadata's class_names must be 1..100000 non-empty names; export the "
                              "checkpoint again")
    check_thresholds(path, meta.get("thresholds"), names)


def _number_in(v, low: float, high: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high


def check_thresholds(path, t, names: list[str]) -> None:
    """Stored thresholds (a checkpoint's or an exported file's) as the toolkit writes them: class
    names to scores in [0, 1] (or None), a temperature in 0.01..100 (or None); else one line."""
    per_class = t.get("per_class") if isinstance(t, dict) else None
    if t is not None and not (isinstance(per_class, dict) and set(per_class) <= set(names)
                              and all(v is None or _number_in(v, 0, 1) for v in per_class.values())
                              and (t.get("temperature") is None or _number_in(t["temperature"], 0.01, 100))):
        raise CheckpointError(f"{path}: its stored thresholds must map class names to scores in [0, 1] (and a "
                              "temperature in 0.01..100); choose them again (eval_det.py --store-thresholds) or "
                              "export again")


def _torchscript_extra(path: Path, name: str, max_bytes: int = 1 << 20) -> str:
    """An extra file of a TorchScript archive (a zip: <archive>/extra/<name>) without loading the
    model; "" when absent. Larger than `max_bytes` is refused: ours is a short json."""
    try:
        with zipfile.ZipFile(path) as z:
            entry = next((i for i in z.infolist() if i.filename.endswith(f"/extra/{name}")), None)
            if entry is None:
                return ""
            with z.open(entry) as f:  # read bounded: the header's size may lie, the inflated bytes do not
                data = f.read(max_bytes + 1)
            if entry.file_size > max_bytes or len(data) > max_bytes:
                raise CheckpointError(f"{path}: its '{name}' entry holds over {max_bytes} bytes, not the short "
                                      f"json {command('export')} writes; export the checkpoint again")
            return data.decode()
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError, zlib.error) as e:
        raise CheckpointError(f"{path}: not a readable TorchScript file ({e})") from None


def _openvino_meta(path: Path) -> str:
    from .predictor import openvino_core

    if not path.with_suffix(".bin").is_file():
        raise CheckpointError(f"{path}: its weights {path.with_suffix('.bin').name} are not beside it; keep the .xml "
                              "and .bin of an OpenVINO model together")
    try:
        model = openvino_core(path).read_model(str(path))
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own types
        raise CheckpointError(f"{path}: not a readable OpenVINO model ({str(e).splitlines()[0][:200]})") from None
    return model.get_rt_info([META_KEY]).astype(str) if model.has_rt_info([META_KEY]) else ""


def write_onnx_metadata(path, meta: dict) -> None:
    """The ONNX file's `detection` metadata set to `meta` (replacing what it had)."""
    import onnx

    proto = onnx.load(str(path))
    for p in [p for p in proto.metadata_props if p.key == META_KEY]:
        proto.metadata_props.remove(p)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, str(path))
