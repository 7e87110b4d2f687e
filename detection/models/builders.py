"""Detectors by name, with new heads for K classes and the configured freezing.

`build_model(cfg["model"], class_names)` is the one entry point. ARCHS is a plain dict
from name to builder function: read it to see what exists. Every builder returns the
detector with `model.facts` (`facts.ModelFacts`): its family, where its pretrained trunk,
stages and neck live, its class names and the freezing applied, which the rest of the
toolkit reads.
"""

from __future__ import annotations

import logging
from functools import partial

from torch import nn
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.models.detection import faster_rcnn as tv_frcnn
from torchvision.models.detection import fcos as tv_fcos
from torchvision.models.detection import retinanet as tv_retinanet
from torchvision.models.detection import ssd as tv_ssd
from torchvision.models.detection import ssdlite as tv_ssdlite
from torchvision.models.detection.anchor_utils import AnchorGenerator, DefaultBoxGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from ..errors import CheckpointError, ConfigError, DataError
from .backbones import (
    MOBILENET_V2_SSDLITE_STAGES,
    RESNET_STAGES,
    MobileNetV2SSDLite,
    mobilenet_v2_fpn,
    mobilenet_v2_stage_spec,
    mobilenet_v3_stage_spec,
    ssdlite_mobilenet_v3_stage_spec,
    vgg_stage_spec,
)
from .facts import ModelFacts
from .freeze import apply_policy, count_parameters, freeze_policy
from .heads import replace_heads
from .weights import load_state_dict, load_weights_into

log = logging.getLogger("detection.models")


def _family_kwargs(family: str, mcfg: dict) -> dict:
    """Constructor arguments that the config controls, per family."""
    if family == "frcnn":
        keys = ("min_size", "max_size", "rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train",
                "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test", "box_batch_size_per_image",
                "box_detections_per_img", "box_score_thresh")
        return {k: mcfg[k] for k in keys}
    out = {"score_thresh": mcfg["box_score_thresh"], "detections_per_img": mcfg["box_detections_per_img"]}
    if family in ("retinanet", "fcos"):
        out.update(min_size=mcfg["min_size"], max_size=mcfg["max_size"])
    return out


def _describe(model: nn.Module, family: str, trunk: str, stages, neck: list[str], neck_pretrained: bool,
              carried_classes: list[str] | None = None):
    model.facts = ModelFacts(family, trunk, list(stages), list(neck), neck_pretrained,
                             carried_classes=list(carried_classes or []))
    return model


# --- on the ImageNet MobileNetV2 (the weights that can be had offline) ---------------------

def _anchors(mcfg: dict, sizes: tuple, ratios: tuple) -> AnchorGenerator:
    """The arch's anchors, or model.anchor_sizes / aspect_ratios when set (fitted by anchors=auto)."""
    if mcfg.get("anchor_sizes"):
        if len(mcfg["anchor_sizes"]) != len(sizes) or len({len(s) for s in mcfg["anchor_sizes"]}) != 1:
            raise ConfigError(f"model.anchor_sizes needs {len(sizes)} lists (one per feature level) of equal length, "
                              f"got {mcfg['anchor_sizes']}")
        sizes = tuple(tuple(int(v) for v in level) for level in mcfg["anchor_sizes"])
        ratios = tuple(float(r) for r in mcfg["aspect_ratios"] or ratios)
    return AnchorGenerator(sizes, (tuple(ratios),) * len(sizes))


def fasterrcnn_mobilenet_v2_fpn(mcfg: dict, class_names: list[str], load: bool) -> nn.Module:
    """Faster R-CNN on ImageNet MobileNetV2 with a narrow FPN: built to train fast on a CPU.
    `model.stride4_level` adds a /4 level (P2, from stage1) with 16-px anchors: finer RoIs for
    small objects, at about twice the FPN and RPN work."""
    ch = mcfg["fpn_channels"]
    returned = (("stage1",) if mcfg["stride4_level"] else ()) + ("stage2", "stage3", "stage4")
    backbone = mobilenet_v2_fpn(load, ch, mcfg["weights_file"], returned=returned)
    octaves = ((16,) if mcfg["stride4_level"] else ()) + (32, 64, 128, 256)
    sizes = tuple((s, int(s * 1.41)) for s in octaves)  # two scales per octave
    model = FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=_anchors(mcfg, sizes, (0.5, 1.0, 2.0)),
        # torchvision maps a box to the level floor(4 + log2(sqrt(area) / 224)), clamped to these maps:
        # with the stride-4 level every box under 112 px is pooled from /4, not /8
        box_roi_pool=MultiScaleRoIAlign([str(i) for i in range(len(returned))], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(ch * 7 * 7, 512),
        box_predictor=FastRCNNPredictor(512, len(class_names) + 1),
        **_family_kwargs("frcnn", mcfg),
    )
    return _describe(model, "frcnn", "backbone.body", mobilenet_v2_stage_spec(), ["backbone.fpn"], False)


