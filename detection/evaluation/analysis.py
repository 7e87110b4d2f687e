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

from .voc_ap import box_iou


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pr_curves_figure(coco_eval, class_names: list[str]):
    """Precision vs recall at IoU 0.5 (all areas, 100 detections), one line per class."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    recall = coco_eval.params.recThrs
    prec = coco_eval.eval["precision"][0, :, :, 0, -1]  # [recall, class]
    for k, name in enumerate(class_names):
        p = prec[:, k]
        if (p > -1).any():
            ax.plot(recall, np.where(p > -1, p, np.nan), label=f"{name} (AP50 {p[p > -1].mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curves at IoU 0.5")
    if len(class_names) <= 20:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def match_image(record, boxes, scores, labels, iou_thresh: float, score_thresh: float) -> list[tuple[int, int]]:
    """(true label, predicted label) pairs of one image; 0 stands for background on either side.

    Pairs with IoU >= threshold are matched greedily, highest IoU first, whatever their
    classes. An unmatched ground truth is a miss (predicted 0), an unmatched prediction a
    false positive (true 0). Crowd and difficult boxes absorb predictions and count nowhere.
    """
    keep = scores >= score_thresh
    boxes, labels = boxes[keep], labels[keep]
    gt_boxes, gt_labels = record.boxes, record.labels
    ignore = record.iscrowd | record.difficult
    if len(boxes) and len(gt_boxes):
        ious = np.stack([box_iou(b.astype(np.float64), gt_boxes.astype(np.float64)) for b in boxes])
    else:
        ious = np.zeros((len(boxes), len(gt_boxes)))
    pairs, used_p, used_g = [], set(), set()
    for p, g in sorted(zip(*np.nonzero(ious >= iou_thresh)), key=lambda pg: -ious[pg]):
        if p in used_p or g in used_g:
            continue
        used_p.add(p)
        used_g.add(g)
        if not ignore[g]:
            pairs.append((int(gt_labels[g]), int(labels[p])))
    pairs += [(int(gt_labels[g]), 0) for g in range(len(gt_boxes)) if g not in used_g and not ignore[g]]
    pairs += [(0, int(labels[p])) for p in range(len(boxes)) if p not in used_p]
    return pairs


def confusion_matrix(records, predictions, num_classes: int, iou_thresh: float = 0.5,
                     score_thresh: float = 0.25) -> np.ndarray:
    """(K+1) x (K+1) counts: rows are ground truth, columns predictions; index K is background."""
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for idx, (boxes, scores, labels) in predictions.items():
        for t, p in match_image(records[idx], boxes, scores, labels, iou_thresh, score_thresh):
            cm[t - 1 if t else num_classes, p - 1 if p else num_classes] += 1
    return cm


def confusion_figure(cm: np.ndarray, class_names: list[str]):
    plt = _plt()
    names = list(class_names) + ["background"]
    n = len(names)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(3.5, 0.5 * n + 1.5)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="ground truth", title="confusion matrix")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.tight_layout()
    return fig


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

    from ..data.images import read_image
    from ..visualize import draw_detections

    out_dir.mkdir(parents=True, exist_ok=True)
    names = ev.info.class_names
    files = {}
    plt = _plt()
    if ev.coco_eval is not None:
        fig = pr_curves_figure(ev.coco_eval, names)
        fig.savefig(out_dir / "pr_curves.png", dpi=100)
        if writer is not None:
            writer.add_figure("eval/pr_curves", fig)
        plt.close(fig)
        files["pr_curves"] = "pr_curves.png"
    cm = confusion_matrix(ev.records, ev.predictions, len(names), iou_thresh, score_thresh)
    with open(out_dir / "confusion_matrix.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ground truth \\ predicted"] + names + ["background"])
        for name, row in zip(names + ["background"], cm.tolist()):
            w.writerow([name] + row)
    fig = confusion_figure(cm, names)
    fig.savefig(out_dir / "confusion_matrix.png", dpi=100)
    if writer is not None:
        writer.add_figure("eval/confusion_matrix", fig)
    plt.close(fig)
    files.update(confusion_matrix="confusion_matrix.png", confusion_csv="confusion_matrix.csv")

    errors = sorted(image_errors(ev.records, ev.predictions, iou_thresh, score_thresh), key=lambda e: -(e[1] + e[2]))
    worst_dir = out_dir / "worst"
    worst_dir.mkdir(exist_ok=True)
    worst_list = []
    for idx, fp, fn in errors[:worst]:
        if fp + fn == 0:
            break
        r = ev.records[idx]
        try:
            img = read_image(r.path)
        except OSError:
            continue  # evaluation from files may have no images
        gt = [{"box": b.tolist(), "label": 0, "class": "GT " + names[lab - 1], "score": 1.0}
              for b, lab in zip(r.boxes, r.labels)]
        boxes, scores, labels = ev.predictions[idx]
        keep = scores >= score_thresh
        dets = [{"box": b.tolist(), "label": int(lab), "class": names[lab - 1], "score": float(s)}
                for b, s, lab in zip(boxes[keep], scores[keep], labels[keep])]
        drawn = draw_detections(draw_detections(img, gt), dets)
        name = f"{Path(r.path).stem}_fp{fp}_miss{fn}.jpg"
        cv2.imwrite(str(worst_dir / name), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        worst_list.append({"image": r.path, "false_positives": fp, "misses": fn, "file": f"worst/{name}"})

    report = {"coco": results["coco"], "voc_metric": results["voc_metric"], "voc_mAP": results["voc_mAP"],
              "per_class": [{**c, "VOC_AP": v["AP"], "gt": v["gt"], "dets": v["dets"]}
                            for c, v in zip(results["coco_per_class"], results["voc"])],
              "confusion_matrix": {"iou": iou_thresh, "score": score_thresh, "labels": names + ["background"],
                                   "counts": cm.tolist()},
              "worst_images": worst_list, "files": files}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (out_dir / "report.md").write_text(markdown_report(report))
    return report


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
    cm = report["confusion_matrix"]
    lines += ["", f"Confusion matrix at IoU {cm['iou']}, score >= {cm['score']}: `confusion_matrix.png`, "
              "`confusion_matrix.csv` (rows: ground truth, columns: predicted).", "",
              "Worst images (wrong detections + misses):"]
    lines += [f"- `{w['file']}`: {w['false_positives']} FP, {w['misses']} missed" for w in report["worst_images"]]
    return "\n".join(lines) + "\n"
