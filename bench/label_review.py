"""How well does the label review find mistakes? Injected ones on BCCD's validation images.

    python bench/label_review.py --ckpt runs/bccd_frcnn [--per-kind 10] [--seeds 3]

The model never trained on the validation images, so its detections there are out of
sample. Per seed: `--per-kind` boxes deleted, classes changed, boxes shifted and spurious
boxes added (detection/review/inject.py); the review ranks every likely mistake; printed:
precision and recall at k (k = the number injected, and twice that), per kind the share
found in the top 2k. BCCD's own labels miss many red cells, so the review also (rightly)
ranks real mistakes that count against precision here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.config import load_config  # noqa: E402
from detection.data.dataset import read_split  # noqa: E402
from detection.inference.loading import open_model  # noqa: E402
from detection.review.folds import predict_records  # noqa: E402
from detection.review.inject import inject, precision_recall_at  # noqa: E402
from detection.review.issues import find_issues  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", required=True)
    p.add_argument("--per-kind", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--confident", type=float, default=0.7)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    loaded = open_model(args.ckpt, "cpu")
    cfg = load_config(None, base=loaded.config)
    d = cfg["data"]
    records, info = read_split(d, d["val_split"], False, loaded.class_names)
    preds = predict_records(loaded.predictor, records, "predict")
    k = 4 * args.per_kind
    rows = []
    for seed in range(args.seeds):
        bad, truth = inject(records, np.random.default_rng(seed), args.per_kind, len(info.class_names))
        issues = find_issues(bad, preds, len(info.class_names), args.confident)
        p1, r1 = precision_recall_at(issues, truth, k)
        p2, r2 = precision_recall_at(issues, truth, 2 * k)
        top = {(x.image, x.kind) for x in issues[:2 * k]}
        per_kind = {kind: sum(t in top for t in truth if t[1] == kind) / args.per_kind
                    for kind in ("missing", "wrong_class", "bad_box", "spurious")}
        rows.append((p1, r1, p2, r2, per_kind, len(issues)))
    print(f"\nBCCD val ({len(records)} images), {args.per_kind} injected mistakes of each kind, {args.seeds} seeds, "
          f"model {args.ckpt}\n")
    print(f"| seed | P@{k} | R@{k} | P@{2 * k} | R@{2 * k} | missing | wrong_class | bad_box | spurious | issues |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s, (p1, r1, p2, r2, pk, n) in enumerate(rows):
        print(f"| {s} | {p1:.2f} | {r1:.2f} | {p2:.2f} | {r2:.2f} | " + " | ".join(f"{v:.1f}" for v in pk.values())
              + f" | {n} |")


if __name__ == "__main__":
    main()