def fasterrcnn_mobilenet_v2_c5(mcfg: dict, class_names: list[str], load: bool) -> nn.Module:
    """torchvision's tutorial detector: all of MobileNetV2's `features` as one 1280-channel /32 map,
    one anchor level (32..512 px), the default 1024-wide box head. For comparison (bench/)."""
    from collections import OrderedDict

    from .backbones import MOBILENET_V2_STAGES, imagenet_mobilenet_v2

    net = imagenet_mobilenet_v2(load, mcfg["weights_file"])
    backbone = nn.Sequential(OrderedDict(
        [(name, net.features[a:b]) for name, (a, b) in MOBILENET_V2_STAGES.items()] + [("last", net.features[18:])]))
    backbone.out_channels = 1280
    model = FasterRCNN(
        backbone, num_classes=len(class_names) + 1,
        rpn_anchor_generator=AnchorGenerator(((32, 64, 128, 256, 512),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2), **_family_kwargs("frcnn", mcfg))
    stages = [(name, [name]) for name in MOBILENET_V2_STAGES]
    stages[-1] = ("stage4", ["stage4", "last"])
    return _describe(model, "frcnn", "backbone", stages, [], False)


def retinanet_mobilenet_v2_fpn(mcfg: dict, class_names: list[str], load: bool) -> nn.Module:
    """RetinaNet on ImageNet MobileNetV2: FPN P3-P5 plus P6, P7; GroupNorm in the head towers."""
    ch = mcfg["fpn_channels"]
    backbone = mobilenet_v2_fpn(load, ch, mcfg["weights_file"], extra_blocks=LastLevelP6P7(ch, ch))
    sizes = tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in (32, 64, 128, 256, 512))
    anchors = _anchors(mcfg, sizes, (0.5, 1.0, 2.0))
    head = RetinaNetHead(ch, anchors.num_anchors_per_location()[0], len(class_names) + 1,
                         norm_layer=partial(nn.GroupNorm, 16))
    model = RetinaNet(backbone, len(class_names) + 1, anchor_generator=anchors, head=head,
                      **_family_kwargs("retinanet", mcfg))
    return _describe(model, "retinanet", "backbone.body", mobilenet_v2_stage_spec(), ["backbone.fpn"], False)


def ssdlite_mobilenet_v2(mcfg: dict, class_names: list[str], load: bool) -> nn.Module:
    """SSDLite on ImageNet MobileNetV2 (MobileNetV2 paper), square input of model.min_size."""
    backbone = MobileNetV2SSDLite(load, mcfg["weights_file"])
    anchors = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    head = SSDLiteHead(backbone.out_channels, anchors.num_anchors_per_location(), len(class_names) + 1, norm)
    size = mcfg["min_size"]
    model = SSD(backbone, anchors, (size, size), len(class_names) + 1, head=head,
                **_family_kwargs("ssdlite", mcfg))
    return _describe(model, "ssdlite", "backbone.body", MOBILENET_V2_SSDLITE_STAGES, ["backbone.extra"], False)


# --- torchvision's COCO detectors -----------------------------------------------------------

