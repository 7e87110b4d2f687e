"""python tools/eval_det.py [--ckpt best.pt] [--cfg FILE] [key.sub=value ...]
python tools/eval_det.py --pred results.json --gt instances_val.json
python tools/eval_det.py --pred runs/predict/x/predictions.json --cfg configs/bccd_frcnn.yaml
python tools/eval_det.py --compare RUN_A RUN_B

With no arguments: the newest run's best checkpoint on that run's validation split. --ckpt
takes a run folder, a .pt, an .onnx or a .torchscript file. Prints the COCO (pycocotools) and
VOC tables, the 95% intervals of AP (a bootstrap over the split's images, `eval.bootstrap`)
and the per-class score thresholds to ship (`eval.threshold`), with precision, recall and F1
there (and at the model's stored thresholds, when it has them). Writes, into a new
`<run>/eval/` (`eval-2/`, ... : an evaluation never overwrites another), or `runs/eval/<name>/`
for a results file or a model outside a run, the results JSON, PR curves, P/R/F1-vs-score
curves, the confusion matrix (PNG + CSV), the worst images and report.md / report.json.
`--save-pred` also writes the COCO results json of the model. `--compare A B` scores two
models (or results files) on the same images and says whether B is better than A.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

from ..config import load_config
from ..errors import ConfigError
from ..utils import results_json
from .common import add_config_args, setup_logging, slice_arg, user_errors_as_one_line

log = logging.getLogger("detection.eval")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Evaluate: COCO metrics (pycocotools), VOC per-class AP, intervals, "
                                            "thresholds, analysis.")
    p.add_argument("--ckpt", help="a run folder, .pt, .onnx or .torchscript file (default: newest run's best.pt)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--out", help="output folder, made new (default: a new <run>/eval, or runs/eval/<name>)")
    p.add_argument("--pred", help="a COCO results json to score instead of running a model (with --gt, or with "
                                  "--cfg: against that config's validation split, matched by file_name)")
    p.add_argument("--gt", help="COCO annotation json that --pred refers to")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="two runs, checkpoints, exported files or results files, scored on the same images (A's "
                        "validation split, or --cfg's): is B better than A?")
    p.add_argument("--save-pred", action="store_true", help="also write the model's COCO results json")
    p.add_argument("--store-thresholds", action="store_true",
                   help="write the thresholds chosen on this split into the checkpoint (a .pt or a run's best.pt), "
                        "in place of those it stores; infer uses them from then on")
    p.add_argument("--score", type=float, default=0.25, help="score threshold of the confusion matrix and worst images")
    p.add_argument("--voc-metric", choices=["voc07", "voc12"], help="override eval.voc_metric")
    p.add_argument("--backend", choices=["pycocotools", "faster_coco_eval"], help="override eval.backend")
    p.add_argument("--slice", type=slice_arg, metavar="N",
                   help="score sliced inference: tiles of N pixels (a model trained on tiles is scored sliced into "
                        "them without it; 0: whole images)")
    p.add_argument("--overlap", type=float, help="slicing: overlap of neighbouring tiles (0-1, default 0.2)")
    add_config_args(p, cfg_required=False)
    return p.parse_args(argv)


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    if args.compare:
        return compare_main(args)
    from ..evaluation.analysis import write_analysis
    from ..evaluation.browser import write_browser
    from ..evaluation.decide import decide, format_decisions
    from ..evaluation.evaluator import check_ground_truth, format_results

    t0 = time.perf_counter()
    res, ev, run, source, ecfg, stored = _evaluate(args, args.ckpt, args.pred)
    check_ground_truth(res, source, ev.info.class_names)
    decide(res, ev, ecfg["threshold"], ecfg["bootstrap"], stored, calibrate=ecfg["calibrate"])
    if args.store_thresholds:
        store_thresholds(args, res, ev)
    seconds = time.perf_counter() - t0
    log.info("%s\n%s\n%s\n(evaluated in %.1fs)", source, format_results(res), format_decisions(res), seconds)
    out_dir = _out_dir(args, run)
    (out_dir / "results.json").write_text(json.dumps({"source": source, "seconds": seconds, **res},
                                                     indent=1, default=float))
    if args.save_pred:
        results_json.write(out_dir / "predictions.json", ev.coco_results(source_ids=True))
    writer = None
    if run is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run.dir))
    write_analysis(ev, res, out_dir, iou_thresh=ev.iou_thresh, score_thresh=args.score, writer=writer)
    if writer is not None:
        writer.close()
    page = write_browser(ev, res, out_dir, source)
    log.info("report, curves and confusion matrix written to %s/; browse every image: %s", out_dir, page)


def _evaluate(args, model: str | None, pred: str | None):
    """(results, evaluator, run or None, source, eval settings, stored thresholds or None) of one
    model, or one results file (--pred with --gt or --cfg)."""
    if pred and args.cfg:  # a results file (infer.py --save-json) against a config's validation split
        from ..evaluation.evaluator import evaluate_results_on_split

        cfg, entries = load_config(args.cfg, _overrides(args)), results_json.read(pred)
        res, ev = evaluate_results_on_split(cfg, pred, entries)
        return res, ev, None, f"{pred} against {ev.info.source}", cfg["eval"], kept_thresholds(entries, ev.info, pred)
    if pred or args.gt:
        if not (pred and args.gt):
            raise ConfigError("--pred needs --gt (a COCO json) or --cfg (a config's validation split)")
        from ..evaluation.evaluator import evaluate_files

        entries = results_json.read(pred)
        res, ev = evaluate_files(args.gt, pred, args.voc_metric or "voc07", backend=args.backend or "pycocotools",
                                 preds=entries)
        defaults = load_config(None, ["data.format=voc", "data.root=."] + _overrides(args))["eval"]  # eval.* only
        return res, ev, None, f"{pred} against {args.gt}", defaults, kept_thresholds(entries, ev.info, pred)
    res, ev, loaded, cfg = _evaluate_model(args, model)
    return (res, ev, loaded.run, f"{loaded.path} on {ev.info.source}", cfg["eval"],
            loaded.predictor.thresholds)


def store_thresholds(args, res: dict, ev) -> None:
    """--store-thresholds: the checkpoint evaluated gets this split's thresholds (only when asked)."""
    from ..checkpoint import load_checkpoint, save_checkpoint
    from ..evaluation.operating_point import stored
    from ..utils.runs import model_file

    file, kind, _ = model_file(args.ckpt, args.runs)
    if kind != "checkpoint" or args.pred:
        raise ConfigError(f"--store-thresholds writes into a .pt checkpoint; {file} is a {kind} file: store them "
                          "in its checkpoint, then export again")
    if "operating_point" not in res:
        raise ConfigError("--store-thresholds: no thresholds could be chosen (eval.backend=pycocotools keeps the "
                          "matches they are chosen from)")
    ckpt = load_checkpoint(file)
    ckpt["thresholds"] = stored(res["operating_point"], ev.info.source, res["calibration"].get("temperature"),
                                res["coco"])
    save_checkpoint(file, **ckpt)
    log.info("stored the thresholds chosen on %s in %s", ev.info.source, file)


