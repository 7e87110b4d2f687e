"""The training recipe fitted to the data (issue 31): rules from the training set's fingerprint
(`data/fingerprint.py`) and the configured input, in the spirit of nnU-Net's and nnDetection's
rule-based recipes, which beat hand tuning across dozens of data sets (our own tuning agreed: at
60 minutes it kept the shipped configuration, so the gains are in what the data says, not in
searching). Each rule says why, with the measurement behind it.

`choose(cfg, fingerprint)` runs once, when a new run starts (`plan.prepare`); what it chooses
is pinned in config.yaml, so a resume, an evaluation and an export read the same values, and a
checkpoint of a tiled model predicts sliced with no flag. A key in `recipe.keep` is left as
configured and the log says so; the loader puts every recipe key of the user's own config file
or command line there, so a key the user sets always wins. The shipped configs' values are the
starting points: their input size is what one training step may cost (the budget per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import RECIPE_KEYS
from ..data.fingerprint import Fingerprint
from ..data.transforms import resize_scale
from ..models.anchors import FITTED_ARCHS, auto_size, smallest_anchor

# The input scale. Small objects must reach the smallest anchor (32 px in every Faster R-CNN and
# RetinaNet here, four times the finest FPN stride): a 16-px box overlaps a 32-px anchor at IoU
# 0.25, under the RPN's 0.3 negative threshold, so it is trained as background. The scale makes
# the 5th percentile of the boxes' shorter sides reach it (model.auto_size's criterion, which
# only shrank), growing up to MAX_GROW times the native size: SAHI and PaddleDetection's
# small-object configs upsample about 2x; beyond that a tile holds too little context.
MAX_GROW = 2.0
# It grows only for boxes the smallest anchor cannot match: a box of side s inside a 32-px anchor
# overlaps it at IoU (s / 32)^2, 0.25 at GROW_BELOW = half the anchor (16 px), under the RPN's 0.3
# negative threshold. (With model.stride4_level the smallest anchor is 16 px, and the bar 8 px.)
# Above that the box is matched already and growing only costs steps. Measured at train.time=10 on
# this 2-core CPU (issue 31): HIT-UAV, 5% of the boxes under 8 px at the configured input, gained
# +0.020 AP [+0.015, +0.024] from 2x tiles; DeepPCB, 5% under 19.5 px, gained nothing from tiles at
# 1.23x (-0.004 [-0.016, +0.007]) and lost whole at 1.33x (AP 0.423 against 0.495: 172 steps, not 253).
GROW_BELOW = 0.5  # of the smallest anchor
# A grown image is trained whole while it costs at most WHOLE_SLACK times the configured
# input's pixels (fewer steps, no slicing at inference); beyond that it is cut into tiles of the
# configured input's area, so a step costs what it did and the budget buys as many steps.
WHOLE_SLACK = 2.0
MIN_TILE = 128  # px at the input: a smaller tile is mostly border for a stride-32 trunk
# Anchors: refitted (model.anchors=auto) when 5% of the boxes fall under the smallest default
# anchor by more than the RPN's matching tolerates (IoU 0.5 between a box and an anchor of
# ANCHOR_SLACK times its side), or 5% over the largest.
ANCHOR_SLACK = 1.41
LARGEST_ANCHOR = 362  # px: torchvision's largest default (256 * sqrt 2) for these archs
MIN_FIT_BOXES = 100  # anchors fitted from fewer boxes follow a handful of them, not the data
# Crowding: Faster R-CNN samples RoIs a quarter positive (torchvision's default); when the 95th
# percentile of boxes an image exceeds the positive slots, objects go unsampled. On the crowded
# underwater set of issue 31 (about 50 boxes an image, 128 RoIs: 32 positive slots) the loss
# was flat from epoch 2. Proposals and detections follow the same count.
POSITIVE_FRACTION = 0.25
MAX_ROIS = 512
PROPOSALS_PER_BOX = 8  # proposals kept per expected object (300 proposals cover 37 objects)
DETECTIONS_PER_BOX = 2  # detections kept per object of the most crowded image
MAX_DETECTIONS = 1000
# Rare classes: a class under fingerprint.RARE_SHARE of the boxes gets images that hold it
# repeated (LVIS's repeat factor sampling: sqrt(t / f) times for a class in a share f < t of the
# images). t = REPEAT_THRESH: classes in under 5% of the images repeat (LVIS's 0.001 is for
# 100,000-image sets, where it makes a class of 100 images rare; 5% of a 900-image set is 45).
REPEAT_THRESH = 0.05
# The trunk: ImageNet's early stages are tuned to colour photographs; grey images (infrared,
# scanned boards, X-ray) are far from them, so one more stage trains there (Kornblith et al. 2019
# and Yosinski et al. 2014: the farther the target domain, the more a fine-tuned trunk must adapt).
# A set is grey when GREY_SHARE of the sampled images are. Measured at train.time=10 on this 2-core
# CPU (issue 31), MobileNetV2 with freeze_at 2 against 3, in as many steps (the stage it frees is
# at /8): DeepPCB (binarized boards) against the recipe off +0.014 AP [+0.004, +0.025] (seed 0) and
# +0.030 [+0.017, +0.041] (seed 1); HIT-UAV (thermal) against the recipe -0.002 [-0.005, +0.005].
# It stops at MIN_FREEZE_AT: the stem and the first stage (edges and blobs any image shares, and
# the costliest to train at their resolution) stay frozen, so SSD's and FCOS's freeze_at 2 stay.
GREY_SHARE = 0.9
MIN_FREEZE_AT = 2


@dataclass(frozen=True)
class Choice:
    """A value the recipe chose, and the statistic behind it (one log line)."""

    key: str
    value: object
    why: str


def choose(cfg: dict, fp: Fingerprint) -> tuple[dict, list[str]]:
    """({dotted key: value} to pin, log lines): every rule's choice, and a line for each key the
    recipe would have chosen but `recipe.keep` holds."""
    if not cfg["recipe"]["fit"] or not fp.boxes:
        return {}, ([] if not cfg["recipe"]["fit"] else ["recipe: no training boxes, nothing fitted"])
    keep = set(cfg["recipe"]["keep"])
    changes, kept, chosen = {}, {}, {}  # why -> [key=value]: keys chosen for one reason share a line

    def decide(choices: list[Choice]) -> None:
        for c in choices:
            if _get(cfg, c.key) == c.value:
                continue
            if c.key in keep or (c.key in SIZE_KEYS and keep & set(SIZE_KEYS)):
                kept.setdefault(c.why, []).append(f"{c.key}={_get(cfg, c.key)!r} (it would choose {c.value!r})")
            else:
                changes[c.key] = c.value
                chosen.setdefault(c.why, []).append(f"{c.key}={c.value!r}")

    # a model.init model keeps the scale and anchors it learned (training/start.py)
    rules = (crowding_rule,) if cfg["model"]["init"] else (scale_rule, anchor_rule, crowding_rule)
    for rule in rules:  # each sees the model the rules before it made
        decide(rule(model_after(cfg["model"], changes), fp))
    decide(rare_class_rule(cfg["data"], fp))
    if not cfg["model"]["init"] and not cfg["train"]["stages"]:  # stages set their own freeze_at
        decide(trunk_rule(cfg["model"], fp))
    lines = [f"recipe: {', '.join(keys)}: {why}" for why, keys in chosen.items()]
    lines += [f"recipe: keeps {', '.join(keys)} as you set it: {why}" for why, keys in kept.items()]
    m = cfg["model"]
    if m["auto_size"] and sizable(m["arch"]):
        if "model.auto_size" in keep:  # your own auto_size: it shrinks from the size chosen, as it always did
            lines.append("recipe: keeps model.auto_size=True as you set it: it may shrink the input the recipe chose")
        else:  # a shipped config's: the input is the recipe's, or the size you set, and auto_size would shrink it
            changes["model.auto_size"] = False
    return changes, lines


SIZE_KEYS = ("model.min_size", "model.max_size", "model.tile_size")  # chosen together: one set keeps all three
assert set(SIZE_KEYS) <= set(RECIPE_KEYS)


def _get(cfg: dict, dotted: str):
    """cfg["section"]["key"] for "section.key", read here (config's own getter would count as the
    config walk entering config.py again, which tests/training/test_plan.py holds to twice)."""
    section, key = dotted.split(".")
    return cfg[section][key]


def sizable(arch: str) -> bool:
    """Archs whose anchors start at anchors.smallest_anchor and whose input is free (SSD's is fixed square)."""
    return arch.startswith(("fasterrcnn_", "retinanet_"))


def scale_rule(m: dict, fp: Fingerprint) -> list[Choice]:
    """min_size, max_size and tile_size: the scale that brings the small boxes to the smallest
    anchor when it cannot match them (or shrinks the input while it still can), whole when
    affordable, in tiles of the configured input's area when not."""
    if not sizable(m["arch"]):
        return []
    short, long = fp.image_short[50], fp.image_long[50]
    base = resize_scale(short, long, m["min_size"], m["max_size"])  # the configured input's scale
    q = fp.box_short[5]  # native px
    if not q > 0:
        return []
    anchor = smallest_anchor(m)
    want = min(MAX_GROW, anchor / q)
    stat = f"5% of the boxes are under {q:.1f} px on their shorter side natively"
    if want > base and q * base >= GROW_BELOW * anchor:  # matched at the configured scale: growing only costs steps
        return []
    if want <= base:  # shrink, as model.auto_size does (never under its floor)
        size, max_size = auto_size(np.array([q * base]), m["min_size"], m["max_size"], anchor)
        why = (f"{stat}, {q * base * size / m['min_size']:.0f} px at min_size {size} (the smallest anchor is "
               f"{anchor} px); fewer pixels, more steps in the budget")
        return [Choice("model.min_size", size, why), Choice("model.max_size", max_size, why),
                Choice("model.tile_size", 0, why)]
    grown = (want / base) ** 2  # pixels against the configured input's
    reach = f"{stat}; at {want:.2f}x native they reach {q * want:.0f} px"
    if grown <= WHOLE_SLACK:
        return _whole(short, long, want, f"{reach}; whole images at {grown:.1f}x the configured input's pixels")
    budget = short * long * base ** 2  # pixels a step of the configured input costs
    side = max(MIN_TILE, int(math.sqrt(budget)) // 32 * 32)
    tile = round(side / want)
    if tile >= long:  # a tile would hold the whole image: train it whole at the grown scale
        return _whole(short, long, want, f"{reach}; a tile of the configured input's area would hold the whole image")
    why = (f"{reach}; a whole image would cost {grown:.1f}x the configured input's pixels, so tiles of {tile} "
           f"native px fed at {side} (the configured input's area: a step costs what it did); predicts sliced")
    return [Choice("model.min_size", side, why), Choice("model.max_size", side, why),
            Choice("model.tile_size", tile, why)]


def _whole(short: float, long: float, scale: float, why: str) -> list[Choice]:
    """Whole images at `scale`, the sides rounded up to a multiple of 32."""
    size = math.ceil(short * scale / 32) * 32
    return [Choice("model.min_size", size, why), Choice("model.max_size", max(size, math.ceil(long * scale / 32) * 32),
                                                        why), Choice("model.tile_size", 0, why)]


def model_after(m: dict, changes: dict) -> dict:
    """The model section `m` with the `model.` keys of `changes` set (a plain dict)."""
    return {**m, **{k.split(".")[1]: v for k, v in changes.items() if k.startswith("model.")}}


def input_scale(m: dict, fp: Fingerprint) -> float:
    """The scale native pixels reach at the model's input (the median image)."""
    if m["tile_size"]:
        return m["min_size"] / m["tile_size"]
    return resize_scale(fp.image_short[50], fp.image_long[50], m["min_size"], m["max_size"])


def anchor_rule(m: dict, fp: Fingerprint) -> list[Choice]:
    """model.anchors=auto when the boxes at the chosen scale fall outside the default anchors."""
    if m["arch"] not in FITTED_ARCHS or m["anchors"] == "auto" or m["anchor_sizes"] or fp.boxes < MIN_FIT_BOXES:
        return []
    s = input_scale(m, fp)
    lo, hi = fp.box_side[5] * s, fp.box_side[95] * s
    if lo * ANCHOR_SLACK >= smallest_anchor(m) and hi <= LARGEST_ANCHOR * ANCHOR_SLACK:
        return []
    return [Choice("model.anchors", "auto", f"at the input the boxes' scale runs {lo:.0f} to {hi:.0f} px (p5 to "
                                            f"p95), outside the default anchors' {smallest_anchor(m)} to "
                                            f"{LARGEST_ANCHOR} px")]


def crowding_rule(m: dict, fp: Fingerprint) -> list[Choice]:
    """RoIs sampled, proposals kept and detections an image, scaled with the crowding."""
    if not m["arch"].startswith("fasterrcnn_"):
        per_image = [("model.box_detections_per_img", DETECTIONS_PER_BOX * fp.boxes_per_image["max"],
                      MAX_DETECTIONS)]
    else:
        n = fp.boxes_per_image["p95"]
        per_image = [("model.box_batch_size_per_image", 2 ** math.ceil(math.log2(max(1.0, n / POSITIVE_FRACTION))),
                      MAX_ROIS),
                     ("model.rpn_post_nms_top_n_train", math.ceil(PROPOSALS_PER_BOX * n), None),
                     ("model.rpn_post_nms_top_n_test", math.ceil(PROPOSALS_PER_BOX * n), None),
                     ("model.box_detections_per_img", DETECTIONS_PER_BOX * fp.boxes_per_image["max"],
                      MAX_DETECTIONS)]
    b = fp.boxes_per_image
    out = []
    for key, need, cap in per_image:
        have = m[key.split(".")[1]]
        value = min(need, cap) if cap else need
        if value > have:  # raised for crowded data, never lowered: the configured value is the budget's
            out.append(Choice(key, int(value), f"boxes an image: p95 {b['p95']:g}, max {b['max']} (the configured "
                                               f"{have} would leave objects out)"))
    return out


def rare_class_rule(d: dict, fp: Fingerprint) -> list[Choice]:
    """Repeat factor sampling when a class is rare."""
    rare = [c for c in fp.rare_classes if fp.class_shares[c] > 0]  # a class without boxes has nothing to repeat
    if not rare or d["sampler"] != "default":
        return []
    why = (f"{len(rare)} rare class(es) ({', '.join(rare[:4])}: "
           f"{', '.join(f'{fp.class_shares[c]:.1%}' for c in rare[:4])} of the boxes)")
    return [Choice("data.sampler", "repeat_factor", why), Choice("data.repeat_thresh", REPEAT_THRESH, why)]


def trunk_rule(m: dict, fp: Fingerprint) -> list[Choice]:
    """One trunk stage fewer frozen on grey images (pretrained weights, fine-tuning, down to MIN_FREEZE_AT)."""
    if (fp.grey_share < GREY_SHARE or m["weights"] != "pretrained" or m["mode"] != "fine_tune"
            or m["freeze_at"] <= MIN_FREEZE_AT):
        return []
    return [Choice("model.freeze_at", m["freeze_at"] - 1,
                   f"{fp.grey_images} of {fp.sampled_images} sampled images are grey, far from ImageNet's colour "
                   f"photos: one more trunk stage trains")]
