"""python tools/benchmark.py --ckpt runs/<name> [--images 20] [--batches 1,2,4]
python tools/benchmark.py --ckpt runs/<name> --search [--sizes 480,384] [--candidates 300,150] [--max-drop 0.01]

Every format the run has (its checkpoint in PyTorch, and each exported .onnx, .int8.onnx and
.torchscript beside it) on the same validation images, one after another on this machine:
file size, load time, images/s at batch 1 and at the best batch, latency p50 / p95 at batch
1, and AP on the validation split (the one tools/export.py scored, when it did). Writes
`<run>/benchmark.md` and `benchmark.csv`, and prints the table with the CPU (or GPU) it ran on.
`infer.py --backend auto` then picks the fastest file whose AP is within 0.01 of the checkpoint's.

`--search` first tries each exported format at smaller input sizes and fewer test-time
candidates (proposals), scored on the validation split and timed on these images, and keeps
the fastest setting of each format within --max-drop as a file of its own, with the setting in
its metadata (`deploy/search.py`: `search.md`, `search.csv`, `search.png`); the table then has
a row for it, and `--backend auto` can pick it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .common import ap_drop_arg, positive_int, setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.benchmark")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Speed and AP of every exported format of a run.")
    p.add_argument("--ckpt", required=True, help="a run folder (its checkpoint and the files exported beside it)")
    p.add_argument("--images", type=positive_int, default=20, help="validation images to time")
    p.add_argument("--batches", default="1,2,4", help="batch sizes to time")
    p.add_argument("--no-ap", action="store_true", help="time only (AP takes a pass over the validation split)")
    p.add_argument("--search", action="store_true", help="first try smaller input sizes and fewer test-time "
                                                         "candidates per exported format; keep the fastest within "
                                                         "--max-drop")
    p.add_argument("--sizes", type=_ints_within(32, 4096), help="--search: input sizes to try, 32 to 4096 px "
                                                                "(default: 1, 0.8, 0.65 of the model's)")
    p.add_argument("--candidates", type=_ints_within(1, 10000), help="--search: test-time candidates (proposals) to "
                                                                     "try (default: 1, 1/2, 1/4 of the model's)")
    p.add_argument("--max-drop", type=ap_drop_arg, default=0.01, help="--search: the AP a kept setting may lose "
                                                                      "against the checkpoint (default 0.01)")
    p.add_argument("--calib", type=positive_int, default=32, help="--search: training images an INT8 format "
                                                                  "calibrates on")
    args = p.parse_args(argv)
    if args.search and args.no_ap:
        p.error("--search chooses by AP: drop --no-ap")
    return args


def _ints_within(low: int, high: int):
    """An argparse type: a comma-separated list of whole numbers from `low` to `high` (an input
    under 32 px does not pass a stride-32 backbone; the bounds keep a typo from a long export)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"a comma-separated list of whole numbers, got {text!r}") from None
        if not values or min(values) < low or max(values) > high:
            raise argparse.ArgumentTypeError(f"whole numbers from {low} to {high}, got {text!r}")
        return values

    return parse


def machine() -> str:
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    cap = torch.backends.cpu.get_cpu_capability()
    return (f"CPU {platform.processor() or platform.machine()} ({cap}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads)")


def files_of(run) -> list[Path]:
    """The checkpoint the run's commands use, then every exported file beside it."""
    w = run.weights
    found = [run.checkpoint()]
    for pattern in ("*.torchscript", "*.onnx", "*.xml"):
        found += sorted(p for p in w.glob(pattern) if p.stem.split(".")[0] == run.checkpoint().stem)
    return found


def time_file(path: Path, images: list[np.ndarray], batches: list[int]) -> dict:
    """Load time, images/s per batch size, latency p50 / p95 at batch 1 (after one warm-up pass)."""
    from ..inference.loading import open_model

    t0 = time.perf_counter()
    predictor = open_model(path, "cpu").predictor
    row = {"load_s": time.perf_counter() - t0}
    predictor.predict(images[:1], score=0.0)
    lat = []
    for im in images:
        t = time.perf_counter()
        predictor.predict([im], score=0.0)
        lat.append(time.perf_counter() - t)
    row.update(p50_ms=1000 * float(np.percentile(lat, 50)), p95_ms=1000 * float(np.percentile(lat, 95)))
    speeds = {1: len(images) / sum(lat)}
    for b in (b for b in batches if b > 1):
        t = time.perf_counter()
        predictor.predict(images, score=0.0, batch=b)
        speeds[b] = len(images) / (time.perf_counter() - t)
    best = max(speeds, key=speeds.get)
    row.update(ips_1=speeds[1], ips_best=speeds[best], best_batch=best)
    return row


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    from ..config import load_config
    from ..data.dataset import read_split
    from ..data.images import read_record_image
    from ..deploy.scoring import evaluate_model
    from ..deploy.search import label
    from ..errors import ConfigError
    from ..inference.loading import open_model
    from ..utils.runs import file_size, model_file

    _, _, run = model_file(args.ckpt)
    if run is None:
        raise ConfigError(f"--ckpt {args.ckpt}: give a run folder (its checkpoint and the files exported beside it)")
    batches = sorted({int(b) for b in args.batches.split(",") if b.strip().isdigit() and int(b) > 0} | {1})
    ref = open_model(run.dir, "cpu")
    cfg = load_config(None, base=ref.config)
    records, _ = read_split(cfg["data"], cfg["data"]["val_split"], False, ref.class_names)
    images = [read_record_image(r) for r in records[:args.images]]
    if args.search:
        run_search(run, ref, args, images)
    rows = []
    for path in files_of(run):
        row = {"format": label(path), "file": path.name, "setting": setting(path), "size_mb": file_size(path) / 1e6,
               **time_file(path, images, batches)}
        if not args.no_ap:
            row["AP"] = scored_ap(path, run) or evaluate_model(open_model(path, "cpu"), cfg)[0]["coco"]["AP"]
        rows.append(row)
        log.info("%s: %.1f images/s at batch 1", path.name, row["ips_1"])
    write_table(run, rows, machine(), len(images))


