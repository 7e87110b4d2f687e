"""The run's config resolved before the loop, once, and pinned in config.yaml: the input size
(model.auto_size), fitted anchors (model.anchors=auto), the split (data.val_fraction) and the
precision (train.amp=auto), so a resume or an evaluation sees exactly what was trained.
"""

from __future__ import annotations

import logging

import numpy as np

from .. import distributed as dist
from ..config import with_values
from ..data.dataset import DetectionDataset, dataset_from, get_dataset, read_split
from ..data.splits import record_names, write_split
from ..data.summary import box_stats
from ..models.anchors import fitted_anchors, sized_input
from ..precision import choose_amp
from ..runs import Run
from .engine import measure_step_time

log = logging.getLogger("detection.training")


def training_data(cfg: dict, fresh: bool) -> tuple[dict, DetectionDataset]:
    """(config, training dataset). A new run's model.auto_size picks the input size from the
    training boxes before the dataset resizes to it (pinned as that size with auto_size off), and
    model.anchors=auto fits the anchors to them; a resumed run's config already holds both."""
    if not fresh:
        return cfg, get_dataset(cfg, train=True)
    records, info = read_split(cfg["data"], cfg["data"]["train_split"], True, None, cfg["seed"])
    cfg, lines = fit_to_boxes(cfg, records)
    if dist.is_main():
        for line in lines:
            log.info(line)
    return cfg, dataset_from(cfg, records, info, train=True)


def fit_to_boxes(cfg: dict, records) -> tuple[dict, list[str]]:
    """(config, log lines): model.auto_size's input size and model.anchors=auto's anchors, from the
    training boxes, pinned (auto_size off, the sizes and anchors written). The data check sizes
    the boxes it reports through this too, so it shows the input training will use."""
    m, changes, lines = cfg["model"], {}, []
    size, max_size = m["min_size"], m["max_size"]
    if m["auto_size"]:
        stats = box_stats(records, size, max_size)
        size, max_size, why = sized_input(m["arch"], np.minimum(stats["w"], stats["h"]), size, max_size)
        changes.update({"model.min_size": size, "model.max_size": max_size, "model.auto_size": False})
        lines.append(why)
    if m["anchors"] == "auto" and not m["anchor_sizes"]:
        stats = box_stats(records, size, max_size)  # at the input size just chosen
        sizes, ratios = fitted_anchors(m["arch"], stats["w"], stats["h"])
        changes.update({"model.anchor_sizes": sizes, "model.aspect_ratios": ratios})
        lines.append(f"model.anchors=auto: sizes {sizes}, aspect ratios {ratios} "
                     f"(from {sum(len(r.boxes) for r in records)} training boxes)")
    return with_values(cfg, changes), lines


def pin_split(cfg: dict, run: Run, train_ds, val_ds) -> str:
    """A split made by hash is written to `<run>/split.json`; the saved config points at it."""
    d = cfg["data"]
    if d["split_file"] or d["val_fraction"] <= 0:
        return d["split_file"]
    if dist.is_main():
        write_split(run.split, record_names(train_ds.records, train_ds.info), record_names(val_ds.records, val_ds.info),
                    f"val_fraction={d['val_fraction']} of {d['train_split']} by file name hash, "
                    f"fraction={d['fraction']} seed={cfg['seed']}")
    return str(run.split.resolve())


def resolve_amp(cfg: dict, model, loader, device) -> dict:
    """train.amp=auto becomes the precision this device trains fastest in, pinned in config.yaml."""
    if cfg["train"]["amp"] != "auto":
        return cfg
    amp, why = choose_amp(device, lambda a: measure_step_time(model, loader, device, a, steps=5, warmup=2))
    amp = dist.broadcast_object(amp)
    if dist.is_main():
        log.info("train.amp=auto: %s (%s)", {"none": "fp32"}.get(amp, amp), why)
    return with_values(cfg, {"train.amp": amp})
