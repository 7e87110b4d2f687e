"""Aspect-ratio grouped batches that are a pure function of (seed, epoch): resumable and shardable.

Padding a 480x640 image next to a 640x480 one makes a 640x640 batch, a third of it
zeros. Grouping by aspect ratio (as torchvision's references do) avoids that.

The order of an epoch comes from `seed + epoch` alone, not from a generator that has
been running since the start, so a run resumed at epoch 7, batch 30 sees exactly the
batches an uninterrupted run would. Each index travels with its own augmentation seed
for the same reason. Under DDP whole batches are dealt to the ranks, so grouping is kept
and every rank gets the same number of batches.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

import torch
from torch.utils.data import Sampler


def aspect_ratio_groups(sizes: list[tuple[int, int]], bins: tuple[float, ...] = (0.75, 1.0, 1.33)) -> list[int]:
    """Group id per image from (width, height): which bin its width/height ratio falls in."""
    return [bisect.bisect_right(bins, w / max(h, 1)) for w, h in sizes]


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 100_019 + index * 7_919) % (2**31)


class GroupedBatchSampler(Sampler):
    """Batches of `(index, augmentation seed)` whose images share a group.

    Leftovers of each group are batched together at the end of the epoch. With one rank,
    every index is yielded exactly once per epoch; with several, the last few batches
    are dropped so that each rank gets the same count.
    """

    def __init__(self, group_ids: list[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        self.group_ids, self.batch_size, self.seed, self.shuffle = group_ids, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip, self.limit = 0, 0, None

    def set_epoch(self, epoch: int, skip_batches: int = 0, limit: int | None = None) -> None:
        """The epoch to produce, how many of its batches this rank has already done, and where it
        stops (`limit` batches: the last, partial epoch of a run planned by time)."""
        self.epoch, self.skip, self.limit = epoch, skip_batches, limit

    def _all_batches(self) -> list[list[int]]:
        n = len(self.group_ids)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(n))
        buckets: dict[int, list[int]] = defaultdict(list)
        batches = []
        for idx in order:
            b = buckets[self.group_ids[idx]]
            b.append(idx)
            if len(b) == self.batch_size:
                batches.append(list(b))
                b.clear()
        rest = [i for b in buckets.values() for i in b]  # mixed groups, only at the end
        batches += [rest[i:i + self.batch_size] for i in range(0, len(rest), self.batch_size)]
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank:usable:self.world_size]

    def __iter__(self):
        for batch in self._all_batches()[self.skip:self.limit]:
            yield [(i, augmentation_seed(self.seed, self.epoch, i)) for i in batch]

    def __len__(self) -> int:
        return max(0, len(self._all_batches()[:self.limit]) - self.skip)

    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch on this rank, whatever is being skipped now."""
        return len(self._all_batches())
