"""python tools/eval_det.py [--ckpt best.pt] [--cfg FILE] [key.sub=value ...]
python tools/eval_det.py --pred results.json --gt instances_val.json
python tools/eval_det.py --pred runs/predict/x/predictions.json --cfg configs/bccd_frcnn.yaml

With no arguments: the newest run's best checkpoint on that run's validation split. --ckpt
takes a run folder, a .pt, an .onnx or a .torchscript file. Prints the COCO (pycocotools) and
VOC tables and writes, into a new `<run>/eval/` (`eval-2/`, ... : an evaluation never
overwrites another), or `runs/eval/<name>/` for a results file or a model outside a run,
the results JSON, PR curves, the confusion matrix (PNG + CSV), the worst images and
report.md / report.json. `--save-pred` also writes the COCO results json of the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from .. import results_json
from ..config import load_config
from ..errors import ConfigError
from .common import add_config_args, setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.eval")


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate: COCO metrics (pycocotools), VOC per-class AP, analysis.")
    p.add_argument("--ckpt", help="a run folder, .pt, .onnx or .torchscript file (default: newest run's best.pt)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--out", help="output folder, made new (default: a new <run>/eval, or runs/eval/<name>)")
    p.add_argument("--pred", help="a COCO results json to score instead of running a model (with --gt, or with "
                                  "--cfg: against that config's validation split, matched by file_name)")
    p.add_argument("--gt", help="COCO annotation json that --pred refers to")
    p.add_argument("--save-pred", action="store_true", help="also write the model's COCO results json")
    p.add_argument("--score", type=float, default=0.25, help="score threshold of the confusion matrix and worst images")
    p.add_argument("--voc-metric", choices=["voc07", "voc12"], help="override eval.voc_metric")
    p.add_argument("--backend", choices=["pycocotools", "faster_coco_eval"], help="override eval.backend")
    add_config_args(p, cfg_required=False)
    args = p.parse_args(argv)
    setup_logging()
    from ..evaluation.analysis import write_analysis
    from ..evaluation.evaluator import check_ground_truth, format_results

    t0 = time.perf_counter()
    if args.pred and args.cfg:  # a results file (infer.py --save-json) against a config's validation split
        from ..evaluation.evaluator import evaluate_results_on_split

        res, ev = evaluate_results_on_split(_pred_config(args), args.pred)
        run, source = None, f"{args.pred} against {ev.info.source}"
    elif args.pred or args.gt:
        if not (args.pred and args.gt):
            raise ConfigError("--pred needs --gt (a COCO json) or --cfg (a config's validation split)")
        from ..evaluation.evaluator import evaluate_files

        res, ev = evaluate_files(args.gt, args.pred, args.voc_metric or "voc07",
                                 backend=args.backend or "pycocotools")
        run, source = None, f"{args.pred} against {args.gt}"
    else:
        res, ev, run, source = _evaluate_model(args)
    check_ground_truth(res, source, ev.info.class_names)
    seconds = time.perf_counter() - t0
    log.info("%s\n%s\n(evaluated in %.1fs)", source, format_results(res), seconds)
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
    log.info("report, curves and confusion matrix written to %s/", out_dir)


def _out_dir(args, run) -> Path:
    """A new folder every time: --out (suffixed when taken), <run>/eval[-N], or runs/eval/<name>[-N]."""
    from ..runs import new_run_dir

    if args.out:
        out = Path(args.out).absolute()
        return new_run_dir(out.parent, out.name)
    if run is not None:
        return run.new_eval_dir()
    name = Path(args.pred or args.ckpt or "eval").stem
    return new_run_dir(Path(args.runs) / "eval", name)


def _overrides(args) -> list[str]:
    """The command line's key=value overrides, with --voc-metric and --backend as theirs."""
    return list(args.overrides) + ([f"eval.voc_metric={args.voc_metric}"] if args.voc_metric else []) \
        + ([f"eval.backend={args.backend}"] if args.backend else [])


def _pred_config(args) -> dict:
    return load_config(args.cfg, _overrides(args))


def _evaluate_model(args):
    """(results, evaluator, run or None, source) of the model --ckpt names (or the newest run's)."""
    from ..inference.loading import open_model
    from ..scoring import evaluate_model

    loaded = open_model(args.ckpt, "cpu", runs=args.runs)
    if loaded.config is None and not args.cfg:
        raise ConfigError(f"{loaded.path} is outside a run folder, so which data to score it on is unknown: "
                          "add --cfg (a config whose validation split to use)")
    # the run's own config, then --cfg's, then overrides: the data and eval keys may change
    cfg = load_config(args.cfg, _overrides(args), base=None if args.cfg else loaded.config)
    res, ev = evaluate_model(loaded, cfg)
    log.info("evaluated %s (%s) on %s", loaded.path, loaded.predictor.backend.name, ev.info.source)
    return res, ev, loaded.run, f"{loaded.path} on {ev.info.source}"


if __name__ == "__main__":
    main()
