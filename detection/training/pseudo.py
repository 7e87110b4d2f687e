"""Adding classes without forgetting the old ones (`model.keep_old_classes`, with `model.init`).

New images usually come labelled for the new classes only. Trained on them as they are, the
old classes' objects on them are background, and the model unlearns them (catastrophic
forgetting). So before training, the old model labels its own classes on the new training
images: its detections at its stored per-class thresholds (chosen on its validation split)
become boxes of those classes, and its unsure detections (from half the threshold up to it)
become crowd boxes, which Faster R-CNN trains as neither object nor background (label -1 in
`DetectionDataset`; the other families drop them). A pseudo-box that overlaps a box the new
labels already hold (IoU 0.5) is left out. Only training images get them: validation is scored
on the labels as given, and every pseudo-box is listed, marked, in `<run>/pseudo_labels.json`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_checkpoint, model_from_checkpoint
from ..config import load_config
from ..data.dataset import DetectionDataset, collate, get_dataset
from ..data.splits import relative_name
from ..errors import DataError
from ..evaluation.evaluator import DetectionEvaluator, build_validation
from ..evaluation.loop import Sliced, evaluate, predict_into
from ..evaluation.operating_point import DEFAULT_SCORE
from ..evaluation.voc_ap import box_iou

UNSURE = 0.5  # detections from UNSURE x the class's threshold up to it are not trained as background
OVERLAP = 0.5  # IoU with a labelled box at which a pseudo-box is left out (the label is there already)


def union_classes(old: list[str], records, names: list[str]) -> tuple[list, list[str]]:
    """(records relabelled, class names): the old model's classes first, in its order, then the
    data's classes it did not have; a data class named like an old one is that class."""
    union = list(old) + [n for n in names if n not in old]
    to_union = np.array([0] + [union.index(n) + 1 for n in names], np.int64)
    return [replace(r, labels=to_union[r.labels]) for r in records], union


def thresholds(ckpt: dict) -> dict[str, float]:
    """The old model's raw-score threshold per class (DEFAULT_SCORE where none was stored)."""
    per_class = (ckpt.get("thresholds") or {}).get("per_class") or {}
    return {n: DEFAULT_SCORE if per_class.get(n) is None else float(per_class[n]) for n in ckpt["class_names"]}


def old_detections(start, records, info, device) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes in native pixels, scores, labels 1..K_old) of the old model on each record's image,
    at its own input size (sliced into its tiles when it was trained on them). The validation
    pass runs it, and an evaluator's `process` maps the boxes back and drops rows that are no
    detection; nothing is scored."""
    m = start.model_cfg
    model = model_from_checkpoint(start.ckpt, start.file).to(device)
    tile = m["tile_size"]
    ds = DetectionDataset(records, info, False, *((0, 0) if tile else (m["min_size"], m["max_size"])), augment="none")
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate)
    collected = DetectionEvaluator(records, info)
    predict_into(Sliced(model, tile) if tile else model, loader, collected, device, what="pseudo-labels")
    return [collected.predictions[i] for i in range(len(records))]


def add_pseudo_labels(records, class_names: list[str], old_names: list[str], detections, cut: dict[str, float]):
    """(records with the old classes' pseudo-boxes and unsure regions added, listing for the json,
    counts): see the module's docstring."""
    listing, counts = {}, {"pseudo": 0, "unsure": 0, "overlapping a label": 0}
    for r, (boxes, scores, labels) in zip(records, detections):
        rows = []
        for box, score, label in zip(boxes, scores, labels):
            name = old_names[int(label) - 1]
            if score < UNSURE * cut[name]:
                continue
            if len(r.boxes) and box_iou(box[None], r.boxes).max() >= OVERLAP:
                counts["overlapping a label"] += 1
                continue
            kind = "pseudo" if score >= cut[name] else "unsure"
            counts[kind] += 1
            box = np.clip(box, 0, [r.width, r.height, r.width, r.height])
            rows.append({"class": name, "box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
                         "kind": kind})
        if rows:
            listing[r.path] = rows
    return apply_listing(records, listing, class_names), listing, counts


def apply_listing(records, listing: dict, class_names: list[str]) -> list:
    """The records with the listed pseudo-boxes (and unsure regions, as crowd boxes) added: from
    the old model's detections in a new run, from `<run>/pseudo_labels.json` in a resumed one, so
    both train on the same boxes."""
    out = []
    for r in records:
        rows = listing.get(r.path)
        if rows:
            n = len(rows)
            r = replace(r, boxes=np.concatenate([r.boxes, np.array([e["box"] for e in rows], np.float32)]),
                        labels=np.concatenate([r.labels, [class_names.index(e["class"]) + 1 for e in rows]]
                                              ).astype(np.int64),
                        iscrowd=np.concatenate([r.iscrowd, [e["kind"] == "unsure" for e in rows]]).astype(bool),
                        difficult=np.concatenate([r.difficult, np.zeros(n, bool)]), areas=None)
        out.append(r)
    return out