def run_search(run, ref, args, images) -> None:
    """--search over the run's exported files (deploy/search.py), around the setting of `ref`,
    the run's checkpoint opened."""
    from ..deploy.search import search, write_search
    from ..errors import ConfigError

    exported = [p for p in files_of(run) if p.suffix != ".pt" and _own_export(p)]
    if not exported:
        raise ConfigError(f"--search: {run.dir} has no exported file to search from; export first "
                          "(tools/export.py --format openvino [--int8])")
    points, base_ap, skipped = search(run, ref, exported, args.sizes, args.candidates, images, args.max_drop,
                                      args.calib, time_file)
    write_search(run, points, base_ap, args.max_drop, f"{machine()}; {len(images)} validation images timed",
                 skipped)


def _own_export(path: Path) -> bool:
    """An export at the model's own setting (`best.xml`, `best.int8.onnx`), not a searched one."""
    return path.name.split(".")[1] in ("xml", "onnx", "torchscript", "int8")


def setting(path: Path) -> str:
    """The input size and candidates an exported file runs at ('' for the checkpoint)."""
    if path.suffix == ".pt":
        return ""
    from ..deploy.search import kind_of, setting_of
    from ..errors import CheckpointError
    from ..inference.metadata import read_metadata

    try:
        return setting_of(read_metadata(path, kind_of(path)[0]))
    except CheckpointError:
        return ""


def scored_ap(path: Path, run) -> float | None:
    """The AP tools/export.py scored for `path` (or, for the checkpoint, beside an export that is
    still there), if one can be trusted (`deploy.check.read_score`)."""
    from ..deploy.check import read_score
    from ..utils.runs import score_file

    if path.suffix != ".pt":
        return read_score(score_file(path), "AP", path)
    for other in sorted(run.weights.glob(f"{path.stem}*.eval.json")):
        export = other.with_name(other.name[: -len(".eval.json")])
        if export.is_file() and os.stat(path).st_mtime_ns <= os.stat(other).st_mtime_ns:
            ap = read_score(other, "checkpoint_AP", export)
            if ap is not None:
                return ap
    return None


def write_table(run, rows: list[dict], where: str, n: int) -> None:
    base = rows[0]
    lines = [f"{where}; {n} validation images; speeds relative to PyTorch eager fp32", "",
             "| format | file | setting | MB | load s | images/s (b=1) | images/s (best b) | p50 ms | p95 ms | AP |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ap = f"{r['AP']:.3f}" if "AP" in r else "-"
        lines.append(f"| {r['format']} | {r['file']} | {r['setting']} | {r['size_mb']:.1f} | {r['load_s']:.2f} | "
                     f"{r['ips_1']:.2f} "
                     f"({r['ips_1'] / base['ips_1']:.2f}x) | {r['ips_best']:.2f} (b={r['best_batch']}) | "
                     f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {ap} |")
    text = "\n".join(lines) + "\n"
    run.benchmark_md.write_text(text)
    with open(run.benchmark_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + (["AP"] if "AP" not in rows[0] else []))
        w.writeheader()
        w.writerows(rows)
    print(text)
    log.info("written %s and %s", run.benchmark_md, run.benchmark_csv.name)


def fastest_file(run, max_drop: float = 0.01) -> Path | None:
    """The fastest file (images/s at batch 1) of the run's benchmark whose AP is within
    `max_drop` of its checkpoint's; None without a benchmark with APs. Only the run's own files
    (`files_of`, by name) can be chosen: a `../` or absolute entry in benchmark.csv would run a
    model from outside the run. Rows that name another file, or hold no finite AP and speed,
    are skipped and counted."""
    if not run.benchmark_csv.is_file():
        return None
    own = {p.name: p for p in files_of(run) if p.is_file()}
    try:
        with open(run.benchmark_csv, newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        log.warning("%s cannot be read (%s): run tools/benchmark.py again", run.benchmark_csv, e)
        return None
    rows = [(own[r["file"]], _number(r.get("AP")), _number(r.get("ips_1"))) for r in table
            if r.get("file") in own]
    rows = [r for r in rows if r[1] is not None and r[2] is not None]
    if len(rows) < len(table):
        log.warning("%s: %d of %d rows skipped (a file that is not this run's, or no AP and speed as numbers)",
                    run.benchmark_csv, len(table) - len(rows), len(table))
    ref = next((ap for p, ap, _ in rows if p.suffix == ".pt"), None)
    if ref is None:
        return None
    return max((r for r in rows if r[1] >= ref - max_drop), key=lambda r: r[2])[0]


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


if __name__ == "__main__":
    main()
