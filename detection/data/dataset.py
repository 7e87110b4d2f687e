"""The torch Dataset over ImageRecords, the loaders, and `get_dataset` from a config."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from ..errors import DataError
from .formats import guard_format, read_raws
from .images import DEFAULT_MAX_PIXELS, ImageReadError
from .mixing import MIXUP_P, MOSAIC_P, mixup, mosaic
from .pixels import ImagePixels
from .records import DatasetInfo, ImageRecord, RawImage, build_records
from .sampler import GroupedBatchSampler, aspect_ratio_groups, repeat_factors
from .splits import read_split_file, relative_name, select
from .summary import short_summary
from .tiles import crop_to_tile, tile_window
from .transforms import apply_transforms, build_transforms
from .voc import split_file_path

log = logging.getLogger("detection.data")


class DetectionDataset(Dataset):
    """Yields (CHW float image in [0, 1], target) as torchvision's detectors take them.

    The target holds `boxes`, `labels`, `image_id` (index into `records`), `orig_size`
    (h, w of the file) and `scale` (resize factor), so predictions can be mapped back.
    Crowd boxes are removed from training targets: the detectors have no notion of them.
    With `tile` (model.tile_size) the pixels stay native and each training sample is a tile of
    `tile` pixels (`tiles.tile_window`, drawn from the sample's seed, so a resume cuts the same
    ones); the detector's transform scales it to min_size. Validation images stay whole: a tiled
    model is validated sliced (`evaluation.loop.Sliced`).
    """

    MAX_RETRIES = 10  # unreadable training images in a row before the batch gives up

    def __init__(self, records: list[ImageRecord], info: DatasetInfo, train: bool,
                 min_size: int, max_size: int, augment: str = "default", max_pixels: int = DEFAULT_MAX_PIXELS,
                 cache: str = "none", cache_dir: str = "", tile: int = 0, ignore_crowd: bool = False):
        self.records, self.info, self.train, self.tile = records, info, train, tile
        # training: crowd boxes (COCO crowds, a model.init model's unsure detections) become label -1,
        # which Faster R-CNN's RoI sampler neither takes as an object nor as background; without
        # it they are dropped (the other families have no such label)
        self.ignore_crowd = ignore_crowd
        self.min_size, self.max_size, self.max_pixels = min_size, max_size, max_pixels
        self.transforms = build_transforms(augment, train)
        self.mixing = train and augment == "heavy"  # mosaic and mixup
        sizes = (0, 0) if tile else (min_size, max_size)  # tiles: native pixels, scaled by the detector
        self.pixels = ImagePixels(records, *sizes, max_pixels, cache, cache_dir, reduced=train)
        self.unreadable: set[int] = set()  # per worker process

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item):
        """`item` is an index, or (index, augmentation seed) from GroupedBatchSampler."""
        idx, seed = item if isinstance(item, tuple) else (item, None)
        idx, sample = self._sample(idx, seed)
        image, boxes, labels, iscrowd = self._augment(sample, seed)
        r = self.records[idx]
        target = {
            "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(np.where(iscrowd, -1, labels) if self.train else labels, dtype=torch.int64),
            "image_id": idx,
            "orig_size": (r.height, r.width),
            "scale": (image.shape[0] / r.height, image.shape[1] / r.width),
        }
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        return tensor, target

    def _sample(self, idx: int, seed) -> tuple[int, tuple]:
        """(index, (pixels at the training size, boxes on them, labels, crowd flags)), before
        augmentation; training drops crowd boxes unless `ignore_crowd` (most detectors have no notion of them)."""
        idx, image = self._read(idx, seed)
        r = self.records[idx]
        boxes, labels, iscrowd = r.boxes, r.labels, r.iscrowd
        if self.train and not self.ignore_crowd:
            keep = ~iscrowd
            boxes, labels, iscrowd = boxes[keep], labels[keep], iscrowd[keep]
        sx, sy = image.shape[1] / r.width, image.shape[0] / r.height
        sample = (image, boxes * np.array([sx, sy, sx, sy], np.float32), labels, iscrowd)
        if self.train and self.tile:
            rng = random.Random(f"tile{idx}-{seed}")
            sample = crop_to_tile(*sample, tile_window(image.shape[0], image.shape[1], sample[1], self.tile, rng))
        return idx, sample

    def _augment(self, sample: tuple, seed) -> tuple:
        """The per-image augmentation, after mosaic and before mixup (data.augment=heavy); every
        draw follows `seed`, so a resumed run sees the same images."""
        if self.transforms is None or seed is None:
            return apply_transforms(self.transforms, *sample) if self.transforms is not None else sample
        self.transforms.set_random_seed(seed)
        rng = random.Random(f"mix{seed}")
        if self.mixing and rng.random() < MOSAIC_P:
            sample = mosaic(sample, [self._sample(rng.randrange(len(self)), seed + k)[1] for k in (1, 2, 3)], seed)
        sample = apply_transforms(self.transforms, *sample)
        if self.mixing and rng.random() < MIXUP_P:
            other = apply_transforms(self.transforms, *self._sample(rng.randrange(len(self)), seed + 4)[1])
            sample = mixup(sample, other, rng)
        return sample

    def _read(self, idx: int, seed):
        """(index, pixels) of the record, or in training of another one when it cannot be read.

        Each unreadable file is named once; a bounded number of others is tried, in an order
        fixed by the seed (resumable); validation images were all checked before training.
        """
        rng = random.Random(seed)
        for _ in range(self.MAX_RETRIES):
            if idx not in self.unreadable:
                try:
                    return idx, self.pixels.get(idx)
                except ImageReadError as e:
                    if not self.train:
                        raise
                    self.unreadable.add(idx)
                    log.warning("skipping unreadable training image (%d in this worker): %s", len(self.unreadable), e)
                    if len(self.unreadable) == len(self):
                        break
            idx = rng.randrange(len(self))
        raise DataError(f"{self.info.source}: {len(self.unreadable)} unreadable training images and no readable one "
                        f"found in {self.MAX_RETRIES} tries; check that the image files are intact")


def collate(batch):
    """Images and targets stay lists: detection images differ in size."""
    return tuple(zip(*batch))


def source_raws(dcfg: dict, split: str, train: bool, classes: list[str] | None
                ) -> tuple[list[RawImage], DatasetInfo, dict]:
    """The parsed images of one split of the configured data set, any format."""
    fmt, root = dcfg["format"], dcfg["root"]
    which = "train" if train else "val"
    unknown, outside = dcfg["ignore_unknown_classes"], dcfg["allow_outside_root"]
    if fmt != "synthetic" and not os.path.exists(root):
        raise DataError(f"data.root={root} does not exist: check the path (written in a YAML file it is relative to "
                        "that file's folder; on the command line, to the current folder)")
    guard_format(dcfg)
    if fmt == "synthetic":
        from .synthetic import ensure_synthetic

        ensure_synthetic(root, **dcfg["synthetic"])
        fmt, root = "coco", os.path.join(root, "coco")
    if fmt == "voc" and dcfg["val_fraction"] > 0 and not os.path.isfile(split_file_path(root, split)):
        split = "all"  # LabelImg: no split files, the hash decides
    # difficult boxes always stay in validation records: the evaluator ignores them
    return read_raws(fmt, root, split, classes, unknown, dcfg["use_difficult"] or not train, outside,
                     dcfg.get(f"{which}_ann", ""), dcfg.get(f"{which}_images", ""))


def read_split(dcfg: dict, split: str, train: bool, classes: list[str] | None = None, seed: int = 0
               ) -> tuple[list[ImageRecord], DatasetInfo]:
    """Records of one split; for validation pass the training classes so labels line up.

    With `data.val_fraction` both sides come from the train split's images, divided by file
    name hash (or by `data.split_file`); `data.fraction` then subsets the training side.
    """
    which = "train" if train else "val"
    carved = dcfg["val_fraction"] > 0 or dcfg["split_file"]
    classes = classes if classes is not None else dcfg["classes"]
    raws, info, skips = source_raws(dcfg, dcfg["train_split"] if carved else split, train, classes)
    lists = read_split_file(dcfg["split_file"]) if dcfg["split_file"] else None
    raws = select(raws, [relative_name(r.path, info.root) for r in raws], which, val_fraction=dcfg["val_fraction"],
                  fraction=dcfg["fraction"], seed=seed, lists=lists)
    if carved:
        info.source = f"{info.source} ({which} side of the {'split file' if lists else 'hash split'})"
    if not raws:
        raise DataError(f"{info.source}: no images on the {which} side; {_empty_side_hint(dcfg, which, lists)}")
    records = build_records(raws, info, skips, dcfg["max_pixels"], strict=not train,
                            images_key=f"data.{'train' if carved else which}_images")
    return records, info


def _empty_side_hint(dcfg: dict, which: str, lists: dict | None) -> str:
    """What would put images on an empty side of a split: the knob, in the right direction."""
    if lists is not None:
        return f"data.split_file {dcfg['split_file']} lists none of them on that side: fix it, or clear it"
    if which == "val":
        return f"raise data.val_fraction (it is {dcfg['val_fraction']:g}) or give a validation split"
    hints = [f"lower data.val_fraction (it is {dcfg['val_fraction']:g})"] if dcfg["val_fraction"] > 0 else []
    if dcfg["fraction"] < 1:
        hints.append(f"raise data.fraction (it is {dcfg['fraction']:g})")
    return " or ".join(hints) or "check the split's images"


def train_and_val_datasets(d: dict, size: tuple[int, int, int], train_records: list[ImageRecord],
                           info: DatasetInfo, seed: int, ignore_crowd: bool = False
                           ) -> tuple[DetectionDataset, DetectionDataset]:
    """(training, validation) datasets at the model's input `size` (min_size, max_size, tile_size):
    the training records already read (the plan sized the input from them), the validation side
    read here in their label order. `ignore_crowd`: see DetectionDataset."""
    train_ds = dataset_from(d, size, train_records, info, train=True, ignore_crowd=ignore_crowd)
    val_records, val_info = read_split(d, d["val_split"], False, list(info.class_names), seed)
    return train_ds, dataset_from(d, size, val_records, val_info, train=False)


def input_size(mcfg: dict) -> tuple[int, int, int]:
    """(min_size, max_size, tile_size) of the model section: what a dataset is sized by."""
    return mcfg["min_size"], mcfg["max_size"], mcfg["tile_size"]


def get_dataset(cfg: dict, train: bool, class_names: list[str] | None = None,
                size: tuple[int, int, int] | None = None) -> DetectionDataset:
    """One split of `cfg`'s data at `size` (min_size, max_size, tile_size; default: the config's
    model section; (0, 0, 0): the images' own pixels)."""
    d = cfg["data"]
    records, info = read_split(d, d["train_split"] if train else d["val_split"], train, class_names, cfg["seed"])
    return dataset_from(d, size or input_size(cfg["model"]), records, info, train)


