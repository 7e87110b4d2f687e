"""Exported files scored before they are kept (the INT8 files are made in `int8.py`).

An exported file that is fast but silently worse is the common deployment failure (an INT8
export losing 11 mAP). So `tools/export.py` scores every file it writes on the run's
validation split, beside the checkpoint, writes both APs into the file's metadata and into
`<file>.eval.json`, and with `--max-drop D` removes a file whose AP falls more than D below
the checkpoint's.
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


def set_metadata(path: Path, meta: dict) -> None:
    """Rewrite the metadata an ONNX, OpenVINO or TorchScript file carries."""
    if path.suffix == ".onnx":
        write_onnx_metadata(path, meta)
    elif path.suffix == ".xml":
        from ..inference.predictor import openvino_core, openvino_module

        ov = openvino_module(path)
        model = openvino_core(path).read_model(str(path))
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
