"""`tools/benchmark.py --search`: the input size and the test-time candidates chosen on validation.

Two settings of a deployed detector are free of quantization and usually chosen by habit: the
input size (the shorter side it resizes to) and the candidates it keeps before its last NMS
(the RPN's proposals of a two-stage model, RoIAlign and the box head run on each; the top
anchors per level of a one-stage one). Both are baked into an exported graph. So, per format
the run has exported, the search exports the checkpoint again at a few smaller settings, scores
each file on the validation split and times it at batch 1 on the same images, one after
another in one process; an INT8 format is quantized at a setting only where its float format
stayed within the budget there, at the INT8_TRIES fastest such settings (INT8 loses more,
never less, and each INT8 file is minutes of accuracy control). The fastest file of each format
within `max_drop` AP of the checkpoint, when it is faster than the format's own file, is kept
in `weights/` as `<stem>.s<size>c<candidates>.<format>`, its setting in its metadata; the
benchmark that follows tables it and `infer.py --backend auto` can pick it. The frontier goes
to `<run>/search.md`, `search.csv` and `search.png`; the other files are removed.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("detection.benchmark")

SIZE_FACTORS = (1.0, 0.8, 0.65)  # of the model's input size
CANDIDATE_FACTORS = (1.0, 0.5, 0.25)  # of its test-time candidates
MIN_SIZE = 128
MIN_CANDIDATES = 25
INT8_TRIES = 2  # settings an INT8 format is quantized at besides its own (the fastest its float format kept)


@dataclass
class Point:
    kind: str  # "openvino", "onnx int8", ...
    size: int
    candidates: int
    file: Path
    AP: float = float("nan")
    ips_1: float = float("nan")
    own: bool = False  # the format's own exported file (the setting it was exported at)
    chosen: bool = False


def grid(min_size: int, candidates: int, sizes: list[int] | None = None,
         counts: list[int] | None = None) -> list[tuple[int, int]]:
    """(size, candidates) pairs to try, largest first: the given lists, else the factors above
    of the model's own (sizes rounded to 32)."""
    sizes = sizes or sorted({max(MIN_SIZE, 32 * round(min_size * f / 32)) for f in SIZE_FACTORS}, reverse=True)
    counts = counts or sorted({max(MIN_CANDIDATES, round(candidates * f)) for f in CANDIDATE_FACTORS}, reverse=True)
    return [(s, c) for s in sizes for c in counts]


def kind_of(path: Path) -> tuple[str, bool]:
    """(export format, int8) of an exported file's name."""
    fmt = {".xml": "openvino", ".onnx": "onnx", ".torchscript": "torchscript"}[path.suffix]
    return fmt, ".int8." in path.name


def label(path: Path) -> str:
    """What a file is, in the tables: 'pytorch' for a checkpoint, else 'onnx', 'openvino int8', ..."""
    if path.suffix == ".pt":
        return "pytorch"
    fmt, int8 = kind_of(path)
    return fmt + (" int8" if int8 else "")


def variant(ckpt: Path, fmt: str, int8: bool, size: int, candidates: int, folder: Path, calib: int,
            max_drop: float) -> Path:
    """The checkpoint exported at (`size`, `candidates`) into `folder`; INT8 the way
    `export.py --int8` makes it (OpenVINO's with accuracy control within `max_drop`)."""
    from ..inference.export import FORMATS, export
    from .int8 import make_int8

    fp32 = folder / f"{ckpt.stem}.s{size}c{candidates}{FORMATS[fmt]}"
    if not fp32.is_file():
        export(ckpt, fmt, size=size, out=str(fp32), candidates=candidates)
    return make_int8(ckpt, fp32, calib, max_drop, controlled=True) if int8 else fp32


def search(run, ref, files: list[Path], sizes: list[int] | None, counts: list[int] | None, images,
           max_drop: float, calib: int, time_file) -> tuple[list[Point], float, list[str]]:
    """Every format of `files` at every pair of `grid` around the setting of `ref` (the run's
    checkpoint, opened), INT8 only where its float format met the budget, scored and timed;
    (points, the checkpoint's AP, the settings skipped and why: an export that disagrees with
    PyTorch is no choice). The chosen files are moved into weights/."""
    from ..inference.export import ExportError, test_candidates
    from .check import validate

    ckpt = run.checkpoint()
    own = (ref.predictor.min_size, test_candidates(ref.predictor.model))
    pairs = grid(*own, sizes, counts)
    folder = run.dir / "search"
    folder.mkdir(exist_ok=True)
    points, base_ap, skipped = [], None, []
    try:
        for path in sorted(files, key=lambda p: kind_of(p)[1]):  # float formats first
            fmt, int8 = kind_of(path)
            kind = label(path)
            for size, n in int8_pairs(points, fmt, pairs, base_ap, max_drop, own) if int8 else pairs:
                is_own = (size, n) == own
                try:
                    file = path if is_own else variant(ckpt, fmt, int8, size, n, folder, calib, max_drop)
                except ExportError as e:  # a setting this format cannot export faithfully: not a choice
                    log.warning("search: %s at %d px, %d candidates skipped: %s", kind, size, n, str(e)[:200])
                    skipped.append(f"{kind} at {size} px, {n} candidates: {str(e)[:160]}")
                    continue
                report = validate([file], ckpt, None)[0]
                base_ap = report["checkpoint_AP"]
                point = Point(kind, size, n, file, report["AP"], time_file(file, images, [1])["ips_1"], is_own)
                points.append(point)
                log.info("search: %s at %d px, %d candidates: AP %.3f (%+.3f), %.2f images/s", kind, size, n,
                         point.AP, point.AP - base_ap, point.ips_1)
        for kind in dict.fromkeys(p.kind for p in points):
            keep(run, [p for p in points if p.kind == kind], base_ap, max_drop)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return points, base_ap, skipped


