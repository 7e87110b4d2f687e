"""Our numbers against the references: pycocotools run directly, and the VOC devkit's rules."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detection.evaluation.analysis import confusion_matrix
from detection.evaluation.evaluator import COCO_METRICS, DetectionEvaluator, evaluate_files

CATS = [3, 7, 12]  # not contiguous, as in real COCO files


def random_set(seed: int, tmp_path, image_ids=None, ann_id_start=1, drop_iscrowd=False):
    """Random ground truth and noisy predictions written as COCO files."""
    rng = np.random.default_rng(seed)
    image_ids = image_ids or list(range(100, 112))
    images, anns, preds = [], [], []
    for img_id in image_ids:
        w, h = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        images.append({"id": img_id, "file_name": f"{img_id}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 7))):
            bw, bh = int(rng.integers(4, 150)), int(rng.integers(4, 150))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            cat = int(rng.choice(CATS))
            a = {"id": ann_id_start + len(anns), "image_id": img_id, "category_id": cat, "bbox": [x, y, bw, bh],
                 "area": float(bw * bh * rng.uniform(0.5, 1.0)), "iscrowd": int(rng.random() < 0.08)}
            if drop_iscrowd:
                del a["iscrowd"]
            anns.append(a)
            if rng.random() < 0.8:  # a noisy hit, sometimes with the wrong class
                jit = rng.normal(0, 0.1, 4) * [bw, bh, bw, bh]
                c = cat if rng.random() < 0.85 else int(rng.choice(CATS))
                preds.append({"image_id": img_id, "category_id": c, "score": float(rng.random()),
                              "bbox": [round(float(v), 1) for v in np.array([x, y, bw, bh]) + jit]})
        for _ in range(int(rng.integers(0, 4))):  # pure false positives
            bw, bh = int(rng.integers(4, 100)), int(rng.integers(4, 100))
            preds.append({"image_id": img_id, "category_id": int(rng.choice(CATS)), "score": float(rng.random()),
                          "bbox": [int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh)), bw, bh]})
    for p in preds:  # keep predictions inside the image, positive size
        img = next(i for i in images if i["id"] == p["image_id"])
        x, y, bw, bh = p["bbox"]
        x, y = max(0.0, x), max(0.0, y)
        p["bbox"] = [x, y, max(1.0, min(bw, img["width"] - x)), max(1.0, min(bh, img["height"] - y))]
    gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in CATS]}
    gt_path, pred_path = tmp_path / f"gt{seed}.json", tmp_path / f"pred{seed}.json"
    gt_path.write_text(json.dumps(gt))
    pred_path.write_text(json.dumps(preds))
    return gt, preds, str(gt_path), str(pred_path)


def pycocotools_stats(gt_path, pred_path):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(pred_path), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(COCO_METRICS, ev.stats))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_coco_numbers_equal_pycocotools(tmp_path, seed):
    _, _, gt_path, pred_path = random_set(seed, tmp_path)
    ours, _ = evaluate_files(gt_path, pred_path)
    ref = pycocotools_stats(gt_path, pred_path)
    for k in COCO_METRICS:
        assert ours["coco"][k] == pytest.approx(ref[k], abs=1e-12), k


def devkit_ap(gt: dict, preds: list, cat: int, use_07: bool, thresh=0.5) -> float:
    """Pascal VOC devkit's voc_eval, written out plainly (crowd boxes play the role of difficult)."""
    recs = {}
    for a in gt["annotations"]:
        if a["category_id"] == cat:
            x, y, w, h = a["bbox"]
            recs.setdefault(a["image_id"], []).append(([x, y, x + w, y + h], bool(a.get("iscrowd", 0))))
    npos = sum(1 for boxes in recs.values() for _, diff in boxes if not diff)
    seen = {img: [False] * len(b) for img, b in recs.items()}
    dets = sorted([p for p in preds if p["category_id"] == cat], key=lambda p: -p["score"])
    tp, fp = [], []
    for d in dets:
        x, y, w, h = d["bbox"]
        bb = [x, y, x + w, y + h]
        best, jbest = -1.0, -1
        for j, (g, _) in enumerate(recs.get(d["image_id"], [])):
            iw = max(min(bb[2], g[2]) - max(bb[0], g[0]), 0.0)
            ih = max(min(bb[3], g[3]) - max(bb[1], g[1]), 0.0)
            inter = iw * ih
            uni = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
            if inter / uni > best:
                best, jbest = inter / uni, j
        if best > thresh:
            if recs[d["image_id"]][jbest][1]:
                continue
            if not seen[d["image_id"]][jbest]:
                tp.append(1)
                fp.append(0)
                seen[d["image_id"]][jbest] = True
            else:
                tp.append(0)
                fp.append(1)
        else:
            tp.append(0)
            fp.append(1)
    if npos == 0:
        return float("nan")
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if use_07:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0) / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_voc_numbers_equal_the_devkit_rules(tmp_path, seed, metric):
    gt, preds, gt_path, pred_path = random_set(seed, tmp_path)
    ours, _ = evaluate_files(gt_path, pred_path, voc_metric=metric)
    for c, cat in zip(ours["voc"], CATS):
        ref = devkit_ap(gt, preds, cat, metric == "voc07")
        if np.isnan(ref):
            assert np.isnan(c["AP"])
        else:
            assert c["AP"] == pytest.approx(ref, abs=1e-12), (cat, metric)


