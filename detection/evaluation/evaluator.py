"""The evaluator used by validation and `tools/eval_det.py`: reset / process / evaluate.

Ground truth comes from the raw records (original pixels, original category ids), built
once; predictions are mapped back from the network's input size to the original image
before they are stored. COCO numbers are pycocotools' own; VOC numbers follow the devkit.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from ..data.records import DatasetInfo, ImageRecord
from .voc_ap import voc_class_ap

COCO_METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def coco_ground_truth(records: list[ImageRecord], info: DatasetInfo) -> dict:
    """A COCO-format dict of the records. Ids start at 1: pycocotools treats 0 as 'no match'."""
    images, anns = [], []
    for idx, r in enumerate(records):
        images.append({"id": idx + 1, "width": r.width, "height": r.height, "file_name": r.path})
        for box, label, crowd, difficult in zip(r.boxes, r.labels, r.iscrowd, r.difficult):
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append({
                "id": len(anns) + 1, "image_id": idx + 1, "category_id": info.cat_ids[label - 1],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                # VOC difficult boxes are ignored like crowd regions: no credit, no penalty
                "iscrowd": int(crowd or difficult),
            })
    cats = [{"id": c, "name": n} for c, n in zip(info.cat_ids, info.class_names)]
    return {"images": images, "annotations": anns, "categories": cats}


class DetectionEvaluator:
    def __init__(self, records: list[ImageRecord], info: DatasetInfo, voc_metric: str = "voc07",
                 iou_thresh: float = 0.5):
        self.records, self.info = records, info
        self.voc_metric, self.iou_thresh = voc_metric, iou_thresh
        self._coco_gt = None
        self.reset()

    def reset(self) -> None:
        self.predictions: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def process(self, targets, outputs) -> None:
        """Store one batch: `targets` from DetectionDataset, `outputs` from the detector."""
        for t, o in zip(targets, outputs):
            sy, sx = t["scale"]
            boxes = o["boxes"].detach().float().cpu().numpy() / np.array([sx, sy, sx, sy], np.float32)
            h, w = t["orig_size"]
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
            self.predictions[int(t["image_id"])] = (
                boxes, o["scores"].detach().float().cpu().numpy(), o["labels"].cpu().numpy())

    def coco_results(self) -> list[dict]:
        """Predictions in the COCO results format, with the source's category ids."""
        out = []
        for idx, (boxes, scores, labels) in self.predictions.items():
            for b, s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
                out.append({"image_id": idx + 1, "category_id": self.info.cat_ids[lab - 1],
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": s})
        return out

    def _coco(self) -> tuple[dict, list[dict]]:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if self._coco_gt is None:
            self._coco_gt = COCO()
            self._coco_gt.dataset = coco_ground_truth(self.records, self.info)
            with _quiet():
                self._coco_gt.createIndex()
        results = self.coco_results()
        names = self.info.class_names
        if not results:
            nan_cls = [{"class": n, "AP": 0.0, "AP50": 0.0} for n in names]
            return {k: 0.0 for k in COCO_METRICS}, nan_cls
        with _quiet():
            dt = self._coco_gt.loadRes(results)
            ev = COCOeval(self._coco_gt, dt, "bbox")
            ev.params.imgIds = [i + 1 for i in sorted(self.predictions)]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = {k: float(v) for k, v in zip(COCO_METRICS, ev.stats)}
        prec = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
        per_class = []
        for k, name in enumerate(names):
            p_all, p50 = prec[:, :, k, 0, -1], prec[0, :, k, 0, -1]
            per_class.append({
                "class": name,
                "AP": float(p_all[p_all > -1].mean()) if (p_all > -1).any() else float("nan"),
                "AP50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else float("nan"),
            })
        return stats, per_class

    def _voc(self) -> list[dict]:
        out = []
        for label, name in enumerate(self.info.class_names, start=1):
            gts, dets = {}, []
            for idx in self.predictions:
                r = self.records[idx]
                m = (r.labels == label) & ~r.iscrowd
                gts[idx] = (r.boxes[m], r.difficult[m])
                boxes, scores, labels = self.predictions[idx]
                dets += [(idx, float(s), b) for b, s in zip(boxes[labels == label], scores[labels == label])]
            ap, npos = voc_class_ap(gts, dets, self.iou_thresh, self.voc_metric)
            out.append({"class": name, "AP": ap, "gt": npos, "dets": len(dets)})
        return out

    def evaluate(self) -> dict:
        """{'coco': 12 numbers, 'coco_per_class': [...], 'voc': [...], 'voc_mAP': float}."""
        coco, coco_cls = self._coco()
        voc = self._voc()
        aps = [c["AP"] for c in voc if not np.isnan(c["AP"])]
        return {"coco": coco, "coco_per_class": coco_cls, "voc": voc,
                "voc_mAP": float(np.mean(aps)) if aps else 0.0, "voc_metric": self.voc_metric,
                "num_images": len(self.predictions)}


def format_results(res: dict) -> str:
    """The tables printed after validation and by eval_det.py."""
    c = res["coco"]
    lines = [
        f"COCO bbox (pycocotools, {res['num_images']} images): " + "  ".join(f"{k} {c[k]:.3f}" for k in
                                                                             ("AP", "AP50", "AP75", "APs", "APm",
                                                                              "APl", "AR100")),
        f"{'class':<20}{'COCO AP':>9}{'AP50':>8}{'VOC AP' + res['voc_metric'][3:]:>10}{'gt':>7}{'dets':>7}",
    ]
    for cc, v in zip(res["coco_per_class"], res["voc"]):
        lines.append(f"{cc['class']:<20}{cc['AP']:>9.3f}{cc['AP50']:>8.3f}{v['AP']:>10.3f}{v['gt']:>7}{v['dets']:>7}")
    lines.append(f"{'mean':<20}{c['AP']:>9.3f}{c['AP50']:>8.3f}{res['voc_mAP']:>10.3f}")
    return "\n".join(lines)
