"""python tools/eval_det.py [--ckpt best.pt] [--cfg FILE] [key.sub=value ...]
python tools/eval_det.py --pred results.json --gt instances_val.json
python tools/eval_det.py --pred runs/predict/x/predictions.json --cfg configs/bccd_frcnn.yaml

With no arguments: the newest run's best checkpoint on that run's validation split. Prints
the COCO (pycocotools) and VOC tables and writes, into `<run>/eval/` (or --out), the
results JSON, PR curves, the confusion matrix (PNG + CSV), the worst images and
report.md / report.json. `--save-pred` also writes the COCO results json of the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from ..checkpoint import load_checkpoint, model_from_checkpoint, newest_run, run_checkpoint
from ..config import load_config
from ..errors import ConfigError
from .common import add_config_args, setup_logging, user_errors_as_one_line

log = logging.getLogger("detection.eval")


@user_errors_as_one_line
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Evaluate: COCO metrics (pycocotools), VOC per-class AP, analysis.")
    p.add_argument("--ckpt", help="checkpoint (default: newest run's best.pt)")
    p.add_argument("--runs", default="runs", help="where to look for the newest run")
    p.add_argument("--out", help="output folder (default: <run>/eval, or ./eval for --pred)")
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
    from ..evaluation.evaluator import format_results

    t0 = time.perf_counter()
    if args.pred and args.cfg:  # a results file (infer.py --save-json) against a config's validation split
        from ..evaluation.evaluator import evaluate_results_on_split

        res, ev = evaluate_results_on_split(_pred_config(args), args.pred)
        out_dir, writer = Path(args.out or "eval"), None
        source = f"{args.pred} against {ev.info.source}"
    elif args.pred or args.gt:
        if not (args.pred and args.gt):
            raise ConfigError("--pred needs --gt (a COCO json) or --cfg (a config's validation split)")
        from ..evaluation.evaluator import evaluate_files

        res, ev = evaluate_files(args.gt, args.pred, args.voc_metric or "voc07",
                                 backend=args.backend or "pycocotools")
        out_dir, writer = Path(args.out or "eval"), None
        source = f"{args.pred} against {args.gt}"
    else:
        res, ev, out_dir, writer, source = _evaluate_model(args)
    seconds = time.perf_counter() - t0
    log.info("%s\n%s\n(evaluated in %.1fs)", source, format_results(res), seconds)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps({"source": source, "seconds": seconds, **res},
                                                     indent=1, default=float))
    if args.save_pred:
        (out_dir / "predictions.json").write_text(json.dumps(ev.coco_results(source_ids=True)))
    write_analysis(ev, res, out_dir, iou_thresh=ev.iou_thresh, score_thresh=args.score, writer=writer)
    if writer is not None:
        writer.close()
    log.info("report, curves and confusion matrix written to %s/", out_dir)


def _pred_config(args) -> dict:
    extra = ([f"eval.voc_metric={args.voc_metric}"] if args.voc_metric else []) + \
        ([f"eval.backend={args.backend}"] if args.backend else [])
    return load_config(args.cfg, list(args.overrides) + extra)


def _evaluate_model(args):
    from torch.utils.tensorboard import SummaryWriter

    from ..distributed import device_for
    from ..engine import evaluate
    from ..evaluation.evaluator import build_validation

    ckpt_path = Path(args.ckpt) if args.ckpt else run_checkpoint(newest_run(args.runs))
    ckpt = load_checkpoint(ckpt_path)
    overrides = list(args.overrides) + ([f"eval.voc_metric={args.voc_metric}"] if args.voc_metric else []) \
        + ([f"eval.backend={args.backend}"] if args.backend else [])
    # the run's own config, then --cfg's, then overrides: the data and eval keys may change
    cfg = load_config(args.cfg, overrides, base=None if args.cfg else ckpt["config"])
    run = ckpt_path.parent.parent
    split_file = cfg["data"]["split_file"]
    if split_file and not Path(split_file).is_file() and (run / "split.json").is_file():
        cfg["data"]["split_file"] = str(run / "split.json")  # the run folder was moved or copied
    device = device_for(cfg["device"], 0)
    model = model_from_checkpoint(ckpt, ckpt_path).to(device)
    loader, ev = build_validation(cfg, ckpt["class_names"], device)
    log.info("evaluating %s on %s", ckpt_path, ev.info.source)
    res = evaluate(model, loader, ev, device)
    out_dir = Path(args.out) if args.out else run / "eval"
    return res, ev, out_dir, SummaryWriter(str(run)), f"{ckpt_path} on {ev.info.source}"


if __name__ == "__main__":
    main()
