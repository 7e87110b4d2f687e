"""COCO evaluation time: pycocotools (the reference) vs faster-coco-eval, same 12 numbers.

    python bench/eval_speed.py [--images 5000] [--dets 100]

A random ground truth (about 7 boxes an image, 80 categories) and `--dets` random
detections per image, scored through detection.evaluation.evaluate_files with each backend.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.evaluation.evaluator import COCO_METRICS, evaluate_files  # noqa: E402


def make_set(folder: Path, images: int, dets: int, seed: int = 0) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    cats = list(range(1, 81))
    imgs, anns, preds = [], [], []
    for i in range(1, images + 1):
        imgs.append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        for _ in range(int(rng.poisson(7))):
            w, h = rng.uniform(8, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(rng.choice(cats)),
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        for _ in range(dets):
            w, h = rng.uniform(8, 300, 2)
            preds.append({"image_id": i, "category_id": int(rng.choice(cats)), "score": float(rng.random()),
                          "bbox": [float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h)), float(w), float(h)]})
    gt = folder / "gt.json"
    gt.write_text(json.dumps({"images": imgs, "annotations": anns,
                              "categories": [{"id": c, "name": f"c{c}"} for c in cats]}))
    pr = folder / "pred.json"
    pr.write_text(json.dumps(preds))
    return str(gt), str(pr)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--dets", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gt, pred = make_set(Path(tmp), args.images, args.dets)
        print(f"| backend ({args.images} images, {args.dets} detections each) | seconds | AP |\n|---|---|---|")
        results = {}
        for backend in ("pycocotools", "faster_coco_eval"):
            t0 = time.perf_counter()
            res, _ = evaluate_files(gt, pred, backend=backend)
            results[backend] = res["coco"]
            print(f"| {backend} | {time.perf_counter() - t0:.1f} | {res['coco']['AP']:.6f} |", flush=True)
        same = all(abs(results["pycocotools"][k] - results["faster_coco_eval"][k]) < 1e-9 for k in COCO_METRICS)
        print(f"\nsame 12 numbers: {same}")


if __name__ == "__main__":
    main()
