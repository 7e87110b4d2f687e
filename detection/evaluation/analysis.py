"""Where a model fails: PR curves, a confusion matrix with background, the worst images, a report.

Everything is computed from what the evaluator already holds (records in original
pixels, predictions mapped back), and written as files a person opens: PNG, CSV,
Markdown and JSON.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..utils.plotting import pyplot
from .calibration import reliability_figure
from .operating_point import curves_figure
from .tide import breakdown_figure
from .voc_ap import box_iou


def pr_curves_figure(coco_eval, class_names: list[str], legend_max: int = 20):
    """Precision vs recall at IoU 0.5 (all areas, 100 detections): one thin line per class and
    the mean over classes in bold. The legend names the mean and up to `legend_max` classes
    (the best and worst by AP50 when there are more)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    recall = coco_eval.params.recThrs
    prec = coco_eval.eval["precision"][0, :, :, 0, -1]  # [recall, class]
    valid = [k for k in range(len(class_names)) if (prec[:, k] > -1).any()]
    ap50 = {k: float(prec[:, k][prec[:, k] > -1].mean()) for k in valid}
    ranked = sorted(valid, key=lambda k: -ap50[k])
    named = set(ranked if len(ranked) <= legend_max else ranked[:legend_max // 2] + ranked[-(legend_max // 2):])
    for k in valid:
        p = np.where(prec[:, k] > -1, prec[:, k], np.nan)
        label = f"{class_names[k]} ({ap50[k]:.3f})" if k in named else None
        ax.plot(recall, p, linewidth=1, alpha=0.8 if k in named else 0.3, label=label)
    if valid:
        mean = np.nanmean(np.where(prec[:, valid] > -1, prec[:, valid], np.nan), axis=1)
        ax.plot(recall, mean, color="black", linewidth=3, label=f"mean (AP50 {np.mean(list(ap50.values())):.3f})")
        handles, labels = ax.get_legend_handles_labels()
        order = [labels.index(lab) for lab in labels if lab.startswith("mean")] + \
                [i for i, lab in enumerate(labels) if not lab.startswith("mean")]
        ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), title="AP50" + (f" (best/worst {legend_max})"
                                                               if len(valid) > legend_max else ""))
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curves at IoU 0.5")
    fig.tight_layout()
    return fig