def test_annotation_and_image_ids_starting_at_zero(tmp_path):
    """pycocotools itself miscounts a ground-truth annotation with id 0; we renumber, so the
    numbers equal those of the same set with ids shifted to start at 1."""
    _, _, g0, p0 = random_set(7, tmp_path, image_ids=list(range(0, 10)), ann_id_start=0)
    _, _, g1, p1 = random_set(7, tmp_path / "..", image_ids=list(range(0, 10)), ann_id_start=1)
    assert evaluate_files(g0, p0)[0]["coco"] == evaluate_files(g1, p1)[0]["coco"]
    assert evaluate_files(g1, p1)[0]["coco"]["AP"] == pytest.approx(pycocotools_stats(g1, p1)["AP"], abs=1e-12)


def test_missing_iscrowd_means_zero(tmp_path):
    _, _, g, p = random_set(3, tmp_path, drop_iscrowd=True)
    ref_gt = json.loads(open(g).read())
    for a in ref_gt["annotations"]:
        a["iscrowd"] = 0
    (tmp_path / "ref.json").write_text(json.dumps(ref_gt))
    assert evaluate_files(g, p)[0]["coco"]["AP"] == pytest.approx(
        pycocotools_stats(str(tmp_path / "ref.json"), p)["AP"], abs=1e-12)


def test_bad_prediction_files_name_the_entry(tmp_path):
    _, preds, g, _ = random_set(1, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**preds[0], "image_id": 999}]))
    with pytest.raises(ValueError, match=r"entry 0 has image_id 999, not an image of"):
        evaluate_files(g, str(bad))
    bad.write_text(json.dumps([{"image_id": 100}]))
    with pytest.raises(ValueError, match=r"entry 0 lacks \['category_id', 'bbox', 'score'\]"):
        evaluate_files(g, str(bad))


def test_saved_results_round_trip_with_source_ids(tmp_path):
    _, _, g, p = random_set(2, tmp_path)
    res, ev = evaluate_files(g, p)
    again = tmp_path / "again.json"
    again.write_text(json.dumps(ev.coco_results(source_ids=True)))
    assert evaluate_files(g, str(again))[0]["coco"] == pytest.approx(res["coco"])


def test_coco_tiny_real_ids(shared_datasets, tmp_path):
    """Real COCO ids (image ids in the hundreds of thousands, category ids up to 90, crowds):
    perfect predictions from the ground truth itself score 1 where pycocotools says so too."""
    gt_path = shared_datasets / "coco_tiny_cocojson" / "annotations" / "instances_val2017.json"
    gt = json.loads(gt_path.read_text())
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
             for a in gt["annotations"] if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0]
    pred_path = tmp_path / "p.json"
    pred_path.write_text(json.dumps(preds))
    ours, _ = evaluate_files(str(gt_path), str(pred_path))
    ref = pycocotools_stats(str(gt_path), str(pred_path))
    for k in COCO_METRICS:
        assert ours["coco"][k] == pytest.approx(ref[k], abs=1e-12), k
    assert ours["coco"]["AP50"] == pytest.approx(1.0)


def test_confusion_matrix_hand_case():
    from detection.data.records import DatasetInfo, ImageRecord

    r = ImageRecord("x", 100, 100, np.array([[0, 0, 10, 10], [20, 20, 40, 40], [60, 60, 90, 90]], np.float32),
                    np.array([1, 2, 2]), np.zeros(3, bool), np.zeros(3, bool), 0)
    ev = DetectionEvaluator([r], DatasetInfo(["a", "b"], [1, 2], "t"))
    # right class on box 0, wrong class on box 1, box 2 missed, one false positive, one below the score
    ev.add(0, np.array([[0, 0, 10, 10], [20, 20, 40, 41], [70, 0, 90, 20], [60, 60, 90, 90]]),
           np.array([0.9, 0.8, 0.7, 0.1]), np.array([1, 1, 2, 2]))
    cm = confusion_matrix(ev.records, ev.predictions, 2, 0.5, 0.25)
    assert cm.tolist() == [[1, 0, 0],  # a: hit
                           [1, 0, 1],  # b: once taken for a, once missed
                           [0, 1, 0]]  # background: one false b


@pytest.mark.parametrize("seed", [0, 3])
def test_faster_coco_eval_gives_the_same_twelve_numbers(tmp_path, seed):
    pytest.importorskip("faster_coco_eval", reason="optional backend not installed")
    _, _, gt_path, pred_path = random_set(seed, tmp_path)
    ref, _ = evaluate_files(gt_path, pred_path)
    fast, _ = evaluate_files(gt_path, pred_path, backend="faster_coco_eval")
    for k in COCO_METRICS:
        assert fast["coco"][k] == pytest.approx(ref["coco"][k], abs=1e-9), k
    assert [c["AP"] for c in fast["coco_per_class"]] == pytest.approx([c["AP"] for c in ref["coco_per_class"]])


def test_unknown_backend_is_refused_up_front():
    from detection.data.records import DatasetInfo

    with pytest.raises(ValueError, match="eval.backend must be pycocotools or faster_coco_eval"):
        DetectionEvaluator([], DatasetInfo([], [], "t"), backend="fastest")
