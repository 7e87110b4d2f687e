"""A results browser: `index.html` beside an evaluation's report, opened from disk.

No server, no internet, no CDN: the page is one HTML file with its script and style inline,
the data a `data.js` beside it (a script tag reads it from file://, where fetch() may not),
and one small JPEG thumbnail an image under `thumbs/`. Boxes are drawn in the browser from the
data, so showing or hiding the labels and the detections, moving the score slider or
filtering by class or by kind of error is instant; pages of 120 images keep 5,000 fast. The
large view loads the original image (relative to the page), or the thumbnail when it moved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from ..data.images import read_record_image
from ..errors import writing
from .evaluator import metric
from .operating_point import DEFAULT_SCORE, thresholds_of
from .tide import box_iou, classify

THUMB = 320  # longest side of a thumbnail, pixels
MAX_DETS = 100  # detections kept per image, best first
MIN_SCORE = 0.05  # lower scores are never worth a look
TEMPLATE = Path(__file__).with_name("browser_assets") / "index.html"


def browser_data(ev, results: dict, title: str, out_dir: Path) -> dict:
    """What the page shows: the headline numbers (report.json's), the classes and every image
    with its labelled boxes `[x1, y1, x2, y2, class, ignored, missed]` and its detections
    `[x1, y1, x2, y2, class, score, kind, iou, box]`: kind is tp or the error kind of the
    breakdown, iou and box (an index into the labelled boxes, -1 for none) the box it concerns."""
    names = ev.info.class_names
    kinds: dict[int, list[dict]] = {}
    for d in classify(ev.records, ev.predictions, len(names), MAX_DETS):
        kinds.setdefault(d["image"], []).append(d)
    images = []
    for idx, r in enumerate(ev.records):
        boxes, scores, labels = ev.predictions.get(idx, (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)))
        found = kinds.get(idx, [])
        missed = {d["target"] for d in found if d["kind"] == "missed"}
        dets = []
        for d in found:
            k, g = d["det"], d["target"]
            if k < 0 or scores[k] < MIN_SCORE:
                continue
            iou = float(box_iou(boxes[k:k + 1], r.boxes[g:g + 1])[0, 0]) if g >= 0 else 0.0
            dets.append([*(round(float(v), 1) for v in boxes[k]), int(labels[k]), round(float(scores[k]), 4),
                         d["kind"], round(iou, 3), g])
        gt = [[*box[:6], int(g in missed)] for g, box in enumerate(labelled(r))]
        images.append(page_image(r, idx, out_dir, gt, dets, []))
    c = results["coco"]
    numbers = [{"id": "ap", "label": "COCO AP", "value": c["AP"]}, {"id": "ap50", "label": "AP50", "value": c["AP50"]},
               {"id": "ap75", "label": "AP75", "value": c["AP75"]},
               {"id": "images", "label": "images", "value": len(images)}]
    per_class = {"title": "per class", "header": ["class", "COCO AP", "AP50", "labelled boxes", "detections"],
                 "rows": [[cc["class"], metric(cc["AP"]), metric(cc["AP50"]), v["gt"], v["dets"]]
                          for cc, v in zip(results["coco_per_class"], results["voc"])]}
    return {"kind": "eval", "title": title, "classes": names, "images": images, "numbers": numbers,
            "tables": [per_class], **page_thresholds(results, names)}


def page_thresholds(results: dict, names: list[str]) -> dict:
    """Where the page's score filter starts: at the model's stored thresholds when it has them,
    else at those this evaluation chose (the error breakdown counts at the same ones), one per
    class (a class neither can decide for keeps DEFAULT_SCORE). Without an operating point
    (eval.backend=pycocotools), {} and the page keeps one slider at its default."""
    op = results.get("stored_operating_point") or results.get("operating_point")
    if not op:
        return {}
    by_name = thresholds_of(op)
    per_class = [round(float(DEFAULT_SCORE if by_name.get(n) is None else by_name[n]), 4) for n in names]
    where = ("the model's stored thresholds" if "stored_operating_point" in results
             else f"the thresholds chosen here ({op.get('rule')})")
    return {"thresholds": per_class, "thresholds_from": where}


def _relative(path: str, out_dir: Path) -> str:
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))).as_posix()
    except ValueError:  # another drive (Windows)
        return Path(path).as_posix()


def write_thumbnails(records, out_dir: Path) -> int:
    """thumbs/<i>.jpg for every record that can be read; returns how many could not."""
    (out_dir / "thumbs").mkdir(parents=True, exist_ok=True)
    failed = 0
    for idx, r in enumerate(records):
        try:
            img = read_record_image(r, reduce=max(1, min(8, max(r.width, r.height) // (THUMB * 2))))
        except OSError:
            failed += 1
            continue
        s = THUMB / max(img.shape[:2])
        if s < 1:
            img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                             interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out_dir / "thumbs" / f"{idx}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 80])
    return failed


def page_image(r, idx: int, out_dir: Path, gt: list, dets: list, tags: list[str]) -> dict:
    return {"file": _relative(r.path, out_dir), "name": os.path.basename(r.path), "w": r.width, "h": r.height,
            "thumb": f"thumbs/{idx}.jpg", "gt": gt, "dets": dets, "tags": tags}


def labelled(r) -> list:
    """`[x1, y1, x2, y2, class, ignored, missed]` of each labelled box (missed: 0, set by an evaluation)."""
    return [[*(round(float(v), 1) for v in b), int(c), int(bool(i)), 0]
            for b, c, i in zip(r.boxes, r.labels, r.iscrowd | r.difficult)]


def write_page(data: dict, records, out_dir: Path) -> Path:
    """index.html, data.js and thumbs/ (one per record, in `data["images"]`'s order) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_thumbnails(records, out_dir)
    with writing(out_dir / "data.js"):
        (out_dir / "data.js").write_text("window.BROWSER_DATA = " + json.dumps(data, separators=(",", ":")) + ";\n")
    page = out_dir / "index.html"
    with writing(page):
        page.write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    return page


def write_browser(ev, results: dict, out_dir: Path, title: str) -> Path:
    """The page of an evaluation, in its folder."""
    return write_page(browser_data(ev, results, title, out_dir), ev.records, out_dir)


def data_check_page(sides, defects_by_side: dict, title: str, tables: list[dict], out_dir: Path) -> Path:
    """The page of a data check: every image of every split with its labelled boxes, tagged
    with its split and the defects found in its files (image or annotation, by file stem)."""
    images, records = [], []
    for s in sides:
        stems: dict[str, list[str]] = {}
        for kind, files in defects_by_side.get(s.name, {}).items():
            for f in files:
                stems.setdefault(Path(str(f)).stem, []).append(kind)
        for r in s.records:
            tags = [f"split {s.name}"] + sorted(set(stems.get(Path(r.path).stem, [])))
            images.append(page_image(r, len(records), out_dir, labelled(r), [], tags))
            records.append(r)
    names = next((s.info.class_names for s in sides if s.info), [])
    numbers = [{"id": f"n-{s.name}", "label": f"{s.name} images", "value": len(s.records)} for s in sides]
    data = {"kind": "data_check", "title": title, "classes": names, "images": images, "numbers": numbers,
            "tables": tables}
    return write_page(data, records, out_dir)