def dataset_from(d: dict, size: tuple[int, int, int], records: list[ImageRecord], info: DatasetInfo,
                 train: bool, ignore_crowd: bool = False) -> DetectionDataset:
    """The dataset of records already read (`d`: the data section), at the model's input `size`
    (min_size, max_size, tile_size), with the start-up summary."""
    min_size, max_size, tile = size
    log.info(short_summary(records, info, min_size, max_size, tile))
    if train and not any(len(r.boxes) for r in records):
        raise DataError(f"{info.source}: the training split has no boxes at all (after clean-up); a detector "
                        "cannot learn from it: check the annotations and data.classes")
    return DetectionDataset(records, info, train, min_size, max_size, d["augment"], d["max_pixels"],
                            d["cache"], d["cache_dir"], tile, ignore_crowd)


def build_loader(ds: DetectionDataset, batch_size: int, train: bool, workers: int, pin_memory: bool,
                 seed: int = 0, rank: int = 0, world_size: int = 1, repeat_thresh: float | None = None) -> DataLoader:
    """Training: aspect-ratio grouped, seeded, sharded batches (call `loader.batch_sampler.set_epoch`),
    with `repeat_thresh` images of rare classes repeated (`sampler.repeat_factors`).
    Validation: in order; under DDP each rank takes every world_size-th image."""
    # its own generator: the loader draws worker seeds from it at each epoch, and drawing them
    # from the global RNG instead would shift what the model's samplers draw after a resume
    common = dict(num_workers=workers, collate_fn=collate, pin_memory=pin_memory,
                  persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
    if train:
        groups = aspect_ratio_groups([(r.width, r.height) for r in ds.records])
        repeats = repeat_factors([r.labels for r in ds.records], repeat_thresh) if repeat_thresh else None
        if repeats is not None and rank == 0:
            log.info("data.sampler=repeat_factor (data.repeat_thresh=%g): about %.0f images an epoch from %d; %d "
                     "images of rare classes repeat, up to %.2f times", repeat_thresh, sum(repeats), len(repeats),
                     sum(r > 1 for r in repeats), max(repeats, default=1.0))
        sampler = GroupedBatchSampler(groups, batch_size, seed=seed, rank=rank, world_size=world_size, repeats=repeats)
        return DataLoader(ds, batch_sampler=sampler, **common)
    indices = list(range(rank, len(ds), world_size))
    return DataLoader(ds, batch_size=batch_size, sampler=indices if world_size > 1 else SequentialSampler(ds),
                      **common)
