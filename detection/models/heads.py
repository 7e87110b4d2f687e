"""New class heads for K classes, and carrying COCO class knowledge into them.

Every family predicts K+1 columns: column 0 is background (Faster R-CNN's softmax) or
unused (the sigmoid heads), so labels 1..K mean the same everywhere. The class outputs of
RetinaNet, FCOS, SSD and SSDlite are laid out anchor-major (channel a*C + c), which is
what lets one routine copy class rows for all of them.
"""

from __future__ import annotations

import logging
from functools import partial

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.fcos import FCOSClassificationHead
from torchvision.models.detection.retinanet import RetinaNetClassificationHead
from torchvision.models.detection.ssd import SSDClassificationHead
from torchvision.models.detection.ssdlite import SSDLiteClassificationHead

from ..errors import CheckpointError
from .weights import load_weights_into

log = logging.getLogger("detection.models")

# names users write -> COCO's names (VOC's 20 classes are all in COCO under these)
COCO_SYNONYMS = {
    "aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv",
    "diningtable": "dining table", "pottedplant": "potted plant", "tv monitor": "tv",
}


def coco_label_of(name: str, coco_categories: list[str]) -> int | None:
    """Index of `name` in torchvision's 91-entry COCO category list (0 = background), or None."""
    key = same_name(name)  # the one normalization of a class name, as carry_trained matches them
    key = COCO_SYNONYMS.get(key, COCO_SYNONYMS.get(key.replace(" ", ""), key))
    for i, c in enumerate(coco_categories):
        if i and c.lower() == key:
            return i
    return None


def _copy_rows(old: torch.Tensor, new: torch.Tensor, mapping: dict[int, int], old_c: int, new_c: int,
               per_class: int = 1) -> None:
    """new[.., new_label, ..] = old[.., old_label, ..] along an anchor-major class axis."""
    o = old.reshape(-1, old_c, per_class, *old.shape[1:])
    n = new.view(-1, new_c, per_class, *new.shape[1:])
    for new_label, old_label in mapping.items():
        n[:, new_label] = o[:, old_label]


def _class_convs(family: str, head: nn.Module) -> list[nn.Conv2d]:
    """The conv(s) of a classification head whose outputs are the class logits."""
    if family in ("retinanet", "fcos"):
        return [head.cls_logits]
    if family == "ssd":
        return list(head.module_list)
    if family == "ssdlite":
        return [m[1] for m in head.module_list]  # (depthwise block, 1x1 conv)
    raise ValueError(family)


