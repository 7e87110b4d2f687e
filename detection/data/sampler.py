"""Aspect-ratio grouped batches: portrait and landscape images are not padded together.

Padding a 480x640 image next to a 640x480 one makes a 640x640 batch, a third of it
zeros. Grouping by aspect ratio (as torchvision's references do) avoids that.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from torch.utils.data import BatchSampler, Sampler


def aspect_ratio_groups(sizes: list[tuple[int, int]], bins: tuple[float, ...] = (0.75, 1.0, 1.33)) -> list[int]:
    """Group id per image from (width, height): which bin its width/height ratio falls in."""
    return [bisect.bisect_right(bins, w / max(h, 1)) for w, h in sizes]


class GroupedBatchSampler(BatchSampler):
    """Batches whose images share a group; leftovers are batched at the end of the epoch.

    Every index of `sampler` is yielded exactly once per epoch.
    """

    def __init__(self, sampler: Sampler, group_ids: list[int], batch_size: int):
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        self.sampler, self.group_ids, self.batch_size = sampler, group_ids, batch_size

    def __iter__(self):
        buckets: dict[int, list[int]] = defaultdict(list)
        for idx in self.sampler:
            b = buckets[self.group_ids[idx]]
            b.append(idx)
            if len(b) == self.batch_size:
                yield list(b)
                b.clear()
        rest = [i for b in buckets.values() for i in b]  # mixed groups, only at the end
        for i in range(0, len(rest), self.batch_size):
            yield rest[i:i + self.batch_size]

    def __len__(self) -> int:
        # a sampler over the whole data set (RandomSampler, SequentialSampler) covers every
        # index: count groups without iterating it, which would advance its random generator
        if len(self.sampler) == len(self.group_ids):
            indices = range(len(self.group_ids))
        else:
            indices = list(self.sampler)
        counts: dict[int, int] = defaultdict(int)
        for idx in indices:
            counts[self.group_ids[idx]] += 1
        full = sum(n // self.batch_size for n in counts.values())
        rest = sum(n % self.batch_size for n in counts.values())
        return full + -(-rest // self.batch_size)