def kept_thresholds(entries: list[dict], info, pred: str) -> dict | None:
    """The per-class thresholds a results file was cut at: infer.py --save-json marks each
    detection `kept`; a class keeps those scoring at least its lowest kept score."""
    if not entries or "kept" not in entries[0]:
        return None
    names = {cat: name for cat, name in zip(info.cat_ids, info.class_names)}
    per_class = {name: None for name in info.class_names}
    for e in entries:
        name = e.get("category_name") or names.get(e["category_id"])
        if name in per_class:
            if e["kept"]:
                per_class[name] = min(e["score"], per_class[name] if per_class[name] is not None else 1.0)
            elif per_class[name] is None:
                per_class[name] = 1.01  # none kept (so far): above any score
    return {"rule": "kept", "split": pred, "per_class": per_class}


def compare_main(args) -> None:
    """Two models (or results files) on the same images: the paired bootstrap of B minus A."""
    from ..evaluation.uncertainty import compare, verdict_line

    a_path, b_path = args.compare
    a = _evaluate(args, *_model_or_pred(a_path))
    if args.cfg is None and a[2] is not None:  # B on A's split: A's run config (--cfg overrides both)
        args.cfg = str(a[2].config)
    b = _evaluate(args, *_model_or_pred(b_path))
    (res_a, ev_a, *_), (res_b, ev_b, *_) = a, b
    if [r.path for r in ev_a.records] != [r.path for r in ev_b.records]:
        raise ConfigError(f"--compare: {a_path} and {b_path} were scored on different images ({ev_a.info.source} "
                          f"and {ev_b.info.source}); give --cfg for the split to compare them on")
    if sorted(ev_a.info.class_names) != sorted(ev_b.info.class_names):
        raise ConfigError(f"--compare: {a_path} and {b_path} have different classes ({ev_a.info.class_names} and "
                          f"{ev_b.info.class_names}); only models of the same classes compare")
    ma, mb = ev_a.matches(), ev_b.matches()
    if ma is None or mb is None:
        raise ConfigError("--compare needs eval.backend=pycocotools (its per-image matches)")
    resamples = a[4]["bootstrap"] or 1000
    diff = compare(ma, mb, resamples)
    lines = [f"A = {a_path}", f"B = {b_path}", f"on {ev_a.info.source} ({diff['images']} images, "
                                                 f"{diff['resamples']} paired bootstrap redraws)"]
    small = compare(ev_a.matches("small"), ev_b.matches("small"), resamples)  # same images, same redraws
    diff["APs"] = small["AP"] if not math.isnan(small["AP"]["a"]) else None  # None: no small ground truth
    lines += [verdict_line(k, diff[k]) for k in ("AP", "AP50", "AP75", "APs") if diff[k] is not None]
    lines += ["per class:"] + [f"  {c['class']:<18} " + verdict_line("AP", c) for c in diff["per_class"]]
    text = "\n".join(lines)
    log.info("%s", text)
    out = _out_dir(args, None, name=f"compare-{Path(a_path).stem}-vs-{Path(b_path).stem}")
    (out / "compare.json").write_text(json.dumps({"a": a_path, "b": b_path, "split": ev_a.info.source,
                                                  "AP_a": res_a["coco"]["AP"], "AP_b": res_b["coco"]["AP"], **diff},
                                                 indent=1, default=float))
    (out / "compare.md").write_text("# Comparison\n\n" + "\n".join(f"- {line}" for line in lines) + "\n")
    log.info("written to %s/", out)


