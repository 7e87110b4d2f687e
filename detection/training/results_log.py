"""results.csv (one row per epoch) and results.png (its curves), in the run folder."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import writing


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
    from ..plotting import pyplot

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
