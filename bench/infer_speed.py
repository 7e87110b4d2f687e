"""Inference images/s of one model under each backend, on the same images, with the detections compared.

    python bench/infer_speed.py --ckpt runs/bccd_frcnn            # a trained run (default: the newest)
    python bench/infer_speed.py --images 32 --batch 1

Backends: PyTorch eager fp32, PyTorch bf16 autocast, TorchScript, ONNX Runtime (dynamic input,
as `tools/export.py` writes by default, and --static). Every backend runs the same
preprocessing (data/pixels.target_size) on the same decoded images; the time is the forward
pass plus pre/post-processing, after 2 warm-up images. "same" is the share of eager fp32's
detections above score 0.05 that the backend also has (same label, IoU > 0.99, score within
1e-3). Prints the CPU capability and a Markdown table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from detection.inference.export import export, match  # noqa: E402
from detection.inference.loading import open_model  # noqa: E402
from detection.inference.predictor import Predictor  # noqa: E402
from detection.utils.runs import model_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BCCD = REPO.parent / "shared" / "datasets" / "bccd_voc" / "BCCD"


def load_images(n: int) -> list[np.ndarray]:
    if BCCD.is_dir():
        ids = (BCCD / "ImageSets" / "Main" / "val.txt").read_text().split()[:n]
        return [cv2.cvtColor(cv2.imread(str(BCCD / "JPEGImages" / f"{i}.jpg")), cv2.COLOR_BGR2RGB) for i in ids]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (480, 640, 3), np.uint8) for _ in range(n)]


def timed(pred: Predictor, images, batch: int) -> tuple[float, list]:
    pred.predict(images[:2], score=0.0, batch=batch)  # warm-up
    t0 = time.perf_counter()
    results = pred.predict(images, score=0.0, batch=batch)
    return len(images) / (time.perf_counter() - t0), results


def same(ref, got, score: float = 0.05) -> float:
    shares = []
    for r, g in zip(ref, got):
        keep = r.scores >= score
        if keep.any():
            shares.append(match((r.boxes[keep], r.scores[keep], r.labels[keep]), (g.boxes, g.scores, g.labels)))
    return float(np.mean(shares)) if shares else 1.0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", help="a checkpoint or run folder (default: the newest run under runs/)")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = model_file(args.ckpt)[0]
    images = load_images(args.images)
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads; "
          f"{ckpt}; {len(images)} images of {images[0].shape[1]}x{images[0].shape[0]}, batch {args.batch}\n")
    with tempfile.TemporaryDirectory() as tmp:
        files = {"onnx": export(ckpt, "onnx", dynamic=False, out=f"{tmp}/m.onnx"),
                 "onnx_dynamic": export(ckpt, "onnx", out=f"{tmp}/d.onnx"),
                 "torchscript": export(ckpt, "torchscript", out=f"{tmp}/m.torchscript")}
        runs = [("PyTorch eager fp32", open_model(ckpt).predictor),
                ("PyTorch bf16 autocast", open_model(ckpt, amp="bf16").predictor),
                ("TorchScript", open_model(files["torchscript"]).predictor),
                ("ONNX Runtime (--static input)", open_model(files["onnx"]).predictor),
                ("ONNX Runtime (dynamic input, the default)", open_model(files["onnx_dynamic"]).predictor)]
        print("| backend | images/s | vs eager fp32 | same detections |\n|---|---|---|---|")
        base, ref = None, None
        for name, pred in runs:
            speed, results = timed(pred, images, args.batch)
            if base is None:
                base, ref = speed, results
            print(f"| {name} | {speed:.2f} | {speed / base:.2f}x | {same(ref, results):.1%} |", flush=True)


if __name__ == "__main__":
    main()