def replace_heads(model: nn.Module, family: str, num_classes: int, coco_categories: list[str] | None = None,
                  class_names: list[str] | None = None) -> list[str]:
    """Give `model` new heads for `num_classes` (+ background); returns the classes carried over.

    With `coco_categories` (the detector was COCO-pretrained), each new class whose name
    matches a COCO category starts from that category's pretrained rows (logits and, for
    Faster R-CNN, box regression) instead of from random.
    """
    k = num_classes + 1
    if family == "frcnn":
        old = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(old.cls_score.in_features, k)
    elif family == "retinanet":
        old_head = model.head.classification_head
        norm = _norm_of(old_head.conv)
        model.head.classification_head = RetinaNetClassificationHead(
            old_head.cls_logits.in_channels, old_head.num_anchors, k, norm_layer=norm)
    elif family == "fcos":
        old_head = model.head.classification_head
        model.head.classification_head = FCOSClassificationHead(
            old_head.cls_logits.in_channels, old_head.num_anchors, k, norm_layer=_norm_of(old_head.conv))
    elif family in ("ssd", "ssdlite"):
        old_head = model.head.classification_head
        convs = _class_convs(family, old_head)
        if family == "ssd":
            in_ch = [c.in_channels for c in convs]
        else:  # SSDlite: the depthwise block in front of each 1x1 conv sees the feature map
            in_ch = [m[0][0].in_channels for m in old_head.module_list]
        anchors = [c.out_channels // old_head.num_columns for c in convs]
        if family == "ssd":
            model.head.classification_head = SSDClassificationHead(in_ch, anchors, k)
        else:
            norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
            model.head.classification_head = SSDLiteClassificationHead(in_ch, anchors, k, norm)
    else:
        raise ValueError(f"unknown detector family {family!r}")
    if not coco_categories:
        return []
    return _carry_over(model, family, old if family == "frcnn" else old_head, coco_categories, class_names or [])


def _norm_of(convs: nn.Module):
    """The norm layer used inside a torchvision head's conv tower (None, GroupNorm or BatchNorm)."""
    for m in convs.modules():
        if isinstance(m, nn.GroupNorm):
            return partial(nn.GroupNorm, m.num_groups)
        if isinstance(m, nn.BatchNorm2d):
            return nn.BatchNorm2d
    return None


@torch.no_grad()
def _carry_over(model, family, old, coco_categories, class_names) -> list[str]:
    mapping = {}
    for label, name in enumerate(class_names, start=1):
        src = coco_label_of(name, coco_categories)
        if src is not None:
            mapping[label] = src
    carried = [class_names[lab - 1] for lab in mapping]
    if family == "frcnn":
        new = model.roi_heads.box_predictor
        mapping_bg = {0: 0, **mapping}  # background row too
        old_c, new_c = old.cls_score.out_features, new.cls_score.out_features
        _copy_rows(old.cls_score.weight, new.cls_score.weight, mapping_bg, old_c, new_c)
        _copy_rows(old.cls_score.bias, new.cls_score.bias, mapping_bg, old_c, new_c)
        _copy_rows(old.bbox_pred.weight, new.bbox_pred.weight, mapping_bg, old_c, new_c, per_class=4)
        _copy_rows(old.bbox_pred.bias, new.bbox_pred.bias, mapping_bg, old_c, new_c, per_class=4)
    else:
        old_c = old.num_columns if family in ("ssd", "ssdlite") else old.num_classes
        new_c = len(class_names) + 1
        new_convs = _class_convs(family, model.head.classification_head)
        for o, n in zip(_class_convs(family, old), new_convs):
            _copy_rows(o.weight, n.weight, mapping, old_c, new_c)
            _copy_rows(o.bias, n.bias, mapping, old_c, new_c)
    return carried


# --- starting from a trained model of this toolkit (model.init) -------------------------------

def class_rows(model: nn.Module, family: str) -> dict[str, int]:
    """{state-dict key: rows per class} of the parameters laid out by class (background first):
    the only weights that mean something else when the class list changes."""
    if family == "frcnn":
        p = "roi_heads.box_predictor"
        return {f"{p}.cls_score.weight": 1, f"{p}.cls_score.bias": 1, f"{p}.bbox_pred.weight": 4,
                f"{p}.bbox_pred.bias": 4}
    names = {id(m): n for n, m in model.named_modules()}
    return {f"{names[id(c)]}.{p}": 1 for c in _class_convs(family, model.head.classification_head)
            for p in ("weight", "bias")}


def same_name(name: str) -> str:
    """A class name as matched against another list's: case, underscores and runs of spaces ignored."""
    return " ".join(name.strip().lower().replace("_", " ").split())


@torch.no_grad()
def carry_trained(model: nn.Module, state: dict, old_names: list[str], source: str) -> tuple[list[str], list[str]]:
    """Load the weights `state` of a trained detector of classes `old_names` into `model`, the
    same architecture for `model.facts.class_names`: every weight that is not per class as it is,
    and the per-class rows of each class whose name matches an old one (and background's). The
    other classes' rows keep their fresh initialisation. Returns (classes carried, new classes).
    `state` is read as saved: BatchNorm's step counters may be absent or extra (frozen or not)."""
    new_names = model.facts.class_names
    rows = class_rows(model, model.facts.family)
    old_of = {same_name(n): i for i, n in enumerate(old_names, start=1)}
    mapping = {0: 0, **{new: old_of[same_name(n)] for new, n in enumerate(new_names, start=1)
                        if same_name(n) in old_of}}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise CheckpointError(f"{source}: its weights do not fit this model (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}); it was trained with another architecture or model settings")
    merged = {}
    for key, value in own.items():
        if key in rows:
            old = state[key]
            k_old, k_new = len(old_names) + 1, len(new_names) + 1
            per_place = old.shape[0] // k_old, value.shape[0] // k_new  # anchors (x rows per class) a place
            if old.shape[1:] != value.shape[1:] or old.shape[0] % k_old or per_place[0] != per_place[1]:
                raise CheckpointError(f"{source}: its {key} has shape {tuple(old.shape)}, which does not fit "
                                      f"{len(old_names)} classes and this model's {tuple(value.shape)}")
            value = value.clone()
            _copy_rows(old, value, mapping, k_old, k_new, rows[key])
            merged[key] = value
        else:
            merged[key] = state.get(key, value)
    load_weights_into(model, merged, source)
    carried = [new_names[i - 1] for i in mapping if i]
    return carried, [n for n in new_names if n not in carried]