def _model_or_pred(path: str) -> tuple[str | None, str | None]:
    """(model, None) or (None, results file): a .json is a results file, anything else a model."""
    return (None, path) if str(path).endswith(".json") else (path, None)


def _out_dir(args, run, name: str | None = None) -> Path:
    """A new folder every time: --out (suffixed when taken), <run>/eval[-N], or runs/eval/<name>[-N]."""
    from ..utils.runs import new_run_dir

    if args.out:
        out = Path(args.out).absolute()
        return new_run_dir(out.parent, out.name)
    if run is not None:
        return run.new_eval_dir()
    return new_run_dir(Path(args.runs) / "eval", name or Path(args.pred or args.ckpt or "eval").stem)


def _overrides(args) -> list[str]:
    """The command line's key=value overrides, with --voc-metric and --backend as theirs."""
    return list(args.overrides) + ([f"eval.voc_metric={args.voc_metric}"] if args.voc_metric else []) \
        + ([f"eval.backend={args.backend}"] if args.backend else [])


def _evaluate_model(args, path: str | None):
    """(results, evaluator, loaded model, config) of the model `path` names (or the newest run's)."""
    from ..deploy.scoring import evaluate_model
    from ..inference.loading import open_model

    loaded = open_model(path, "cpu", runs=args.runs)
    if loaded.config is None and not args.cfg:
        raise ConfigError(f"{loaded.path} is outside a run folder, so which data to score it on is unknown: "
                          "add --cfg (a config whose validation split to use)")
    loaded.predictor.set_slicing(args.slice, args.overlap)
    log.info("input: %s", loaded.predictor.describe_input())
    # the run's own config, then --cfg's, then overrides: the data and eval keys may change
    cfg = load_config(args.cfg, _overrides(args), base=None if args.cfg else loaded.config)
    res, ev = evaluate_model(loaded, cfg)
    log.info("evaluated %s (%s) on %s", loaded.path, loaded.predictor.backend.name, ev.info.source)
    return res, ev, loaded, cfg


if __name__ == "__main__":
    main()
