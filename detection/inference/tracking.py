"""Tracking on video (`infer.py --track`): ByteTrack, and counts of unique objects and line crossings.

ByteTrack (Zhang et al., 2022) keeps the low-scoring detections: after the confident ones are
matched to the tracks, the weak ones are matched to the tracks still unmatched, so an object
that fades for a few frames (occluded, blurred) keeps its id instead of getting a new one.
Each track is a constant-velocity Kalman filter over (centre x, centre y, width, height);
matching is by IoU with the prediction, one class at a time, solved with the Hungarian
method (scipy). Written here because the kept libraries that ship it (supervision before
0.27, trackers, boxmot) all require opencv-python, which clashes with the headless OpenCV
this toolkit installs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..evaluation.voc_ap import box_iou


class Kalman:
    """Constant velocity over (cx, cy, w, h); the noise scales with the box size (as SORT's)."""

    F = np.eye(8)
    F[:4, 4:] = np.eye(4)
    H = np.eye(4, 8)

    def __init__(self, box: np.ndarray):
        cx, cy, w, h = _xywh(box)
        self.x = np.array([cx, cy, w, h, 0, 0, 0, 0], float)
        s = max(w, h)
        self.P = np.diag([(0.1 * s) ** 2] * 4 + [(0.3 * s) ** 2] * 4)

    def predict(self) -> np.ndarray:
        s = max(self.x[2], self.x[3], 1.0)
        Q = np.diag([(0.05 * s) ** 2] * 4 + [(0.0125 * s) ** 2] * 4)
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + Q
        return self.box()

    def update(self, box: np.ndarray) -> None:
        s = max(self.x[2], self.x[3], 1.0)
        R = np.diag([(0.05 * s) ** 2] * 4)
        y = np.array(_xywh(box)) - self.H @ self.x
        S = self.H @ self.P @ self.H.T + R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ y
        self.P = (np.eye(8) - K @ self.H) @ self.P

    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        w, h = max(w, 1e-3), max(h, 1e-3)
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _xywh(box) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)


@dataclass
class Track:
    id: int
    label: int
    score: float
    kalman: Kalman
    hits: int = 1
    missed: int = 0  # frames since the last match
    confirmed: bool = False
    last_frame: int = 0

    @property
    def box(self) -> np.ndarray:
        return self.kalman.box()


def match(tracks: list[Track], boxes: np.ndarray, labels: np.ndarray, min_iou: float):
    """(pairs (track index, detection index), unmatched tracks, unmatched detections): the
    assignment of largest total IoU among pairs of one class with IoU >= min_iou."""
    if not tracks or not len(boxes):
        return [], list(range(len(tracks))), list(range(len(boxes)))
    m = box_iou(np.array([t.box for t in tracks]), boxes)
    m[np.array([t.label for t in tracks])[:, None] != labels[None, :]] = 0.0
    rows, cols = linear_sum_assignment(-m)
    pairs = [(r, c) for r, c in zip(rows, cols) if m[r, c] >= min_iou]
    used_t, used_d = {r for r, _ in pairs}, {c for _, c in pairs}
    return pairs, [i for i in range(len(tracks)) if i not in used_t], [j for j in range(len(boxes)) if j not in used_d]


class ByteTracker:
    """Track ids for one video's detections, frame after frame (`update`)."""

    def __init__(self, high: float = 0.5, low: float = 0.1, new: float = 0.6, buffer: int = 30,
                 min_iou: float = 0.2):
        self.high, self.low, self.new, self.buffer, self.min_iou = high, low, new, buffer, min_iou
        self.tracks: list[Track] = []
        self.next_id, self.frame = 1, 0
        self.seen: dict[int, int] = {}  # track id -> class, of every confirmed track

    def update(self, boxes, scores, labels, confident=None) -> list[tuple[int, int, float, int]]:
        """(track id, detection index, score, label) of the confirmed tracks this frame's
        detections continue. `confident`: which detections count as sure (the thresholds a
        model ships), instead of `high`; the others down to `low` only continue tracks."""
        boxes, scores, labels = (np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float).reshape(-1),
                                 np.asarray(labels, int).reshape(-1))
        self.frame += 1
        for t in self.tracks:
            t.kalman.predict()
        hi = scores >= self.high if confident is None else np.asarray(confident, bool).reshape(-1)
        lo = ~hi & (scores >= self.low)
        may_start = scores >= self.new if confident is None else hi
        live, out = list(self.tracks), []
        # 1. confident detections against every track (lost ones too: an id comes back)
        hi_idx, lo_idx = np.flatnonzero(hi), np.flatnonzero(lo)
        pairs, left_t, left_d = match(live, boxes[hi], labels[hi], self.min_iou)
        out += [self._continue(live[ti], hi_idx[di], boxes, scores) for ti, di in pairs]
        # 2. weak detections against the tracks seen last frame that are still unmatched
        recent = [live[i] for i in left_t if live[i].missed == 0]
        pairs2, _, _ = match(recent, boxes[lo], labels[lo], max(self.min_iou, 0.5))
        out += [self._continue(recent[ti], lo_idx[di], boxes, scores) for ti, di in pairs2]
        for t in self.tracks:
            if t.last_frame != self.frame:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= (self.buffer if t.confirmed else 1)]
        # 3. new tracks from confident detections nothing continued
        for j in hi_idx[left_d]:
            if not may_start[j]:
                continue
            t = Track(self.next_id, int(labels[j]), float(scores[j]), Kalman(boxes[j]), last_frame=self.frame)
            t.confirmed = self.frame == 1  # on the first frame every confident box is an object
            self.next_id += 1
            self.tracks.append(t)
            if t.confirmed:
                self.seen[t.id] = t.label
                out.append((t.id, int(j), float(scores[j]), t.label))
        return [o for o in out if o is not None]

    def _continue(self, t: Track, j: int, boxes: np.ndarray, scores: np.ndarray):
        t.kalman.update(boxes[j])
        t.hits, t.missed, t.score, t.last_frame = t.hits + 1, 0, float(scores[j]), self.frame
        if not t.confirmed and t.hits >= 2:
            t.confirmed = True
        if t.confirmed:
            self.seen[t.id] = t.label
            return t.id, int(j), float(scores[j]), t.label
        return None

    def unique_counts(self) -> dict[int, int]:
        """Confirmed tracks so far, per class: the objects seen."""
        counts: dict[int, int] = {}
        for label in self.seen.values():
            counts[label] = counts.get(label, 0) + 1
        return counts


