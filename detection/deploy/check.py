"""INT8 ONNX files, and exported files scored before they are kept.

An exported file that is fast but silently worse is the common deployment failure (an INT8
export losing 11 mAP). So `tools/export.py` scores every file it writes on the run's
validation split, beside the checkpoint, writes both APs into the file's metadata and into
`<file>.eval.json`, and with `--max-drop D` removes a file whose AP falls more than D below
the checkpoint's.

INT8 ONNX: ONNX Runtime's static quantization in QDQ form, weights per channel; only the
convolutions are quantized (the box decoding, RoIAlign and NMS stay in float, where
quantization would move boxes). INT8 OpenVINO: OpenVINO's own post-training quantization
(NNCF). Both are calibrated on `calib` training images spread over the split.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import writing
from ..inference.export import ExportError
from ..inference.metadata import META_KEY, write_onnx_metadata
from ..utils.runs import EXPORT_SUFFIXES, score_file

log = logging.getLogger("detection.inference.export")


def calibration_images(cfg: dict, class_names: list[str], count: int) -> list[np.ndarray]:
    """`count` training images, evenly spread over the split (the same ones on every run)."""
    from ..data.dataset import read_split
    from ..data.images import read_record_image

    d = cfg["data"]
    records, _ = read_split(d, d["train_split"], True, class_names, cfg["seed"])
    picks = np.unique(np.linspace(0, len(records) - 1, min(count, len(records))).astype(int))
    return [read_record_image(records[i]) for i in picks]


def quantize_int8(fp32: Path, out: Path, images: list[np.ndarray], predictor) -> Path:
    """`out`: the INT8 (QDQ) version of the ONNX file `fp32`, calibrated on `images` as the
    file's own preprocessing feeds them; its metadata says how it was made."""
    try:
        import onnx  # noqa: F401 - needed by the metadata written below
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    except ImportError:
        raise ExportError("--int8 needs onnxruntime and onnx: pip install 'detection[export]'") from None

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": predictor.preprocess(im)[0].numpy()} for im in images])

        def get_next(self):
            return next(self.items, None)

    logging.disable(logging.WARNING)  # its notes on bias copies and pre-processing, a line a layer
    try:
        quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    from ..inference.metadata import read_metadata

    meta = read_metadata(fp32, "onnx")
    meta["quantized"] = f"int8 (ONNX Runtime static QDQ, convolutions, per channel; {len(images)} calibration images)"
    write_onnx_metadata(out, meta)
    return out


def quantize_openvino_int8(fp32: Path, out: Path, images: list[np.ndarray], predictor) -> Path:
    """`out`: the INT8 OpenVINO IR of `fp32` by OpenVINO's own post-training quantization (NNCF),
    calibrated on `images` as the file's preprocessing feeds them."""
    try:
        import nncf
    except ImportError:
        raise ExportError("--format openvino --int8 needs NNCF: pip install nncf (the openvino extra)") from None
    from ..inference.metadata import read_metadata
    from ..inference.predictor import openvino_module

    ov = openvino_module(fp32)
    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(fp32))
    data = [predictor.preprocess(im)[0].numpy() for im in images]
    quantized = nncf.quantize(model, nncf.Dataset(data), subset_size=len(data))
    meta = read_metadata(fp32, "openvino")
    meta["quantized"] = f"int8 (OpenVINO NNCF post-training quantization; {len(images)} calibration images)"
    quantized.set_rt_info(json.dumps(meta), [META_KEY])
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def set_metadata(path: Path, meta: dict) -> None:
    """Rewrite the metadata an ONNX, OpenVINO or TorchScript file carries."""
    if path.suffix == ".onnx":
        write_onnx_metadata(path, meta)
    elif path.suffix == ".xml":
        from ..inference.predictor import openvino_module

        ov = openvino_module(path)
        model = ov.Core().read_model(str(path))
        model.set_rt_info(json.dumps(meta), [META_KEY])
        tmp = path.with_name(f".{path.stem}.meta.xml")
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        del model
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    else:
        import torch

        module = torch.jit.load(str(path), map_location="cpu")
        torch.jit.save(module, str(path), _extra_files={META_KEY: json.dumps(meta)})


