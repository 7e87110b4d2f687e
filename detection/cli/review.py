"""python tools/review_labels.py --ckpt runs/<name> [--split train,val] [--folds K] [--name NAME]

Ranks the likely annotation mistakes of a labelled data set: missing boxes, wrong classes,
badly drawn boxes and spurious boxes (cleanlab's object-detection scores; see
detection/review/issues.py). Writes runs/review/<name>/: issues.csv (rank, image, kind,
class, suggested class, box, score, split), and the flagged images with the suggested
corrections for a person to check: cvat_coco/ (CVAT: import as COCO 1.0), labelimg_voc/
(LabelImg) and label_studio.json with label_studio_config.xml (Label Studio).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config import load_config
from ..errors import ConfigError
from .common import minutes_arg, positive_int, setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.review")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Find likely annotation mistakes (see README).")
    p.add_argument("--ckpt", help="a run folder or checkpoint (default: the newest run)")
    p.add_argument("--cfg", help="the data to review (default: the run's own config)")
    p.add_argument("--split", default="train,val", help="train, val or both (comma-separated)")
    p.add_argument("--folds", type=positive_int, help="K: train images are predicted by K short models that did "
                                                      "not train on them (out of sample), not by --ckpt")
    p.add_argument("--fold-minutes", type=minutes_arg, default=5.0, help="train.time of each fold model")
    p.add_argument("--confident", type=float, default=0.7, help="score from which the model counts as sure")
    p.add_argument("--top", type=positive_int, default=20, help="issues to list in the log")
    p.add_argument("--name", help="runs/review/<name> (default: the model's run name)")
    p.add_argument("--runs", default="runs")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=/data/voc")
    return p.parse_args(argv)


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    from ..data.dataset import read_split
    from ..inference.loading import open_model
    from ..review.folds import out_of_fold, predict_records
    from ..review.issues import cleanlab_rank, find_issues
    from ..utils.runs import new_run_dir

    cleanlab_rank()  # the extra is checked before any work
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not splits or set(splits) - {"train", "val"}:
        raise ConfigError(f"--split {args.split}: give train, val or train,val")
    if not 0 < args.confident < 1:
        raise ConfigError(f"--confident must be between 0 and 1, got {args.confident}")
    if args.folds is not None and args.folds < 2:
        raise ConfigError(f"--folds {args.folds}: one fold holds every image, so no model could train without them; "
                          "give --folds 2 or more (5 is usual)")
    loaded = open_model(args.ckpt, "cpu", runs=args.runs)
    if loaded.config is None and not args.cfg:
        raise ConfigError(f"{loaded.path} is outside a run folder: add --cfg (the data to review)")
    cfg = load_config(args.cfg, args.overrides, base=None if args.cfg else loaded.config)
    out = new_run_dir(Path(args.runs) / "review", args.name or (loaded.run.name if loaded.run else "review"))
    d, names = cfg["data"], loaded.class_names
    all_issues = []
    for split in splits:
        train = split == "train"
        records, info = read_split(d, d["train_split"] if train else d["val_split"], train, names, cfg["seed"])
        if train and args.folds:
            preds = out_of_fold(cfg, records, info, args.folds, args.fold_minutes, out, cfg["seed"])
        else:
            if train:
                log.warning("review of the training images with the model trained on them (in-sample): it has "
                            "learnt their labels, mistakes included, so it under-finds them; --folds 5 predicts each "
                            "image with a model that did not train on it")
            preds = predict_records(loaded.predictor, records, f"review {split}")
        issues = find_issues(records, preds, len(names), args.confident)
        all_issues.append((split, records, preds, issues))
        log.info("%s: %d images, %d likely mistakes: %s", info.source, len(records), len(issues),
                 ", ".join(f"{k} {sum(x.kind == k for x in issues)}" for k in ("missing", "wrong_class", "bad_box",
                                                                              "spurious")))
    report(out, all_issues, names, args.top)


def report(out: Path, all_issues: list, names: list[str], top: int) -> None:
    """issues.csv (every split, the kinds in turn, each most likely first), each split's corrections,
    the top ones in the log."""
    from ..review.exports import write_corrections, write_issues_csv
    from ..review.issues import interleave
    from ..review.page import review_page

    found = interleave([(x, records, split) for split, records, _, issues in all_issues for x in issues],
                       issue=lambda t: t[0])
    write_issues_csv(out / "issues.csv", found, names)
    for split, records, _, issues in all_issues:
        write_corrections(out / split, records, issues, names)
    page = review_page(all_issues, names, f"Label review: {out.name}", out)
    for rank, (x, records, _split) in enumerate(found[:top], 1):
        log.info("%3d  %-11s %-12s score %.3f  %s  box %s%s", rank, x.kind, names[x.label - 1], x.score,
                 records[x.image].path, [round(v) for v in x.box],
                 f" -> {names[x.suggested_label - 1]}" if x.suggested_label != x.label else "")
    log.info("review written to %s: issues.csv, and per split the flagged images with the suggested corrections "
             "(cvat_coco/, labelimg_voc/, label_studio.json); browse them: %s", out, page)


if __name__ == "__main__":
    main()
