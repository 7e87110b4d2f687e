"""Tracking: one id per object through a clip of moving shapes, its counts and line crossings."""

import numpy as np

from detection.inference.tracking import ByteTracker, LineCounter


def clip(frames=60, seed=0):
    """Four objects of two classes moving on straight paths (two of them cross each other);
    per frame their boxes, with jitter, a detection dropped now and then, and object 2 faded
    (low score) for frames 20-27, as an occluded object would be."""
    rng = np.random.default_rng(seed)
    starts = np.array([[10, 40], [200, 40], [10, 150], [60, 250]], float)
    speeds = np.array([[4, 0], [-4, 0.5], [3, 1], [0, -3]], float)
    labels = np.array([1, 1, 2, 2])
    out = []
    for f in range(frames):
        c = starts + speeds * f
        boxes = np.concatenate([c - 12, c + 12], 1) + rng.normal(0, 0.8, (4, 4))
        scores = rng.uniform(0.7, 0.95, 4)
        if 20 <= f < 28:
            scores[2] = 0.3  # faded: ByteTrack's second association keeps it
        keep = rng.uniform(size=4) > 0.05
        keep[0] = keep[0] or f < 2
        out.append((boxes[keep], scores[keep], labels[keep], np.flatnonzero(keep)))
    return out


def test_each_object_keeps_one_id_through_the_clip_and_is_counted_once():
    tracker = ByteTracker()
    ids: dict[int, set] = {k: set() for k in range(4)}
    for boxes, scores, labels, objs in clip():
        for tid, k, _, _ in tracker.update(boxes, scores, labels):
            ids[int(objs[k])].add(tid)
    assert all(len(v) == 1 for v in ids.values()), ids  # one id each, never switched
    assert len(set.union(*ids.values())) == 4  # four different ids
    assert tracker.unique_counts() == {1: 2, 2: 2}


def test_a_lost_object_gets_its_id_back_within_the_buffer():
    tracker = ByteTracker(buffer=10)
    box = np.array([[50, 50, 80, 80]], float)
    first = tracker.update(box, [0.9], [1])[0][0]
    for _ in range(5):
        assert tracker.update(np.zeros((0, 4)), [], []) == []  # out of sight for 5 frames
    assert tracker.update(box, [0.9], [1])[0][0] == first
    for _ in range(12):
        tracker.update(np.zeros((0, 4)), [], [])
    tracker.update(box, [0.9], [1])
    assert tracker.update(box, [0.9], [1])[0][0] != first  # past the buffer: a new object


def test_line_crossings_are_counted_per_class_and_direction():
    line = LineCounter(100, 0, 100, 300)  # a vertical line at x = 100, drawn top to bottom
    tracker = ByteTracker()
    for boxes, scores, labels, _ in clip():
        line.update(tracker.update(boxes, scores, labels), boxes)
    # facing down the line (top to bottom of the screen) its left is the screen's right: `in` is
    # right to left on screen. Object 0 (class 1) moves right (out), object 1 (class 1) left
    # (in), object 2 (class 2) right (out); object 3 moves up and never crosses
    assert line.counts == {(1, "out"): 1, (1, "in"): 1, (2, "out"): 1}


def _shapes_video(path, frames=24, size=(160, 240)):
    """Two red squares (class 0) and a blue one (class 1) moving right; the blue one and a red
    one cross x = 120."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (size[1], size[0]))
    for f in range(frames):
        img = np.full((*size, 3), 230, np.uint8)
        for (x, y), color in (((20 + 5 * f, 30), (0, 0, 220)), ((60 + 5 * f, 110), (0, 0, 220)),
                              ((10 + 2 * f, 70), (220, 0, 0))):
            cv2.rectangle(img, (x, y), (x + 24, y + 24), color, -1)  # BGR
        writer.write(img)
    writer.release()
    return path


def _colour_detector(self, images, paths=None, score=None, classes=None, max_det=None, batch=1, extras=None,
                     raw_scores=False):
    """A perfect detector for _shapes_video: red blobs are class 0, blue ones class 1."""
    import cv2

    from detection.inference.predictor import Result

    out = []
    for k, im in enumerate(images):
        boxes, labels = [], []
        red, blue = (im[..., 0] > 150) & (im[..., 2] < 100), (im[..., 2] > 150) & (im[..., 0] < 100)
        for label, mask in enumerate((red, blue)):
            _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
            for x, y, w, h, area in stats[1:]:
                if area > 50:
                    boxes.append([x, y, x + w, y + h])
                    labels.append(label)
        out.append(Result(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32),
                          np.array(labels, np.int64), self.class_names, paths[k] if paths else None, im.shape[:2],
                          dict(extras[k]) if extras else {}))
    return out


def test_infer_track_writes_ids_mot_lines_and_counts(tmp_path, monkeypatch):
    import json

    from detection.cli import infer as infer_cli
    from detection.inference.predictor import Predictor

    from .test_model_out import _checkpoint

    ckpt = _checkpoint(tmp_path / "run" / "weights" / "best.pt", classes=("red", "blue"))
    monkeypatch.setattr(Predictor, "predict", _colour_detector)
    video = _shapes_video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    infer_cli.main(["--source", str(video), "--ckpt", str(ckpt), "--track", "--line", "120,0,120,160",
                    "--save-json", "--score", "0.5", "--out", str(out)])
    rows = [line.split(",") for line in (out / "tracks" / "clip.txt").read_text().splitlines()]
    assert len({r[1] for r in rows}) == 3 and {int(r[0]) for r in rows} == set(range(1, 25))  # 3 ids, every frame
    by_id = {}
    for r in rows:
        by_id.setdefault(r[1], []).append(float(r[3]))  # top: each id stays on its square's row
    assert sorted(round(np.mean(v)) for v in by_id.values()) == [30, 70, 110]
    summary = json.loads((out / "tracks.json").read_text())[str(video)]
    assert summary["unique"] == {"red": 2, "blue": 1}
    # moving right across a line drawn top to bottom is `out`; the red square at x=20+5f crosses
    # (centre 32 -> 147), the one at x=60+5f too (72 -> 187), the blue one (22 -> 68) does not
    assert summary["crossings"] == {"red": {"in": 0, "out": 2}}
    dets = json.loads((out / "predictions.json").read_text())
    assert all("track_id" in d for d in dets if d["frame"] > 0) and len({d.get("track_id") for d in dets}) == 3
