"""What a run reports as it goes: TensorBoard, results.csv (one row per epoch), the epoch
line in the log and results.png (its curves), in the run folder."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from ..errors import writing
from ..utils.runs import Run

log = logging.getLogger("detection.training")


class RunLog:
    """The run's reporting, by rank 0 only (`enabled`): TensorBoard scalars (losses and lr each
    step, metrics and a few drawn images each validation), results.csv, the epoch line, and
    results.png when the run ends. `resumed_epoch`: a resume rewrites results.csv up to it and
    TensorBoard drops the events after `resumed_step`."""

    def __init__(self, run: Run, enabled: bool, resumed_epoch: int | None = None, resumed_step: int = 0):
        self.run, self.writer, self.results = run, None, None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run.dir), purge_step=resumed_step + 1 if resumed_epoch is not None else None)
        self.results = ResultsLog(run.results_csv, keep_until_epoch=resumed_epoch)

    def step(self, step: int, losses: dict, lr: float) -> None:
        if self.writer is not None:
            self.writer.add_scalar("train/lr", lr, step)
            for k, v in losses.items():
                self.writer.add_scalar(f"train/{k}", v, step)

    def validation(self, results: dict, evaluator, epoch: int) -> None:
        if self.writer is None:
            return
        for k in ("AP", "AP50", "AP75"):
            self.writer.add_scalar(f"val/{k}", results["coco"][k], epoch)
        self.writer.add_scalar("val/voc_mAP", results["voc_mAP"], epoch)
        log_val_images(self.writer, evaluator, epoch)

    def epoch(self, row: dict, total_epochs: int, world: int) -> None:
        """results.csv's row and the one-line epoch summary."""
        if self.results is None:
            return
        self.results.append(row)
        log.info("epoch %d/%d  mean loss %.3f  %.1f img/s%s%s  (%.0fs)", row["epoch"], total_epochs,
                 row.get("loss", float("nan")), row["images_per_s"] * world,
                 f"  AP {row['AP']:.3f}  AP50 {row['AP50']:.3f}" if "AP" in row else "",
                 f"  ({int(row['skipped_nonfinite'])} non-finite steps skipped)"
                 if row.get("skipped_nonfinite") else "", row["epoch_s"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            if self.run.results_csv.is_file():
                plot_results(self.run.results_csv, self.run.results_png)


def log_val_images(writer, evaluator, step: int, count: int = 4, score: float = 0.3) -> None:
    """A few validation images with their predictions drawn, to TensorBoard."""
    from ..data.images import read_record_image
    from ..utils.detections import to_detections
    from ..utils.visualize import draw_detections

    for idx in sorted(evaluator.predictions)[:count]:
        dets = to_detections(*evaluator.predictions[idx], evaluator.info.class_names, score)
        try:
            img = draw_detections(read_record_image(evaluator.records[idx]), dets)
        except OSError:
            continue
        writer.add_image(f"val/image{idx}", img, step, dataformats="HWC")


class ResultsLog:
    """results.csv. A column first seen in a later row (AP after unvalidated epochs) is added
    to the header and the file rewritten, so no column is ever lost."""

    def __init__(self, path: Path, keep_until_epoch: int | None = None):
        self.path, self.fields, self.rows = path, [], []
        if keep_until_epoch is not None and path.is_file():  # resume: drop rows past the checkpoint
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                self.rows = [r for r in reader if int(r["epoch"]) <= keep_until_epoch]
            self._rewrite()

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        new = [k for k in row if k not in self.fields]
        if new or not self.path.is_file():
            self.fields += new
            self._rewrite()
            return
        with writing(self.path), open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(row)

    def _rewrite(self) -> None:
        with writing(self.path), open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(self.rows)


def plot_results(csv_path: Path, out: Path) -> None:
    """A grid of small plots, one per loss and metric, over integer epochs."""
    from ..utils.plotting import pyplot

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    keys = [k for k in rows[0] if k.startswith("loss") or k in ("AP", "AP50", "AP75", "voc_mAP", "lr")]
    cols = min(4, len(keys))
    nrows = -(-len(keys) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, k in zip(axes.flat, keys):
        ys = [float(r[k]) if r.get(k) not in ("", None) else np.nan for r in rows]
        known = [(e, y) for e, y in zip(epochs, ys) if np.isfinite(y)]
        ax.plot(epochs, ys, marker="o", markersize=3 if len(known) > 1 else 7)
        if len(known) == 1:  # one validation (a timed run): the value, not a lone dot
            ax.annotate(f"{known[0][1]:.3f}", known[0], textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=9)
        ax.set_title(f"{k}  {known[-1][1]:.4g}" if known else k, fontsize=9)
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)  # every panel on the run's epochs, a lone point too
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
