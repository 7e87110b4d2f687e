"""Does the loader keep up with the model? Loader images/s alone, per cache mode and worker count,
against the training step's own images/s, and how long training waits for data.

    python bench/data_speed.py                       # BCCD and a generated set of 12-megapixel photos
    python bench/data_speed.py --photos 24 --passes 2

Rows: `before` is the loader as it was (every photo decoded at full size, then shrunk);
`none` decodes large JPEGs at reduced size (data/pixels.py); `ram` and `disk` are data.cache.
Each loader is timed over `--passes` passes of the training split after one pass that fills
its cache (the fill is reported apart). Then a few training steps with 2 workers measure the
share of time the step waits for its batch. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from detection.config import load_config, with_values  # noqa: E402
from detection.data import pixels  # noqa: E402
from detection.data.dataset import build_loader, get_dataset  # noqa: E402
from detection.models.builders import build_model  # noqa: E402
from detection.training.optim import build_optimizer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = ["model.weights=none"]


def make_photos(root: Path, n: int, w: int = 4032, h: int = 3024) -> Path:
    """A VOC folder of `n` phone-sized JPEGs with smooth, photo-like content (noise would not compress)."""
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        img = np.stack([(np.sin(xx / (150 + 20 * i) + c) * 60 + yy / h * 120 + 40) for c in range(3)], -1)
        img = (img + rng.normal(0, 6, img.shape)).clip(0, 255).astype(np.uint8)
        x1, y1 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        cv2.rectangle(img, (x1, y1), (x1 + w // 4, y1 + h // 4), (20, 200, 40), -1)
        cv2.imwrite(str(root / "JPEGImages" / f"p{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (root / "Annotations" / f"p{i}.xml").write_text(
            f"<annotation><filename>p{i}.jpg</filename><size><width>{w}</width><height>{h}</height></size>"
            f"<object><name>box</name><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin><xmax>{x1 + w // 4}</xmax>"
            f"<ymax>{y1 + h // 4}</ymax></bndbox></object></annotation>")
    names = "".join(f"p{i}\n" for i in range(n))
    for split in ("train", "val"):
        (root / "ImageSets/Main" / f"{split}.txt").write_text(names)
    return root


def loader_speed(cfg: dict, mode: str, workers: int, passes: int) -> tuple[float, float]:
    """(images/s over `passes` passes after a first one, seconds to build the dataset + first pass)."""
    cache = "none" if mode == "before" else mode
    full = mock.patch.object(pixels, "reduce_factor", lambda *a: 1) if mode == "before" else mock.patch.object(
        pixels, "reduce_factor", pixels.reduce_factor)
    with full:
        t0 = time.perf_counter()
        ds = get_dataset(with_values(cfg, {"data.cache": cache, "data.num_workers": workers}), train=True)
        loader = build_loader(ds, cfg["train"]["batch_size"], True, workers, False)
        for _ in loader:
            pass
        fill = time.perf_counter() - t0
        n, t0 = 0, time.perf_counter()
        for epoch in range(1, passes + 1):
            loader.batch_sampler.set_epoch(epoch)
            for images, _ in loader:
                n += len(images)
        return n / (time.perf_counter() - t0), fill


def train_speed(cfg: dict, workers: int, cache: str, steps: int) -> tuple[float, float]:
    """(training images/s, share of the time spent waiting for the loader) over `steps` steps."""
    torch.manual_seed(0)
    ds = get_dataset(with_values(cfg, {"data.cache": cache}), train=True)
    loader = build_loader(ds, cfg["train"]["batch_size"], True, workers, False)
    model = build_model(cfg["model"], ds.info.class_names, verbose=False).train()
    opt = build_optimizer(model, cfg["train"], cfg["train"]["lr"], 1.0)
    batches, waited, seen, epoch = iter(loader), 0.0, 0, 0
    for i in range(steps + 2):
        if i == 2:
            waited, seen, start = 0.0, 0, time.perf_counter()
        t = time.perf_counter()
        try:
            images, targets = next(batches)
        except StopIteration:
            epoch += 1
            loader.batch_sampler.set_epoch(epoch)
            batches = iter(loader)
            images, targets = next(batches)
        waited += time.perf_counter() - t
        loss = sum(model(list(images), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(images)
    total = time.perf_counter() - start
    return seen / total, waited / total


def bench(name: str, cfg: dict, modes: list[str], workers: list[int], passes: int, steps: int) -> None:
    print(f"\n### {name}: {cfg['data']['root']} at min_size {cfg['model']['min_size']}, "
          f"max_size {cfg['model']['max_size']} (CPU {torch.backends.cpu.get_cpu_capability()}, "
          f"{os.cpu_count()} cores)\n")
    print("| loader | " + " | ".join(f"{w} workers img/s" for w in workers) + " | first pass (fill) s, 0 workers |")
    print("|---|" + "---|" * (len(workers) + 1))
    speeds = {}
    for mode in modes:
        row = [loader_speed(cfg, mode, w, passes) for w in workers]
        speeds[mode] = row[0][0]
        print(f"| {mode} | " + " | ".join(f"{s:.1f}" for s, _ in row) + f" | {row[0][1]:.1f} |", flush=True)
    if "before" in speeds:
        print("\nspeed-up over `before` with 0 workers: "
              + ", ".join(f"{m} {s / speeds['before']:.1f}x" for m, s in speeds.items() if m != "before"))
    print("\n| training, 2 workers | images/s | waiting for data |\n|---|---|---|")
    for cache in ("none", "ram"):
        ips, wait = train_speed(cfg, 2, cache, steps)
        print(f"| data.cache={cache} | {ips:.2f} | {wait:.0%} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--photos", type=int, default=16, help="12-megapixel photos to generate")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="training steps for the waiting measurement")
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--skip-bccd", action="store_true")
    args = p.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    modes = ["before", "none", "ram", "disk"]
    with tempfile.TemporaryDirectory() as tmp:
        common = [f"data.cache_dir={tmp}/cache", "output_dir=" + tmp] + TINY_MODEL
        if not args.skip_bccd:
            bench("BCCD", load_config(REPO / "configs/bccd_frcnn.yaml", common), modes, workers, args.passes,
                  args.steps)
        root = make_photos(Path(tmp) / "photos", args.photos)
        cfg = load_config(REPO / "configs/voc_frcnn.yaml", common + [f"data.root={root}", "data.train_split=train",
                                                                    "data.val_split=val", "data.classes=[box]"])
        bench("12-megapixel photos", cfg, modes, workers, args.passes, args.steps)


if __name__ == "__main__":
    main()
