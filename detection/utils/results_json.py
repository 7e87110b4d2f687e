"""COCO results files: the one place their entries are made, written and read.

`infer.py --save-json` and `eval_det.py --save-pred` both write entries with the image's
`file_name` and the `category_name` beside COCO's ids, so either file scores with
`eval_det.py --pred FILE --cfg CONFIG` against any split of the same images (matched by name),
and with `--gt` against the source annotations (matched by id).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError, writing


def entry(image_id: int, box, score: float, category_id: int, file_name: str | None = None,
          category_name: str | None = None, digits: int | None = None, **extra) -> dict:
    """One detection: `box` is xyxy in the image's pixels, written as COCO's xywh; `digits`
    rounds the box for a file. The score is never rounded: a rounded score ties or reorders
    detections, and so changes which are matched and which a threshold keeps."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bbox, score = [x1, y1, x2 - x1, y2 - y1], float(score)
    if digits is not None:
        bbox = [round(v, digits) for v in bbox]
    out = {"image_id": image_id, **({"file_name": file_name} if file_name is not None else {}),
           "category_id": category_id, **({"category_name": category_name} if category_name is not None else {}),
           "bbox": bbox, "score": score}
    return {**out, **extra}


def write(path: str | Path, entries: list[dict]) -> Path:
    path = Path(path)
    with writing(path, "choose a writable output folder"):
        path.write_text(json.dumps(entries))
    return path


def read(path: str | Path) -> list[dict]:
    """The entries of a results file; DataError (one line) for a file that is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read a COCO results file ({e})") from None
    if not isinstance(entries, list):
        raise DataError(f"{path}: a COCO results file is a list of {{image_id, category_id, bbox, score}}")
    for n, p in enumerate(entries):
        missing = [k for k in ("category_id", "bbox", "score") if not isinstance(p, dict) or k not in p]
        if missing:
            raise DataError(f"{path}: entry {n} lacks {missing}")
    return entries
