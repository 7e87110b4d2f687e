"""What the review writes: issues.csv, and the flagged images with the suggested corrections
applied, for a person to check in CVAT (COCO 1.0), LabelImg (VOC xml) or Label Studio (tasks
holding the current labels as an annotation and the suggestion as a prediction).

Suggestions: a missing box is added (the detection's box and class), a wrong class becomes
the detection's class, a bad box takes the detection's box; a spurious box is kept (deleting
a box is the person's call; issues.csv names it).
"""

from __future__ import annotations

import copy
import csv
import json
import os
from pathlib import Path

import numpy as np

from ..data.formats import write
from ..data.records import DatasetInfo
from ..errors import writing
from .issues import Issue


def write_issues_csv(path: Path, found: list[tuple], class_names: list[str]) -> None:
    """issues.csv: `found` is [(issue, its split's records, split name)], most likely first."""
    with writing(path), open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "image", "kind", "class", "suggested_class", "x1", "y1", "x2", "y2", "score", "split"])
        for rank, (x, records, split) in enumerate(found, 1):
            w.writerow([rank, records[x.image].path, x.kind, class_names[x.label - 1],
                        class_names[x.suggested_label - 1], *(round(v, 1) for v in x.box), round(x.score, 4), split])


def suggested(records, issues: list[Issue]) -> dict[int, object]:
    """{image index: a copy of its record with the issues' suggestions applied}, flagged images only."""
    out: dict[int, object] = {}
    for x in issues:
        r = out.setdefault(x.image, copy.deepcopy(records[x.image]))
        if x.kind == "missing":
            r.boxes = np.concatenate([r.boxes, np.array([x.box], np.float32)])
            r.labels = np.append(r.labels, x.label)
            r.iscrowd, r.difficult = np.append(r.iscrowd, False), np.append(r.difficult, False)
            continue
        j = _find(r.boxes, x.box)
        if j is None:
            continue
        if x.kind == "wrong_class":
            r.labels[j] = x.suggested_label
        elif x.kind == "bad_box" and x.suggested_box is not None:
            r.boxes[j] = np.array(x.suggested_box, np.float32)
    return out


def _find(boxes: np.ndarray, box: tuple) -> int | None:
    if not len(boxes):
        return None
    d = np.abs(boxes - np.array(box, np.float32)).sum(1)
    return int(np.argmin(d)) if d.min() < 1e-3 else None


def write_corrections(out: Path, records, issues: list[Issue], class_names: list[str]) -> dict[str, Path]:
    """cvat_coco/, labelimg_voc/ and label_studio.json (+ its labelling config) under `out`."""
    fixed = suggested(records, issues)
    recs = [fixed[i] for i in sorted(fixed)]
    if not recs:
        return {}
    dirs = [os.path.dirname(os.path.abspath(r.path)) for r in recs]
    info = DatasetInfo(list(class_names), list(range(1, len(class_names) + 1)), "review",
                       root=os.path.commonpath(dirs))
    paths = {"cvat": out / "cvat_coco", "labelimg": out / "labelimg_voc", "label_studio": out / "label_studio.json"}
    write("coco", str(paths["cvat"]), {"review": recs}, list(class_names), {"review": info})
    write("voc", str(paths["labelimg"]), {"review": recs}, list(class_names), {"review": info})
    tasks = [{"data": {"image": records[i].path},
              "annotations": [{"result": _ls_boxes(records[i], class_names, "label")}],
              "predictions": [{"model_version": "review", "result": _ls_boxes(fixed[i], class_names, "label")}]}
             for i in sorted(fixed)]
    with writing(paths["label_studio"]):
        paths["label_studio"].write_text(json.dumps(tasks, indent=1))
    choices = "".join(f'    <Label value="{_xml(n)}"/>\n' for n in class_names)
    (out / "label_studio_config.xml").write_text(
        f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n'
        f"{choices}  </RectangleLabels>\n</View>\n")
    return paths


def _ls_boxes(r, class_names: list[str], name: str) -> list[dict]:
    """Label Studio rectangles: percent of the image, top-left corner, width and height."""
    out = []
    for k, (box, label) in enumerate(zip(r.boxes.tolist(), r.labels.tolist())):
        x1, y1, x2, y2 = box
        out.append({"id": f"b{k}", "from_name": name, "to_name": "image", "type": "rectanglelabels",
                    "original_width": r.width, "original_height": r.height, "image_rotation": 0,
                    "value": {"x": 100 * x1 / r.width, "y": 100 * y1 / r.height, "width": 100 * (x2 - x1) / r.width,
                              "height": 100 * (y2 - y1) / r.height, "rotation": 0,
                              "rectanglelabels": [class_names[label - 1]]}})
    return out


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
