"""The evaluator used by validation and `tools/eval_det.py`: reset / process / evaluate.

Ground truth comes from the raw records (original pixels, original category ids), built
once; predictions are mapped back from the network's input size to the original image
before they are stored. COCO numbers are pycocotools' own; VOC numbers follow the devkit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os

import numpy as np

from ..data.records import DatasetInfo, ImageRecord
from ..errors import ConfigError, DataError
from ..utils import distributed as dist
from ..utils import results_json
from ..utils.detections import phantom_rows
from .voc_ap import voc_class_ap

log = logging.getLogger("detection.eval")

COCO_METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def coco_backend(name: str):
    """(COCO, COCOeval) classes of the chosen implementation."""
    if name == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if name == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            raise ConfigError("eval.backend=faster_coco_eval needs `pip install faster-coco-eval`") from None
        return COCO, COCOeval_faster
    raise ConfigError(f"eval.backend must be pycocotools or faster_coco_eval, got {name!r}")


def coco_ground_truth(records: list[ImageRecord], info: DatasetInfo) -> dict:
    """A COCO-format dict of the records. Ids start at 1: pycocotools treats 0 as 'no match'."""
    images, anns = [], []
    for idx, r in enumerate(records):
        images.append({"id": idx + 1, "width": r.width, "height": r.height, "file_name": r.path})
        for i, (box, label, crowd, difficult) in enumerate(zip(r.boxes, r.labels, r.iscrowd, r.difficult)):
            x1, y1, x2, y2 = (float(v) for v in box)
            # the file's own area where it has one (COCO: segment area decides small/medium/large)
            area = float(r.areas[i]) if r.areas is not None else (x2 - x1) * (y2 - y1)
            anns.append({
                "id": len(anns) + 1, "image_id": idx + 1, "category_id": info.cat_ids[label - 1],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area,
                # VOC difficult boxes are ignored like crowd regions: no credit, no penalty
                "iscrowd": int(crowd or difficult),
            })
    cats = [{"id": c, "name": n} for c, n in zip(info.cat_ids, info.class_names)]
    return {"images": images, "annotations": anns, "categories": cats}


class DetectionEvaluator:
    def __init__(self, records: list[ImageRecord], info: DatasetInfo, voc_metric: str = "voc07",
                 iou_thresh: float = 0.5, backend: str = "pycocotools"):
        self.records, self.info = records, info
        self.voc_metric, self.iou_thresh = voc_metric, iou_thresh
        self.backend = backend
        coco_backend(backend)  # fail now, not after a validation pass
        self._coco_gt = None
        self.coco_eval = None  # the last pycocotools COCOeval, for PR curves
        self._matches = None  # its per-detection matches, made once on first use
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
            self.add(int(t["image_id"]), boxes, o["scores"].detach().float().cpu().numpy(), o["labels"].cpu().numpy())

    def add(self, idx: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        """Predictions for record `idx` in original pixels, xyxy, labels 1..K. Label 0 is background:
        RetinaNet's and FCOS's sigmoid heads can emit it, and through `cat_ids[label - 1]` it would
        be scored as the last class; it is dropped, as is every other row that is no detection
        (`detections.phantom_rows`: a score at or under 0, a box that is not finite)."""
        labels = np.asarray(labels, np.int64).reshape(-1)
        keep = ~phantom_rows(scores, labels, boxes)
        self.predictions[idx] = (np.asarray(boxes, np.float32).reshape(-1, 4)[keep],
                                 np.asarray(scores, np.float32).reshape(-1)[keep], labels[keep])

    def coco_results(self, source_ids: bool = False) -> list[dict]:
        """Predictions in the COCO results format, with the source's category ids.

        `source_ids=True` writes the source's image ids, file names and class names (the file
        infer.py --save-json writes: it scores against the source annotations, or with
        `eval_det.py --pred --cfg` against any config's split); internally images are 1..N.
        """
        from ..data.splits import relative_name

        out = []
        for idx, (boxes, scores, labels) in self.predictions.items():
            record = self.records[idx]
            image_id = record.image_id if source_ids else idx + 1
            name = relative_name(record.path, self.info.root) if source_ids else None
            for b, s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
                out.append(results_json.entry(image_id, b, s, self.info.cat_ids[lab - 1], name,
                                              self.info.class_names[lab - 1] if source_ids else None))
        return out

    def _coco(self) -> tuple[dict, list[dict]]:
        COCO, COCOeval = coco_backend(self.backend)
        if self._coco_gt is None:
            self._coco_gt = COCO()
            self._coco_gt.dataset = coco_ground_truth(self.records, self.info)
            with _quiet():
                self._coco_gt.createIndex()
        results = self.coco_results()
        names = self.info.class_names
        if not results:
            self.coco_eval = self._matches = None
            nan_cls = [{"class": n, "AP": 0.0, "AP50": 0.0} for n in names]
            return {k: 0.0 for k in COCO_METRICS}, nan_cls
        with _quiet():
            dt = self._coco_gt.loadRes(results)
            ev = COCOeval(self._coco_gt, dt, "bbox")
            ev.params.imgIds = [i + 1 for i in sorted(self.predictions)]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        self.coco_eval, self._matches = ev, None
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
                m = r.labels == label
                gts[idx] = (r.boxes[m], (r.difficult | r.iscrowd)[m])  # both: neither hit nor miss
                boxes, scores, labels = self.predictions[idx]
                dets += [(idx, float(s), b) for b, s in zip(boxes[labels == label], scores[labels == label])]
            ap, npos = voc_class_ap(gts, dets, self.iou_thresh, self.voc_metric)
            out.append({"class": name, "AP": ap, "gt": npos, "dets": len(dets)})
        return out

    def matches(self, area: str = "all"):
        """The last COCO evaluation's per-detection matches (`matches.Matches`), or None; read from
        it once (the intervals, thresholds, calibration and curves all use them). `area="small"`:
        those of AP_small (read each time: only comparisons ask)."""
        from .matches import from_coco_eval

        if area != "all":
            return from_coco_eval(self.coco_eval, self.info.class_names, area) if self.coco_eval is not None else None
        if self._matches is None and self.coco_eval is not None:
            self._matches = from_coco_eval(self.coco_eval, self.info.class_names)
        return self._matches

    def evaluate(self) -> dict:
        """{'coco': 12 numbers, 'coco_per_class': [...], 'voc': [...], 'voc_mAP': float}.

        Under DDP every rank holds the predictions of its share: they are gathered on
        rank 0, which scores them all, and every rank gets the results.
        """
        shares = dist.gather_objects(self.predictions)
        results = None
        if dist.is_main():
            for share in shares:
                self.predictions.update(share)
            results = self._score()
        return dist.broadcast_object(results)

    def _score(self) -> dict:
        coco, coco_cls = self._coco()
        voc = self._voc()
        aps = [c["AP"] for c in voc if not np.isnan(c["AP"])]
        return {"coco": coco, "coco_per_class": coco_cls, "voc": voc,
                "voc_mAP": float(np.mean(aps)) if aps else 0.0, "voc_metric": self.voc_metric, "backend": self.backend,
                "num_images": len(self.predictions), "gt_boxes": int(sum(c["gt"] for c in voc))}


def build_validation(val_ds, ecfg: dict, batch_size: int, workers: int, device, rank: int = 0, world: int = 1):
    """(loader, evaluator) of a validation dataset (`ecfg`: the eval section).

    Under DDP each rank gets every world-th image; `evaluate()` gathers them."""
    from ..data.dataset import build_loader

    loader = build_loader(val_ds, batch_size, False, workers, device.type == "cuda", rank=rank, world_size=world)
    return loader, DetectionEvaluator(val_ds.records, val_ds.info, ecfg["voc_metric"], ecfg["iou_thresh"],
                                      ecfg["backend"])


def format_results(res: dict) -> str:
    """The tables printed after validation and by eval_det.py."""
    c = res["coco"]
    shown = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
    lines = [
        f"COCO bbox ({res.get('backend', 'pycocotools')}, {res['num_images']} images): "
        + "  ".join(f"{k} {metric(c[k])}" for k in shown),
        f"{'class':<20}{'COCO AP':>9}{'AP50':>8}{'VOC AP' + res['voc_metric'][3:]:>10}{'gt':>7}{'dets':>7}",
    ]
    for cc, v in zip(res["coco_per_class"], res["voc"]):
        lines.append(f"{cc['class']:<20}{metric(cc['AP']):>9}{metric(cc['AP50']):>8}{metric(v['AP']):>10}"
                     f"{v['gt']:>7}{v['dets']:>7}")
    lines.append(f"{'mean':<20}{metric(c['AP']):>9}{metric(c['AP50']):>8}{metric(res['voc_mAP']):>10}")
    if any(not math.isfinite(x) or x < 0 for x in (c["APs"], c["APm"], c["APl"])):
        lines.append("n/a: no ground-truth box of that size (APs < 32x32 px, APm up to 96x96, APl above) or class")
    return "\n".join(lines)


def metric(value: float) -> str:
    """A metric for a table: `n/a` where there was nothing to score (pycocotools' -1, a NaN)."""
    return "n/a" if value is None or not math.isfinite(value) or value < 0 else f"{value:.3f}"


def check_ground_truth(res: dict, source: str, class_names: list[str]) -> None:
    """A metric over zero ground-truth boxes is no metric: refuse to report one."""
    if res.get("gt_boxes", 1) == 0:
        raise DataError(f"{source} has no ground-truth boxes of the model's classes "
                        f"({', '.join(class_names[:20])}): AP is undefined there and is not reported. Score the "
                        "model on data of its own classes, or check data.classes")


def score_results(ev: DetectionEvaluator, preds: list[dict], image_of, label_of, pred_json: str) -> dict:
    """Feed a results list into `ev` (every record counts, with or without detections) and evaluate.
    `image_of(p)` / `label_of(p)` give an entry's record index and label, or raise DataError."""
    per_image: dict[int, list] = {i: [] for i in range(len(ev.records))}
    outside: set = set()
    for n, p in enumerate(preds):
        try:
            idx = image_of(p)
            if idx is None:  # an image outside the split (inference ran on a whole folder)
                outside.add(p.get("file_name"))
                continue
            x, y, w, h = p["bbox"]
            per_image[idx].append((x, y, x + w, y + h, p["score"], label_of(p)))
        except DataError as e:
            raise DataError(f"{pred_json}: entry {n} {e}") from None
    if outside:
        if len(outside) == len({p.get("file_name") for p in preds}):
            raise DataError(f"{pred_json}: none of its images is in {ev.info.source} (e.g. {sorted(outside)[0]!r}); "
                            "entries are matched by file_name")
        log.warning("%s: detections on %d images outside %s were ignored (e.g. %s)", pred_json, len(outside),
                    ev.info.source, sorted(outside)[0])
    for idx, dets in per_image.items():
        a = np.array(dets, np.float64).reshape(-1, 6)
        ev.add(idx, a[:, :4], a[:, 4], a[:, 5].astype(np.int64))
    return ev.evaluate()


def evaluate_files(gt_json: str, pred_json: str, voc_metric: str = "voc07", iou_thresh: float = 0.5,
                   backend: str = "pycocotools", preds: list[dict] | None = None) -> tuple[dict, DetectionEvaluator]:
    """Score a COCO results file against COCO annotations, without a model or images (`preds`:
    its entries, when the caller has read them already)."""
    from ..data.coco import read_coco

    records, info = read_coco(gt_json, "", require_images=False)
    ev = DetectionEvaluator(records, info, voc_metric, iou_thresh, backend)
    preds = results_json.read(pred_json) if preds is None else preds
    index = {r.image_id: i for i, r in enumerate(records)}
    labels = {c: i + 1 for i, c in enumerate(info.cat_ids)}

    def image_of(p):
        if p.get("image_id") not in index:
            raise DataError(f"has image_id {p.get('image_id')!r}, not an image of {gt_json}")
        return index[p["image_id"]]

    def label_of(p):
        if p["category_id"] not in labels:
            raise DataError(f"has category_id {p['category_id']!r}, not a category of {gt_json}")
        return labels[p["category_id"]]

    return score_results(ev, preds, image_of, label_of, pred_json), ev


def evaluate_results_on_split(cfg: dict, pred_json: str,
                              preds: list[dict] | None = None) -> tuple[dict, DetectionEvaluator]:
    """Score a results file (infer.py --save-json) against a config's validation split, any format.

    Entries are matched to images by `file_name` (its path relative to the image folder, or
    its base name when that is unique) and to classes by `category_name`, else `category_id`."""
    from ..data.dataset import get_dataset
    from ..data.splits import relative_name

    d = cfg["data"]
    classes = d["classes"] or get_dataset(cfg, train=True).info.class_names
    val = get_dataset(cfg, train=False, class_names=classes)
    records, info = val.records, val.info
    e = cfg["eval"]
    ev = DetectionEvaluator(records, info, e["voc_metric"], e["iou_thresh"], e["backend"])
    by_rel = {relative_name(r.path, info.root): i for i, r in enumerate(records)}
    by_base: dict = {}
    for i, r in enumerate(records):
        by_base.setdefault(os.path.basename(r.path), []).append(i)
    names = {c: i + 1 for i, c in enumerate(info.class_names)}
    ids = {c: i + 1 for i, c in enumerate(info.cat_ids)}

    def image_of(p):
        name = str(p.get("file_name", "")).replace(os.sep, "/")
        if name in by_rel:
            return by_rel[name]
        if "file_name" not in p:
            raise DataError("has no `file_name` (as infer.py --save-json writes): it cannot be matched to an image")
        same_name = by_base.get(os.path.basename(name), [])
        return same_name[0] if len(same_name) == 1 else None

    def label_of(p):
        if "category_name" in p:
            if p["category_name"] not in names:
                raise DataError(f"has category_name {p['category_name']!r}, not a class of the config "
                                f"({', '.join(info.class_names[:20])})")
            return names[p["category_name"]]
        if p["category_id"] not in ids:
            raise DataError(f"has category_id {p['category_id']!r}, not a category of {info.source}")
        return ids[p["category_id"]]

    preds = results_json.read(pred_json) if preds is None else preds
    return score_results(ev, preds, image_of, label_of, pred_json), ev