class LineCounter:
    """Crossings of the segment (x1, y1) -> (x2, y2) by track centres, per class and direction:
    `in` when a centre passes from the left of the segment to its right, for someone on the
    screen walking from the first point to the second (for a line drawn top to bottom, `in`
    is moving left on the screen), `out` the other way."""

    def __init__(self, x1: float, y1: float, x2: float, y2: float):
        self.a, self.b = np.array([x1, y1], float), np.array([x2, y2], float)
        self.last: dict[int, np.ndarray] = {}
        self.counts: dict[tuple[int, str], int] = {}

    def update(self, tracked: list[tuple[int, int, float, int]], boxes) -> None:
        """`tracked` as ByteTracker.update returns it, `boxes` the detections it indexes."""
        for tid, j, _, label in tracked:
            c = np.array(_xywh(boxes[j])[:2])
            prev = self.last.get(tid)
            self.last[tid] = c
            if prev is None or not _crosses(prev, c, self.a, self.b):
                continue
            way = "in" if _side(self.a, self.b, prev) < 0 <= _side(self.a, self.b, c) else "out"
            self.counts[(label, way)] = self.counts.get((label, way), 0) + 1


def _side(a, b, p) -> float:
    return float((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))


def _crosses(p, q, a, b) -> bool:
    """The step p -> q crosses the segment a-b (touching counts once, on the arrival side)."""
    s1, s2 = _side(a, b, p), _side(a, b, q)
    if (s1 < 0) == (s2 < 0):
        return False
    t1, t2 = _side(p, q, a), _side(p, q, b)
    return (t1 < 0) != (t2 < 0) or t1 == 0 or t2 == 0


class VideoTracks:
    """infer.py --track: a tracker (and line counter) per video or stream, the MOT lines to write
    and the counts to report."""

    def __init__(self, line: tuple | None = None, buffer: int = 30):
        self.line, self.buffer = line, buffer
        self.trackers: dict[str, ByteTracker] = {}
        self.lines: dict[str, LineCounter] = {}
        self.mot: dict[str, list[str]] = {}

    def update(self, source: str, frame: int, dets: list[dict], kept: list[bool]) -> dict[int, int]:
        """{detection index: track id} of one frame's detections (`dets` as Result.detections gives them)."""
        tracker = self.trackers.setdefault(source, ByteTracker(buffer=self.buffer))
        boxes = np.array([d["box"] for d in dets], float).reshape(-1, 4)
        tracked = tracker.update(boxes, [d["score"] for d in dets], [d["label"] for d in dets], kept)
        if self.line is not None:
            self.lines.setdefault(source, LineCounter(*self.line)).update(tracked, boxes)
        rows = self.mot.setdefault(source, [])
        for tid, j, score, _ in tracked:  # MOTChallenge: frame (1-based), id, left, top, width, height, score
            x1, y1, x2, y2 = boxes[j]
            rows.append(f"{frame + 1},{tid},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},{score:.4f},-1,-1,-1")
        return {j: tid for tid, j, _, _ in tracked}

    def summary(self, class_names: list[str]) -> dict:
        """{source: {"unique": {class: objects}, "crossings": {class: {"in": n, "out": n}}}}."""
        out = {}
        for source, tracker in self.trackers.items():
            unique = {class_names[k - 1]: n for k, n in sorted(tracker.unique_counts().items())}
            crossings: dict[str, dict[str, int]] = {}
            for (k, way), n in sorted(self.lines[source].counts.items() if source in self.lines else []):
                crossings.setdefault(class_names[k - 1], {"in": 0, "out": 0})[way] = n
            out[source] = {"unique": unique, **({"crossings": crossings} if self.line is not None else {})}
        return out
