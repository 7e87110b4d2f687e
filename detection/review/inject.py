"""Label mistakes made on purpose, to measure the review: how many does it rank near the top?"""

from __future__ import annotations

import copy

import numpy as np

SPURIOUS_SIZE = 11  # pixels: the side of a box added where nothing is


def inject(records, rng: np.random.Generator, n: int = 5, num_classes: int = 4) -> tuple[list, list]:
    """(damaged copies of `records`, truth [(image, kind)]): `n` boxes deleted (missing), `n`
    classes changed (wrong_class), `n` boxes shifted by 45% of their size (bad_box) and `n`
    boxes added in the top-left corner (spurious), one mistake an image so the truth is plain."""
    bad, truth, used = copy.deepcopy(records), [], set()
    pairs = [(i, j) for i, r in enumerate(records) for j in range(len(r.boxes)) if not (r.iscrowd[j] or r.difficult[j])]
    order = iter(rng.permutation(len(pairs)))
    for kind in ("missing", "wrong_class", "bad_box"):
        for _ in range(n):
            i, j = next(pairs[k] for k in order if pairs[k][0] not in used)
            used.add(i)
            r, box = bad[i], records[i].boxes[j].copy()
            if kind == "missing":
                keep = np.arange(len(r.boxes)) != j
                r.boxes, r.labels, r.iscrowd, r.difficult = (r.boxes[keep], r.labels[keep], r.iscrowd[keep],
                                                             r.difficult[keep])
            elif kind == "wrong_class":
                r.labels[j] = r.labels[j] % num_classes + 1
            else:
                w, h = box[2] - box[0], box[3] - box[1]
                r.boxes[j] = np.minimum(box + np.array([0.45 * w, 0.45 * h, 0.45 * w, 0.45 * h], np.float32),
                                        [r.width, r.height, r.width, r.height])
            truth.append((i, kind))
    for _ in range(n):
        i = int(next(i for i in rng.permutation(len(bad)) if i not in used))
        used.add(i)
        r = bad[i]
        r.boxes = np.concatenate([r.boxes, np.array([[1, 1, 1 + SPURIOUS_SIZE, 1 + SPURIOUS_SIZE]], np.float32)])
        r.labels, r.iscrowd, r.difficult = np.append(r.labels, 1), np.append(r.iscrowd, False), \
            np.append(r.difficult, False)
        truth.append((i, "spurious"))
    return bad, truth


def precision_recall_at(issues, truth: list[tuple], k: int) -> tuple[float, float]:
    """Of the top k issues, the share that are injected mistakes (by image and kind); of the
    injected mistakes, the share among the top k."""
    top = [(x.image, x.kind) for x in issues[:k]]
    hits = sum(t in set(truth) for t in top)
    return hits / max(len(top), 1), sum(t in set(top) for t in truth) / max(len(truth), 1)
