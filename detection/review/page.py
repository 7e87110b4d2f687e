"""The label review's page in the results browser (evaluation/browser.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..evaluation.browser import MAX_DETS, MIN_SCORE, labelled, page_image, write_page
from .issues import interleave


def review_page(reviewed: list[tuple], names: list[str], title: str, out_dir: Path) -> Path:
    """The page of a label review: the flagged images only, with their labels and the model's
    detections, tagged with their split and the kinds of issue found on them; the issues as a
    table. `reviewed`: [(split, records, predictions, issues)]."""
    images, records, rows = [], [], []
    for split, recs, preds, issues in reviewed:
        kinds: dict[int, set] = {}
        for x in issues:
            kinds.setdefault(x.image, set()).add(x.kind)
        for i in sorted(kinds, key=lambda i: min(x.score for x in issues if x.image == i)):
            boxes, scores, labels = preds[i]
            order = [k for k in np.argsort(-scores, kind="stable")[:MAX_DETS] if scores[k] >= MIN_SCORE]
            dets = [[*(round(float(v), 1) for v in boxes[k]), int(labels[k]), round(float(scores[k]), 4), "tp", 0.0,
                     -1] for k in order]
            images.append(page_image(recs[i], len(records), out_dir, labelled(recs[i]), dets,
                                     [f"split {split}", *sorted(kinds[i])]))
            records.append(recs[i])
        rows += [(x, split, [split, os.path.basename(recs[x.image].path), x.kind, names[x.label - 1],
                             names[x.suggested_label - 1], round(x.score, 4)]) for x in issues]
    rows = [row for _, _, row in interleave(rows, issue=lambda t: t[0])]
    shown = "the first 500 in the review's order" if len(rows) > 500 else "in the review's order"
    table = {"title": f"issues ({len(rows)}; {shown})",
             "header": ["split", "image", "kind", "class", "suggested", "score"], "rows": rows[:500]}
    data = {"kind": "review", "title": title, "classes": names, "images": images, "tables": [table],
            "numbers": [{"id": "flagged", "label": "flagged images", "value": len(images)},
                        {"id": "issues", "label": "issues", "value": len(rows)}]}
    return write_page(data, records, out_dir)