def read_listing(path: Path, records, class_names: list[str], root: str) -> list:
    """A resumed model.keep_old_classes run's records: its pseudo-labels read back from `path`."""
    if not path.is_file():
        raise DataError(f"{path} is missing: a model.keep_old_classes run resumes with the pseudo-labels it was "
                        "started with (start a new run to label again)")
    by_name = json.loads(path.read_text())
    listing = {r.path: by_name[relative_name(r.path, root)] for r in records if relative_name(r.path, root) in by_name}
    return apply_listing(records, listing, class_names)


def write_listing(path: Path, listing: dict, root: str) -> None:
    """`<run>/pseudo_labels.json`: {image (relative to the data root): [{class, box, score, kind}]}."""
    path.write_text(json.dumps({relative_name(k, root): v for k, v in listing.items()}, indent=1))


class OldLabels(torch.nn.Module):
    """The new model's detections of the old classes only, in the old model's label order."""

    def __init__(self, model, new_names: list[str], old_names: list[str]):
        super().__init__()
        self.model = model
        self.to_old = torch.tensor([0] + [old_names.index(n) + 1 if n in old_names else 0 for n in new_names])

    def forward(self, images):
        out = []
        for o in self.model(images):
            old = self.to_old.to(o["labels"].device)[o["labels"]]
            keep = old > 0
            out.append({"boxes": o["boxes"][keep], "scores": o["scores"][keep], "labels": old[keep]})
        return out


def forgetting(start, best: Path, device) -> dict:
    """The old classes' AP on the old model's own validation split, of the old model (before)
    and of the new run's best.pt (after): what adding classes cost the old ones. Both are scored
    on the split's native pixels (each model resizes, or slices, as it was trained)."""
    old_cfg = load_config(base=start.ckpt["config"])
    old_names = list(start.ckpt["class_names"])
    ds = get_dataset(old_cfg, train=False, class_names=old_names, size=(0, 0, 0))
    loader, ev = build_validation(ds, old_cfg["eval"], 2, 0, device)
    new_ckpt = load_checkpoint(best)
    out = {"split": ds.info.source, "classes": old_names}
    for when, ckpt, wrap in (("before", start.ckpt, lambda m: m),
                             ("after", new_ckpt, lambda m: OldLabels(m, list(new_ckpt["class_names"]), old_names))):
        model = model_from_checkpoint(ckpt).to(device)
        tile = load_config(base=ckpt["config"])["model"]["tile_size"]
        res = evaluate(wrap(model), loader, ev, device, tile=tile)
        out[when] = {"AP": res["coco"]["AP"], "AP50": res["coco"]["AP50"],
                     "per_class": {c["class"]: c["AP"] for c in res["coco_per_class"]}}
    return out


def forgetting_lines(f: dict) -> list[str]:
    b, a = f["before"], f["after"]
    lines = [f"old classes on the old model's validation split ({f['split']}): AP {b['AP']:.3f} before, "
             f"{a['AP']:.3f} after ({a['AP'] - b['AP']:+.3f}); AP50 {b['AP50']:.3f} -> {a['AP50']:.3f}"]
    def ap(v):
        return "n/a" if v is None or v != v else f"{v:.3f}"  # nan: no box of the class in the split

    lines += [f"  {name:<16} AP {ap(b['per_class'][name])} -> {ap(a['per_class'].get(name))}"
              for name in b["per_class"]]
    return lines


def with_old_classes(start, records, info, device):
    """(records, info, listing, log line): the new training records in the class list of the old
    model's classes then the data's new ones, with the old model's pseudo-labels added."""
    old = list(start.ckpt["class_names"])
    records, names = union_classes(old, records, list(info.class_names))
    info = replace(info, class_names=names, cat_ids=list(range(1, len(names) + 1)))
    detections = old_detections(start, records, info, device)
    records, listing, counts = add_pseudo_labels(records, names, old, detections, thresholds(start.ckpt))
    line = (f"model.keep_old_classes: classes {', '.join(names)}; the old model labelled its classes on the "
            f"{len(records)} training images: {counts['pseudo']} boxes at its thresholds, {counts['unsure']} "
            f"unsure regions (not trained as background), {counts['overlapping a label']} left out (labelled "
            "already); listed in pseudo_labels.json, never scored")
    return records, info, listing, line
