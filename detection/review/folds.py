"""Detections for the review: in-sample from the model given, or out of sample from K short
models, each trained (train.time) without one K-th of the training images and predicting it.

A model has learnt its training labels, mistakes included: on its own training images it
tends to agree with them, so in-sample review under-finds mistakes there. Out-of-fold
detections do not have that bias (cleanlab's advice too), at the cost of K trainings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config import with_values
from ..data.images import read_record_image
from ..data.splits import record_names, unit_hash, write_split
from ..errors import ConfigError
from ..utils.progress import Progress
from ..utils.runs import Run

log = logging.getLogger("detection.review")


def predict_records(predictor, records, desc: str = "review") -> list[tuple]:
    """(boxes, scores, labels 1..K) of every record's image: every detection the model returns."""
    out = []
    bar = Progress(records, desc)
    for r in bar:
        res = predictor.predict([read_record_image(r)], score=0.0, max_det=None, raw_scores=True)[0]
        out.append((res.boxes.astype(np.float32), res.scores.astype(np.float32), res.labels.astype(np.int64) + 1))
        bar.update()
    bar.close()
    return out


def fold_of(name: str, folds: int, seed: int) -> int:
    return int(unit_hash(name, f"review:{seed}") * folds)


def check_folds(which: list[int], folds: int, images: int) -> None:
    """Every image must be predicted by a model trained on others: a fold that holds every image
    (`--folds 1`, or a name hash that leaves the others empty) leaves none to train on, and its
    images were reviewed against no detections, every box 'spurious' at full confidence."""
    full = [k for k in range(folds) if which.count(k) == images]
    if folds < 2 or full:
        raise ConfigError(f"--folds {folds}: " + ("one fold holds every image" if folds < 2 else
                          f"the name hash put all {images} training images in fold {full[0] + 1}")
                          + ", so no model could train without them; give --folds 2 or more"
                          + (" and more training images" if folds >= 2 else ""))


def out_of_fold(cfg: dict, records, info, folds: int, minutes: float, out: Path, seed: int = 0) -> list[tuple]:
    """Detections of each training image by a model that did not train on it: `folds` runs of
    `minutes` each, on the run's own configuration (its classes pinned)."""
    from ..inference.loading import open_model
    from ..training.trainer import train

    names = record_names(records, info)
    which = [fold_of(n, folds, seed) for n in names]
    check_folds(which, folds, len(records))
    preds: list[tuple | None] = [None] * len(records)
    for k in range(folds):
        held = [i for i, f in enumerate(which) if f == k]
        if not held:
            continue
        split = out / f"fold_{k}.json"
        write_split(split, [n for n, f in zip(names, which) if f != k], [names[i] for i in held],
                    f"review: fold {k + 1} of {folds} by name hash (seed {seed})")
        fold_cfg = with_values(cfg, {"name": f"fold_{k}", "output_dir": str(out / "folds"), "resume": "",
                                     "data.split_file": str(split), "data.val_fraction": 0.0, "data.fraction": 1.0,
                                     "data.classes": list(info.class_names), "train.time": minutes,
                                     "train.time_validations": 0, "train.stages": []})
        log.info("review: fold %d/%d trains %.1f min without %d images, then predicts them", k + 1, folds, minutes,
                 len(held))
        run, _ = train(fold_cfg)
        if not Run(run).has_checkpoint():
            raise ConfigError(f"review fold {k + 1}: {minutes} minutes left no time for a training step after the "
                              "set-up; raise --fold-minutes")
        predictor = open_model(run, "cpu").predictor
        for i, p in zip(held, predict_records(predictor, [records[i] for i in held], f"fold {k + 1}")):
            preds[i] = p
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    return [p if p is not None else empty for p in preds]