def int8_pairs(points: list[Point], fmt: str, pairs: list[tuple[int, int]], base_ap, max_drop: float,
               own: tuple[int, int]) -> list[tuple[int, int]]:
    """The settings an INT8 format is tried at: its own, and the INT8_TRIES fastest at which its
    float format stayed within the budget (each INT8 file is a quantization with accuracy
    control, minutes on a CPU; INT8 loses more AP than float, never less). All, when the run
    has no float file of that format."""
    floats = [p for p in points if p.kind == fmt]
    if not floats:
        return pairs
    ok = sorted((p for p in floats if p.AP >= base_ap - max_drop and (p.size, p.candidates) != own),
                key=lambda p: -p.ips_1)
    return [own] + [(p.size, p.candidates) for p in ok[:INT8_TRIES]]


def keep(run, points: list[Point], base_ap: float, max_drop: float) -> None:
    """Move the fastest point within the budget into weights/ when it is not the format's own
    file and is faster than it; its setting goes into its metadata."""
    from ..inference.metadata import read_metadata
    from ..utils.runs import score_file
    from .check import set_metadata

    ok = [p for p in points if p.AP >= base_ap - max_drop]
    if not ok:
        return
    best = max(ok, key=lambda p: p.ips_1)
    own = next((p for p in points if p.own), None)
    if best.own or (own is not None and best.ips_1 <= own.ips_1):
        return
    target = run.weights / best.file.name
    fmt, _ = kind_of(best.file)
    meta = read_metadata(best.file, fmt)
    set_metadata(best.file, {**meta, "setting": {
        "size": best.size, "candidates": best.candidates, "AP": round(best.AP, 4),
        "AP_drop": round(base_ap - best.AP, 4), "max_drop": max_drop, "images_per_s": round(best.ips_1, 2),
        "chosen_by": "tools/benchmark.py --search: the fastest setting of this format within max_drop"}})
    side = score_file(best.file)
    side.write_text(side.read_text())  # scored after the metadata changed: the score stays trusted
    if best.file.suffix == ".xml":
        os.replace(best.file.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(side, score_file(target))
    os.replace(best.file, target)
    best.file, best.chosen = target, True
    log.info("search: %s kept as %s (%d px, %d candidates)", best.kind, target.name, best.size, best.candidates)


def write_search(run, points: list[Point], base_ap: float, max_drop: float, where: str,
                 skipped: list[str] = ()) -> None:
    """search.md, search.csv and search.png (AP against images/s, the budget as a line)."""
    lines = [f"{where}; AP budget {base_ap - max_drop:.3f} (the checkpoint's {base_ap:.3f} - {max_drop:g})", "",
             "| format | input px | candidates | AP | AP drop | images/s (b=1) | within | kept |",
             "|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.kind} | {p.size} | {p.candidates} | {p.AP:.3f} | {base_ap - p.AP:+.3f} | {p.ips_1:.2f} | "
                     f"{'yes' if p.AP >= base_ap - max_drop else 'no'} | "
                     f"{p.file.name if p.chosen else ('(its own file)' if p.own else '')} |")
    lines += [""] + [f"skipped: {why}" for why in skipped] if skipped else []
    (run.dir / "search.md").write_text("\n".join(lines) + "\n")
    with open(run.dir / "search.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["format", "size", "candidates", "AP", "ips_1", "own", "chosen", "file"])
        for p in points:
            w.writerow([p.kind, p.size, p.candidates, f"{p.AP:.4f}", f"{p.ips_1:.3f}", int(p.own), int(p.chosen),
                        p.file.name])
    plot_search(run.dir / "search.png", points, base_ap, max_drop)
    print("\n".join(lines))


def plot_search(path: Path, points: list[Point], base_ap: float, max_drop: float) -> None:
    from ..utils.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in dict.fromkeys(p.kind for p in points):
        mine = [p for p in points if p.kind == kind]
        ax.plot([p.ips_1 for p in mine], [p.AP for p in mine], "o", label=kind)
        for p in mine:
            ax.annotate(f"{p.size}/{p.candidates}" + (" *" if p.chosen else ""), (p.ips_1, p.AP), fontsize=7)
    ax.axhline(base_ap - max_drop, color="grey", linestyle="--", label=f"budget (AP - {max_drop:g})")
    ax.set_xlabel("images/s at batch 1")
    ax.set_ylabel("validation AP")
    ax.set_title("input px / candidates; * kept")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def setting_of(meta: dict) -> str:
    """'416 px, 150 candidates' of a file's metadata (its export setting), for the benchmark."""
    c = meta.get("candidates")
    return f"{meta.get('min_size')} px" + (f", {c} candidates" if c else "")