def _torchvision(family, builder, weights_enum, trunk, stages_of, neck):
    """A torchvision detector with its COCO weights and new K-class heads."""

    def build(mcfg: dict, class_names: list[str], load: bool) -> nn.Module:
        model = builder(weights=None, weights_backbone=None, num_classes=91, **_family_kwargs(family, mcfg))
        if load:
            sd = load_state_dict(weights_enum, mcfg["weights_file"])
            source = f"model.weights_file={mcfg['weights_file']}" if mcfg["weights_file"] else str(weights_enum)
            missing, unexpected = load_weights_into(model, sd, source, strict=False)
            # COCO files come from FrozenBatchNorm models: only BN's step counters may be absent
            missing = [k for k in missing if not k.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise CheckpointError(f"{mcfg['weights_file'] or weights_enum}: weights do not fit {builder.__name__}: "
                                 f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        coco = list(weights_enum.meta["categories"]) if load and mcfg["carry_coco_classes"] else None
        carried = replace_heads(model, family, len(class_names), coco, class_names)
        return _describe(model, family, trunk, stages_of(model.get_submodule(trunk)), neck, load, carried)

    build.__doc__ = f"torchvision's {builder.__name__} ({weights_enum})"
    build.builder, build.weights = builder, weights_enum  # for tools and tests
    return build


def _resnet(_):
    return RESNET_STAGES


_FPN = ["backbone.fpn"]
ARCHS = {
    "fasterrcnn_mobilenet_v2_fpn": fasterrcnn_mobilenet_v2_fpn,
    "fasterrcnn_mobilenet_v2_c5": fasterrcnn_mobilenet_v2_c5,
    "retinanet_mobilenet_v2_fpn": retinanet_mobilenet_v2_fpn,
    "ssdlite_mobilenet_v2": ssdlite_mobilenet_v2,
    "fasterrcnn_resnet50_fpn": _torchvision(
        "frcnn", tv_frcnn.fasterrcnn_resnet50_fpn, tv_frcnn.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
        "backbone.body", _resnet, _FPN),
    "fasterrcnn_resnet50_fpn_v2": _torchvision(
        "frcnn", tv_frcnn.fasterrcnn_resnet50_fpn_v2, tv_frcnn.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
        "backbone.body", _resnet, _FPN),
    "fasterrcnn_mobilenet_v3_large_fpn": _torchvision(
        "frcnn", tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1, "backbone.body", mobilenet_v3_stage_spec, _FPN),
    "fasterrcnn_mobilenet_v3_large_320_fpn": _torchvision(
        "frcnn", tv_frcnn.fasterrcnn_mobilenet_v3_large_320_fpn,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1, "backbone.body", mobilenet_v3_stage_spec,
        _FPN),
    "retinanet_resnet50_fpn": _torchvision(
        "retinanet", tv_retinanet.retinanet_resnet50_fpn, tv_retinanet.RetinaNet_ResNet50_FPN_Weights.COCO_V1,
        "backbone.body", _resnet, _FPN),
    "retinanet_resnet50_fpn_v2": _torchvision(
        "retinanet", tv_retinanet.retinanet_resnet50_fpn_v2, tv_retinanet.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1,
        "backbone.body", _resnet, _FPN),
    "fcos_resnet50_fpn": _torchvision(
        "fcos", tv_fcos.fcos_resnet50_fpn, tv_fcos.FCOS_ResNet50_FPN_Weights.COCO_V1, "backbone.body", _resnet, _FPN),
    "ssd300_vgg16": _torchvision(
        "ssd", tv_ssd.ssd300_vgg16, tv_ssd.SSD300_VGG16_Weights.COCO_V1, "backbone.features", vgg_stage_spec,
        ["backbone.extra"]),
    "ssdlite320_mobilenet_v3_large": _torchvision(
        "ssdlite", tv_ssdlite.ssdlite320_mobilenet_v3_large,
        tv_ssdlite.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1, "backbone.features",
        ssdlite_mobilenet_v3_stage_spec, ["backbone.extra"]),
}


def build_model(mcfg: dict, class_names: list[str], load_pretrained: bool = True,
                verbose: bool = True) -> nn.Module:
    """Build `mcfg["arch"]` for `class_names`, load pretrained weights, apply freezing.

    `load_pretrained=False` builds the same modules without reading weight files: for
    restoring a checkpoint, which brings its own weights. The model also carries
    `facts.class_names`, so checkpoints, inference and staged unfreezing need nothing else.
    """
    arch = mcfg["arch"]
    if not class_names:
        raise DataError("no classes: set data.classes or give annotations with boxes")
    pretrained = mcfg["weights"] == "pretrained"
    model = ARCHS[arch](mcfg, list(class_names), pretrained and load_pretrained)
    model.facts.arch, model.facts.class_names = arch, list(class_names)
    if not pretrained and (mcfg["freeze_at"] or mcfg["mode"] != "fine_tune") and verbose:
        log.info("model.weights=none: nothing is frozen (freezing random weights would only hurt)")
    policy = apply_policy(model, freeze_policy(mcfg))
    if verbose:
        trainable, frozen = count_parameters(model)
        frozen_names = model.facts.frozen_stage_names() or ["nothing"]
        log.info("%s: %.2fM trainable, %.2fM frozen parameters (mode %s; frozen stages: %s; BatchNorm frozen: %s)",
                 arch, trainable / 1e6, frozen / 1e6, policy["mode"], ", ".join(frozen_names), policy["freeze_bn"])
        if model.facts.carried_classes:
            log.info("classes starting from their COCO-pretrained rows: %s", ", ".join(model.facts.carried_classes))
    return model