def read_score(side: Path, key: str, scores: Path) -> float | None:
    """`key` (AP, or checkpoint_AP) of a score file `side` written for the model file `scores`;
    None, said once in the log, where it is not to be trusted: the model file gone (an orphan),
    changed after it was scored, or the file not JSON, or its value text or not finite. A None
    means the caller scores the model itself."""
    if not side.is_file():
        return None
    why = ""
    try:
        if not Path(scores).is_file():
            why = f"the file it scored ({Path(scores).name}) is gone"
        elif os.stat(scores).st_mtime_ns > os.stat(side).st_mtime_ns:
            why = f"{Path(scores).name} changed after it was scored"
        else:
            value = json.loads(side.read_text(encoding="utf-8"))[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                return float(value)
            why = f"its {key} is {value!r}, not a number"
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = f"not a score file ({type(e).__name__})"
    log.warning("%s is not used (%s): the model is scored again", side, why)
    return None


def checkpoint_score_file(ckpt: Path) -> Path:
    """`<ckpt>.validation.json`: the checkpoint's own score with its fingerprint (not an export's
    `<file>.eval.json`, which the benchmark reads as a file's AP)."""
    return Path(ckpt).with_name(Path(ckpt).name + ".validation.json")


def validation_fingerprint(ckpt: Path, cfg: dict, class_names: list[str]) -> str:
    """What the checkpoint's validation score depends on: the checkpoint file, the data, eval and
    model settings, and every validation image (file, size, time) with its boxes and labels."""
    import hashlib

    from ..data.dataset import read_split

    d = cfg["data"]
    records, _ = read_split(d, d["val_split"], False, class_names, cfg["seed"])
    st = os.stat(ckpt)
    h = hashlib.sha1(json.dumps([os.path.abspath(ckpt), st.st_size, st.st_mtime_ns, class_names, dict(d),
                                 dict(cfg["eval"]), dict(cfg["model"])], sort_keys=True, default=str).encode())
    for r in records:
        f = os.stat(r.path)
        h.update(f"{r.path}|{f.st_size}|{f.st_mtime_ns}|".encode())
        h.update(np.ascontiguousarray(r.boxes, np.float32).tobytes() + np.asarray(r.labels, np.int64).tobytes())
    return h.hexdigest()


def checkpoint_score(ref, ckpt: Path, cfg: dict, evaluate_model) -> dict:
    """The checkpoint's validation results, from `<ckpt>.validation.json` when the fingerprint there
    is this checkpoint's on this validation split; scored (and stored) otherwise. Exporting a model
    three ways used to score its checkpoint three times (4.5 minutes each for 127 images)."""
    side = checkpoint_score_file(ckpt)
    key = validation_fingerprint(ckpt, cfg, ref.class_names)
    try:
        stored = json.loads(side.read_text(encoding="utf-8"))
        if stored.get("fingerprint") == key and all(np.isfinite(float(stored["coco"][k])) for k in ("AP", "AP50")):
            log.info("the checkpoint's validation score is reused from %s (its validation is unchanged)", side.name)
            return {"coco": {"AP": float(stored["coco"]["AP"]), "AP50": float(stored["coco"]["AP50"])}}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # none yet, or unreadable: score it
    base, _ = evaluate_model(ref, cfg)
    try:
        with writing(side):
            side.write_text(json.dumps({"fingerprint": key, "coco": {k: base["coco"][k] for k in ("AP", "AP50")}}))
    except OSError as e:
        log.warning("the checkpoint's score could not be stored (%s): the next export scores it again", e)
    return base


def validate(paths: list[Path], ckpt: Path, max_drop: float | None) -> list[dict]:
    """Score each file of `paths` and their checkpoint on the run's validation split; write each
    result into its file and beside it; remove a file (ExportError) that loses more than
    `max_drop` AP."""
    from ..config import load_config
    from ..inference.loading import open_model
    from ..inference.metadata import read_metadata
    from .scoring import evaluate_model

    ref = open_model(ckpt, "cpu")
    if ref.config is None:
        raise ExportError(f"{ckpt} is outside a run folder: its validation split is unknown, so the export cannot "
                          "be scored; pass --no-validate, or export from a run")
    cfg = load_config(None, base=ref.config)
    base = checkpoint_score(ref, ckpt, cfg, evaluate_model)
    reports = []
    for path in paths:
        res, ev = evaluate_model(open_model(path, "cpu"), cfg)
        report = {"split": ev.info.source, "AP": res["coco"]["AP"], "AP50": res["coco"]["AP50"],
                  "checkpoint_AP": base["coco"]["AP"], "checkpoint_AP50": base["coco"]["AP50"],
                  "AP_drop": base["coco"]["AP"] - res["coco"]["AP"], "max_drop": max_drop}
        if max_drop is not None and report["AP_drop"] > max_drop:
            os.remove(path)
            raise ExportError(f"{path.name} scores AP {report['AP']:.3f} on {ev.info.source}, "
                              f"{report['AP_drop']:.3f} below the checkpoint's {report['checkpoint_AP']:.3f} (more "
                              f"than --max-drop {max_drop}): not kept; calibrate on more images (--calib), or keep "
                              "the float export")
        meta = read_metadata(path, EXPORT_SUFFIXES[path.suffix.lower()])
        set_metadata(path, {**meta, "validation": report})
        side = score_file(path)
        with writing(side):
            side.write_text(json.dumps(report, indent=1))
        reports.append(report)
    return reports
