"""The run's config resolved before the loop, once, and pinned in config.yaml: the recipe fitted
to the data (`recipe.py`: scale, tiles, anchors, crowding, sampling), the input size
(model.auto_size), fitted anchors (model.anchors=auto), the label order, the split
(data.val_fraction) and the precision (train.amp=auto), so a resume or an evaluation sees
exactly what was trained. `prepare` does it all and hands the trainer what it trains; the
config it returns is the one every later step reads (nothing after it makes another).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import restore_model
from ..config import with_values
from ..data.dataset import build_loader, read_split, train_and_val_datasets
from ..data.fingerprint import fingerprint
from ..data.splits import record_names, write_split
from ..data.summary import box_stats
from ..evaluation.evaluator import build_validation
from ..models.anchors import fitted_anchors, sized_input
from ..models.builders import build_model
from ..utils import distributed as dist
from ..utils.precision import choose_amp
from ..utils.runs import Run, new_run_dir
from . import recipe
from .engine import measure_step_time
from .pseudo import read_listing, with_old_classes, write_listing
from .start import Start

log = logging.getLogger("detection.training")


@dataclass
class Prepared:
    """What a run trains, on its resolved config."""

    cfg: dict
    class_names: list[str]
    model: torch.nn.Module
    loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    evaluator: object
    run: Run


def prepare(cfg: dict, ckpt: dict | None, run: Run | None, device: torch.device, rank: int = 0,
            world: int = 1) -> Prepared:
    """Data, model and run folder: a new run's (its config resolved and pinned here, once), or
    the resumed `run`'s, whose config is already resolved and whose `ckpt` the model restores.
    The config is changed twice here and nowhere else: the recipe, input size and anchors (the
    model is built at them), then the label order, the split file and the precision."""
    fresh, d = ckpt is None, cfg["data"]
    start = Start.read(cfg["model"]["init"]) if fresh and cfg["model"]["init"] else None
    records, info = read_split(d, d["train_split"], True, None, cfg["seed"])
    pseudo = None
    if start and cfg["model"]["keep_old_classes"]:
        records, info, pseudo, line = with_old_classes(start, records, info, device)
        if dist.is_main():
            log.info(line)
    elif cfg["model"]["keep_old_classes"]:  # resumed: the classes are pinned, the pseudo-labels written
        records = read_listing(run.pseudo_labels, records, list(info.class_names), info.root)
    data_print = fingerprint(records, list(info.class_names)) if fresh else None  # a resume's is in its folder
    if fresh:  # the recipe, sizes and anchors pinned before anything is resized to them
        changes, lines = fitted(cfg, records, data_print, start)
        for line in lines if dist.is_main() else ():
            log.info(line)
        cfg = with_values(cfg, changes)
    m, t = cfg["model"], cfg["train"]
    size = m["min_size"], m["max_size"], m["tile_size"]
    train_ds, val_ds = train_and_val_datasets(d, size, records, info, cfg["seed"],
                                              ignore_crowd=m["arch"].startswith("fasterrcnn_"))
    class_names = list(info.class_names)
    val_loader, evaluator = build_validation(val_ds, cfg["eval"], t["batch_size"], d["num_workers"], device, rank,
                                             world)
    model = build_model(m, class_names, load_pretrained=fresh and not start, verbose=dist.is_main())
    for line in start.load_into(model) if start else ():
        if dist.is_main():
            log.info(line)
    if fresh:
        run = Run(Path(dist.broadcast_object(str(new_run_dir(cfg["output_dir"], cfg["name"]))
                                             if dist.is_main() else None)))
        if dist.is_main():
            data_print.write(run.fingerprint)
            if pseudo is not None:
                write_listing(run.pseudo_labels, pseudo, info.root)
    else:
        restore_model(model, ckpt, run.last)
    model.to(device)
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)
    loader = build_loader(train_ds, t["batch_size"], True, d["num_workers"], device.type == "cuda",
                          seed=cfg["seed"], rank=rank, world_size=world,
                          repeat_thresh=d["repeat_thresh"] if d["sampler"] == "repeat_factor" else None)
    if fresh:
        cfg = with_values(cfg, {"data.classes": class_names,  # the label order, pinned
                                "data.split_file": pin_split(cfg, run, train_ds, val_ds),
                                "train.amp": resolve_amp(t["amp"], model, loader, device)})
    return Prepared(cfg, class_names, model, loader, val_loader, evaluator, run)


def fitted(cfg: dict, records, data_print, start: Start | None = None) -> tuple[dict, list[str]]:
    """({dotted key: value}, log lines) a new run pins from its training data: the structure and
    scale of the model it starts from (`start`, model.init), the recipe's choices (`recipe.choose`),
    then auto_size and anchors=auto at the input chosen. The data check shows the same, so the
    sizes it reports are training's own."""
    inherited, start_lines = start.inherited(cfg) if start else ({}, [])
    if inherited:
        cfg = with_values(cfg, inherited)
    chosen, recipe_lines = recipe.choose(cfg, data_print)
    changes, lines = fit_to_boxes(recipe.model_after(cfg["model"], chosen), records)
    return {**inherited, **chosen, **changes}, [*data_print.lines(), *start_lines, *recipe_lines, *lines]


def fit_to_boxes(mcfg: dict, records) -> tuple[dict, list[str]]:
    """({dotted key: value}, log lines): model.auto_size's input size and model.anchors=auto's
    anchors, from the training boxes, to pin (auto_size off, the sizes and anchors written). The
    data check sizes the boxes it reports through this too, so it shows the input training will use."""
    changes, lines = {}, []
    size, max_size, tile = mcfg["min_size"], mcfg["max_size"], mcfg["tile_size"]
    if mcfg["auto_size"] and not tile:
        stats = box_stats(records, size, max_size)
        size, max_size, why = sized_input(mcfg, np.minimum(stats["w"], stats["h"]), size, max_size)
        changes.update({"model.min_size": size, "model.max_size": max_size, "model.auto_size": False})
        lines.append(why)
    if mcfg["anchors"] == "auto" and not mcfg["anchor_sizes"]:
        stats = box_stats(records, size, max_size, tile)  # at the input size just chosen
        sizes, ratios = fitted_anchors(mcfg, stats["w"], stats["h"])
        changes.update({"model.anchor_sizes": sizes, "model.aspect_ratios": ratios})
        lines.append(f"model.anchors=auto: sizes {sizes}, aspect ratios {ratios} "
                     f"(from {sum(len(r.boxes) for r in records)} training boxes)")
    return changes, lines


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


def resolve_amp(amp: str, model, loader, device) -> str:
    """train.amp=auto becomes the precision this device trains fastest in (pinned in config.yaml)."""
    if amp != "auto":
        return amp
    amp, why = choose_amp(device, lambda a: measure_step_time(model, loader, device, a, steps=5, warmup=2))
    amp = dist.broadcast_object(amp)
    if dist.is_main():
        log.info("train.amp=auto: %s (%s)", {"none": "fp32"}.get(amp, amp), why)
    return amp
