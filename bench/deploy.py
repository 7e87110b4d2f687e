"""Deployment within the AP budget, on a trained run: every format, INT8 with accuracy control,
then the settings search, timed side by side in one run of tools/benchmark.py.

    python bench/deploy.py --run runs/<name> [--max-drop 0.01] [--images 20] [--calib 32] [--skip-export]
        [--formats openvino,onnx] [--sizes 512,416] [--candidates 300,100] [--batches 1,2,4]

Exports OpenVINO fp32 + INT8 (head in float, accuracy control within --max-drop) and ONNX fp32 +
INT8 (head in float), each scored on the run's validation split; then `tools/benchmark.py
--search`: smaller input sizes and fewer test-time candidates per format, the fastest within the
budget kept, and the table of every file (`<run>/benchmark.md`, `<run>/search.md`). Prints both
with the minutes each step took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detection.cli import benchmark as bench_cli  # noqa: E402
from detection.cli import export as export_cli  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--max-drop", default="0.01")
    p.add_argument("--images", default="20")
    p.add_argument("--calib", default="32")
    p.add_argument("--sizes", default="")
    p.add_argument("--candidates", default="")
    p.add_argument("--formats", default="openvino,onnx", help="what to export (a tiled model's validation is "
                                                               "long: openvino alone halves the bench)")
    p.add_argument("--batches", default="1,2,4", help="batch sizes the table times (a sliced model batches its "
                                                      "tiles, not images: 1)")
    p.add_argument("--skip-export", action="store_true", help="the run's files are exported already")
    args = p.parse_args()
    steps = []
    for fmt in () if args.skip_export else [f for f in args.formats.split(",") if f]:
        t = time.perf_counter()
        export_cli.main(["--ckpt", args.run, "--format", fmt, "--int8", "--calib", args.calib])
        steps.append(f"export {fmt} + int8: {(time.perf_counter() - t) / 60:.1f} min")
    t = time.perf_counter()
    extra = ([f"--sizes={args.sizes}"] if args.sizes else []) + ([f"--candidates={args.candidates}"]
                                                                 if args.candidates else [])
    bench_cli.main(["--ckpt", args.run, "--search", "--max-drop", args.max_drop, "--images", args.images,
                    "--calib", args.calib, "--batches", args.batches, *extra])
    steps.append(f"benchmark --search: {(time.perf_counter() - t) / 60:.1f} min")
    run = Path(args.run)
    print("\n".join([*steps, "", (run / "search.md").read_text(), (run / "benchmark.md").read_text()]))


if __name__ == "__main__":
    main()
