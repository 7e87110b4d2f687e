"""Aspect-ratio grouped batches that are a pure function of (seed, epoch): resumable and shardable.

Padding a 480x640 image next to a 640x480 one makes a 640x640 batch, a third of it
zeros. Grouping by aspect ratio (as torchvision's references do) avoids that.

The order of an epoch comes from `seed + epoch` alone, not from a generator that has
been running since the start, so a run resumed at epoch 7, batch 30 sees exactly the
batches an uninterrupted run would. Each index travels with its own augmentation seed
for the same reason. Under DDP whole batches are dealt to the ranks, so grouping is kept
and every rank gets the same number of batches.

Rare classes (`data.sampler: repeat_factor`): LVIS's repeat-factor sampling (Gupta et al.,
2019). A class seen in a fraction f of the training images gets r = max(1, sqrt(t / f)) for
the threshold t (`data.repeat_thresh`); an image repeats max r over its classes times an epoch:
the whole part always, the fraction by a coin drawn from (seed, epoch), so a resume sees the
same epoch again.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

import torch
from torch.utils.data import Sampler


def aspect_ratio_groups(sizes: list[tuple[int, int]], bins: tuple[float, ...] = (0.75, 1.0, 1.33)) -> list[int]:
    """Group id per image from (width, height): which bin its width/height ratio falls in."""
    return [bisect.bisect_right(bins, w / max(h, 1)) for w, h in sizes]


def repeat_factors(labels_per_image: list, threshold: float) -> list[float]:
    """LVIS repeat factors: per image, max over its classes of max(1, sqrt(threshold / f_class)),
    where f_class is the share of images holding the class (an image without boxes: 1)."""
    n = max(len(labels_per_image), 1)
    holding: dict[int, int] = defaultdict(int)
    for labels in labels_per_image:
        for c in set(int(x) for x in labels):
            holding[c] += 1
    r_class = {c: max(1.0, math.sqrt(threshold / (k / n))) for c, k in holding.items()}
    return [max((r_class[int(c)] for c in labels), default=1.0) for labels in labels_per_image]


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 100_019 + index * 7_919) % (2**31)


class GroupedBatchSampler(Sampler):
    """Batches of `(index, augmentation seed)` whose images share a group.

    Leftovers of each group are batched together at the end of the epoch; a last batch of one
    image joins the one before it (SSDlite's extra layers end in 1x1 maps, and BatchNorm in
    training mode cannot normalise one value a channel: BCCD's 205 images in batches of 4 stopped
    an SSDlite training in its first epoch). With one rank, every index is yielded exactly once
    per epoch; with several, the last few batches are dropped so that each rank gets the same count.
    """

    def __init__(self, group_ids: list[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, repeats: list[float] | None = None):
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        self.group_ids, self.batch_size, self.seed, self.shuffle = group_ids, batch_size, seed, shuffle
        self.repeats = repeats  # per image (`repeat_factors`), or None: each image once
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip, self.limit = 0, 0, None

    def set_epoch(self, epoch: int, skip_batches: int = 0, limit: int | None = None) -> None:
        """The epoch to produce, how many of its batches this rank has already done, and where it
        stops (`limit` batches: the last, partial epoch of a run planned by time)."""
        self.epoch, self.skip, self.limit = epoch, skip_batches, limit

    def epoch_items(self) -> list[int]:
        """The epoch's items: image indices, and with repeat factors the copies as index + k * n
        (copy k of image index), drawn from (seed, epoch) alone."""
        n = len(self.group_ids)
        if self.repeats is None:
            return list(range(n))
        coins = torch.rand(n, generator=torch.Generator().manual_seed(self.seed * 7_919 + self.epoch + 1)).tolist()
        return [i + k * n for i, (r, coin) in enumerate(zip(self.repeats, coins))
                for k in range(int(r) + (coin < r - int(r)))]

    def _all_batches(self) -> list[list[int]]:
        items = self.epoch_items()
        if self.shuffle:
            perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(self.seed + self.epoch))
            items = [items[j] for j in perm.tolist()]
        n = len(self.group_ids)
        buckets: dict[int, list[int]] = defaultdict(list)
        batches = []
        for idx in items:
            b = buckets[self.group_ids[idx % n]]
            b.append(idx)
            if len(b) == self.batch_size:
                batches.append(list(b))
                b.clear()
        rest = [i for b in buckets.values() for i in b]  # mixed groups, only at the end
        batches += [rest[i:i + self.batch_size] for i in range(0, len(rest), self.batch_size)]
        if self.batch_size > 1 and len(batches) > 1 and len(batches[-1]) == 1:
            alone = batches.pop()  # one image alone: a BatchNorm in training mode on a 1x1 map fails
            batches[-1].extend(alone)
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank:usable:self.world_size]

    def __iter__(self):
        n = len(self.group_ids)  # a copy (item >= n) is its image with augmentation of its own
        for batch in self._all_batches()[self.skip:self.limit]:
            yield [(i % n, augmentation_seed(self.seed, self.epoch, i)) for i in batch]

    def __len__(self) -> int:
        return max(0, len(self._all_batches()[:self.limit]) - self.skip)

    def batches_per_epoch(self) -> int:
        """Batches of a whole epoch on this rank, whatever is being skipped now."""
        return len(self._all_batches())