def match_boxes(record, boxes, labels, iou_thresh: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """(matched (prediction, gt) pairs, unmatched predictions, unmatched non-ignored gts) of one image.

    Pairs with IoU >= threshold are matched greedily, highest IoU first, whatever their
    classes. Crowd and difficult boxes absorb predictions and count nowhere.
    """
    ious = box_iou(boxes, record.boxes)
    ignore = record.iscrowd | record.difficult
    pairs, used_p, used_g = [], set(), set()
    for p, g in sorted(zip(*np.nonzero(ious >= iou_thresh)), key=lambda pg: -ious[pg]):
        if p in used_p or g in used_g:
            continue
        used_p.add(p)
        used_g.add(g)
        if not ignore[g]:
            pairs.append((int(p), int(g)))
    missed = [g for g in range(len(record.boxes)) if g not in used_g and not ignore[g]]
    return pairs, [p for p in range(len(boxes)) if p not in used_p], missed


def match_image(record, boxes, scores, labels, iou_thresh: float, score_thresh: float) -> list[tuple[int, int]]:
    """(true label, predicted label) pairs of one image; 0 stands for background on either side."""
    keep = scores >= score_thresh
    boxes, labels = boxes[keep], labels[keep]
    pairs, extra, missed = match_boxes(record, boxes, labels, iou_thresh)
    out = [(int(record.labels[g]), int(labels[p])) for p, g in pairs]
    out += [(int(record.labels[g]), 0) for g in missed]
    return out + [(0, int(labels[p])) for p in extra]


def draw_errors(image, record, prediction, names: list[str], iou_thresh: float, score_thresh: float):
    """The worst-image view, readable when crowded: correct detections as thin green boxes
    without labels; only errors are labelled: false positives (red, class and score), wrong
    classes (orange, `true->predicted`) and misses (blue, `missed class`)."""
    from ..utils.visualize import draw_box, line_width_for

    boxes, scores, labels = prediction
    keep = scores >= score_thresh
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    pairs, extra, missed = match_boxes(record, boxes, labels, iou_thresh)
    out, thick = image.copy(), line_width_for(image)
    for p, g in pairs:
        if labels[p] == record.labels[g]:
            draw_box(out, boxes[p], (40, 200, 40), 1)
    for p, g in pairs:
        if labels[p] != record.labels[g]:
            draw_box(out, boxes[p], (255, 150, 0), thick,
                     f"{names[record.labels[g] - 1]}->{names[labels[p] - 1]} {scores[p]:.2f}")
    for g in missed:
        draw_box(out, record.boxes[g], (40, 120, 255), thick, f"missed {names[record.labels[g] - 1]}")
    for p in extra:
        draw_box(out, boxes[p], (230, 30, 30), thick, f"{names[labels[p] - 1]} {scores[p]:.2f}")
    return out


def confusion_matrix(records, predictions, num_classes: int, iou_thresh: float = 0.5,
                     score_thresh: float = 0.25) -> np.ndarray:
    """(K+1) x (K+1) counts: rows are ground truth, columns predictions; index K is background."""
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for idx, (boxes, scores, labels) in predictions.items():
        for t, p in match_image(records[idx], boxes, scores, labels, iou_thresh, score_thresh):
            cm[t - 1 if t else num_classes, p - 1 if p else num_classes] += 1
    return cm


def confusion_figure(cm: np.ndarray, class_names: list[str], max_classes: int = 30):
    """The matrix normalised per row (what share of each true class went where), so rare and
    frequent classes read alike. Past `max_classes` only the most-confused classes are shown
    (the rest summed into 'other'); cell numbers only while they stay readable."""
    plt = pyplot()
    names = list(class_names) + ["background"]
    cm, names = _most_confused(cm, names, max_classes)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    n = len(names)
    size = min(16, max(4.5, 0.32 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fs = 8 if n <= 15 else 6
    ax.set_xticks(range(n), names, rotation=90, fontsize=fs)
    ax.set_yticks(range(n), names, fontsize=fs)
    ax.set(xlabel="predicted", ylabel="ground truth", title="confusion matrix (rows sum to 1)")
    if n <= 20:
        for i, j in zip(*np.nonzero(cm)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=fs - 1,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


def _most_confused(cm: np.ndarray, names: list[str], max_classes: int) -> tuple[np.ndarray, list[str]]:
    """Keep the classes with the most off-diagonal counts (and background); sum the rest into 'other'."""
    k = len(names) - 1
    if k <= max_classes:
        return cm, names
    off = cm.sum(axis=0) + cm.sum(axis=1) - 2 * np.diag(cm)
    keep = sorted(np.argsort(-off[:k], kind="stable")[:max_classes].tolist())
    rest = [i for i in range(k) if i not in keep]
    groups = [[i] for i in keep] + [rest, [k]]
    out = np.array([[cm[np.ix_(gi, gj)].sum() for gj in groups] for gi in groups])
    return out, [names[i] for i in keep] + ["other", "background"]


def image_errors(records, predictions, iou_thresh: float, score_thresh: float) -> list[tuple[int, int, int]]:
    """(image index, wrong detections, misses) per image: a wrong-class match counts as wrong."""
    out = []
    for idx, (boxes, scores, labels) in predictions.items():
        pairs = match_image(records[idx], boxes, scores, labels, iou_thresh, score_thresh)
        out.append((idx, sum(1 for t, p in pairs if p and t != p), sum(1 for t, p in pairs if t and not p)))
    return out


def write_analysis(ev, results: dict, out_dir: Path, iou_thresh: float = 0.5, score_thresh: float = 0.25,
                   worst: int = 8, writer=None) -> dict:
    """PR curves, confusion matrix (PNG + CSV), worst images, report.md and report.json in `out_dir`."""
    import cv2

    from ..data.images import read_record_image

    out_dir.mkdir(parents=True, exist_ok=True)
    names = ev.info.class_names
    files = {}
    if ev.coco_eval is not None:
        files["pr_curves"] = _save_figure(pr_curves_figure(ev.coco_eval, names), out_dir, "pr_curves", writer)
    cm = confusion_matrix(ev.records, ev.predictions, len(names), iou_thresh, score_thresh)
    with open(out_dir / "confusion_matrix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ground truth \\ predicted"] + names + ["background"])
        for name, row in zip(names + ["background"], cm.tolist()):
            w.writerow([name] + row)
    files.update(confusion_matrix=_save_figure(confusion_figure(cm, names), out_dir, "confusion_matrix", writer),
                 confusion_csv="confusion_matrix.csv")

    errors = sorted(image_errors(ev.records, ev.predictions, iou_thresh, score_thresh), key=lambda e: -(e[1] + e[2]))
    worst_dir = out_dir / "worst"
    worst_dir.mkdir(exist_ok=True)
    worst_list = []
    for idx, fp, fn in errors[:worst]:
        if fp + fn == 0:
            break
        r = ev.records[idx]
        try:
            img = read_record_image(r)
        except OSError:
            continue  # evaluation from files may have no images
        drawn = draw_errors(img, r, ev.predictions[idx], names, iou_thresh, score_thresh)
        name = f"{Path(r.path).stem}_fp{fp}_miss{fn}.jpg"
        cv2.imwrite(str(worst_dir / name), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        worst_list.append({"image": r.path, "false_positives": fp, "misses": fn, "file": f"worst/{name}"})

    m = ev.matches()
    if m is not None and "operating_point" in results:
        files["threshold_curves"] = _save_figure(curves_figure(m, results["operating_point"]), out_dir,
                                                 "threshold_curves", writer)
    if "errors" in results:
        files["errors"] = _save_figure(breakdown_figure(results["errors"]), out_dir, "errors", writer)
    if "calibration" in results:
        files["reliability"] = _save_figure(reliability_figure(results["calibration"]), out_dir, "reliability", writer)
    report = {"coco": results["coco"], "voc_metric": results["voc_metric"], "voc_mAP": results["voc_mAP"],
              **{k: results[k] for k in ("intervals", "errors", "calibration", "operating_point",
                                         "stored_operating_point")
                 if k in results},
              "per_class": [{**c, "VOC_AP": v["AP"], "gt": v["gt"], "dets": v["dets"]}
                            for c, v in zip(results["coco_per_class"], results["voc"])],
              "confusion_matrix": {"iou": iou_thresh, "score": score_thresh, "labels": names + ["background"],
                                   "counts": cm.tolist()},
              "worst_images": worst_list, "files": files}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out_dir / "report.md").write_text(markdown_report(report))
    return report


def _save_figure(fig, out_dir: Path, name: str, writer=None) -> str:
    """`<name>.png` in the eval folder (and TensorBoard's eval/<name>); returns the file name."""
    fig.savefig(out_dir / f"{name}.png", dpi=100)
    if writer is not None:
        writer.add_figure(f"eval/{name}", fig)
    pyplot().close(fig)
    return f"{name}.png"


def _decision_lines(report: dict) -> list[str]:
    """report.md's intervals and operating points."""
    from .decide import format_decisions

    text = format_decisions(report)
    return ["", "```", text, "```"] if text else []


def markdown_report(report: dict) -> str:
    c = report["coco"]
    lines = ["# Evaluation report", "",
             "COCO bbox (pycocotools): " + ", ".join(f"{k} {c[k]:.3f}" for k in ("AP", "AP50", "AP75", "APs", "APm",
                                                                                   "APl", "AR100")),
             f"VOC ({report['voc_metric']}) mAP@0.5: {report['voc_mAP']:.3f}", "",
             "| class | COCO AP | AP50 | VOC AP | gt | dets |", "|---|---|---|---|---|---|"]
    for r in report["per_class"]:
        lines.append(f"| {r['class']} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['VOC_AP']:.3f} "
                     f"| {r['gt']} | {r['dets']} |")
    lines += _decision_lines(report)
    if "errors" in report["files"]:
        lines += ["", "The AP50 each kind of error costs (in order they add up to 1 - AP50): `errors.png`; per "
                      "class in report.json (`errors.per_class`)."]
    if "threshold_curves" in report["files"]:
        lines += ["", "Precision, recall and F1 against the score threshold, per class: `threshold_curves.png` "
                      "(dashed: the chosen threshold)."]
    cm = report["confusion_matrix"]
    lines += ["", f"Confusion matrix at IoU {cm['iou']}, score >= {cm['score']}: `confusion_matrix.png`, "
              "`confusion_matrix.csv` (rows: ground truth, columns: predicted).", "",
              "Worst images (wrong detections + misses):"]
    lines += [f"- `{w['file']}`: {w['false_positives']} FP, {w['misses']} missed" for w in report["worst_images"]]
    return "\n".join(lines) + "\n"
