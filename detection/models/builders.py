"""Detectors by name, with new heads for K classes and the configured freezing.

`build_model(cfg["model"], class_names)` is the one entry point. Each builder returns the
detector and the stage spec of its trunk (`model.backbone.body`), so freezing works the
same for every family. ARCHS is a plain dict: read it to see what exists.
"""

from __future__ import annotations

import logging

from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection import faster_rcnn as tv_frcnn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

from .backbones import RESNET_STAGES, mobilenet_v2_fpn, mobilenet_v2_stage_spec, mobilenet_v3_stage_spec
from .freeze import StageSpec, apply_freeze, count_parameters
from .weights import load_state_dict

log = logging.getLogger("detection.models")


def _is_pretrained(mcfg: dict) -> bool:
    w = str(mcfg["weights"]).lower()
    if w not in ("pretrained", "none"):
        raise ValueError(f"model.weights must be `pretrained` or `none`, got {mcfg['weights']!r}")
    return w == "pretrained"


def _rcnn_kwargs(mcfg: dict) -> dict:
    keys = (
        "min_size", "max_size", "rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train",
        "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_test", "box_batch_size_per_image",
        "box_detections_per_img", "box_score_thresh",
    )
    return {k: mcfg[k] for k in keys}


def fasterrcnn_mobilenet_v2_fpn(mcfg: dict, num_classes: int, load: bool) -> tuple[nn.Module, StageSpec]:
    """Faster R-CNN on ImageNet MobileNetV2 with a narrow FPN: built to train fast on a CPU."""
    ch = mcfg["fpn_channels"]
    backbone = mobilenet_v2_fpn(load, ch, mcfg["weights_file"])
    sizes = tuple((s, int(s * 1.41)) for s in (32, 64, 128, 256))  # two scales per octave
    model = FasterRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes)),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(ch * 7 * 7, 512),
        box_predictor=FastRCNNPredictor(512, num_classes + 1),
        **_rcnn_kwargs(mcfg),
    )
    return model, mobilenet_v2_stage_spec()


def _torchvision_frcnn(builder, weights_enum, stages_of):
    """A torchvision Faster R-CNN with its COCO weights and a new K-class box predictor."""

    def build(mcfg: dict, num_classes: int, load: bool) -> tuple[nn.Module, StageSpec]:
        model = builder(weights=None, weights_backbone=None, num_classes=91, **_rcnn_kwargs(mcfg))
        if load:
            sd = load_state_dict(weights_enum, mcfg["weights_file"])
            missing, unexpected = model.load_state_dict(sd, strict=False)
            # COCO files come from FrozenBatchNorm models: only BN's step counters may be absent
            missing = [k for k in missing if not k.endswith("num_batches_tracked")]
            if missing or unexpected:
                raise ValueError(
                    f"{weights_enum}: weights do not fit {builder.__name__}: missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]}"
                )
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes + 1)
        return model, stages_of(model.backbone.body)

    build.__doc__ = f"torchvision's {builder.__name__} ({weights_enum})"
    return build


ARCHS = {
    "fasterrcnn_mobilenet_v2_fpn": fasterrcnn_mobilenet_v2_fpn,
    "fasterrcnn_resnet50_fpn": _torchvision_frcnn(
        tv_frcnn.fasterrcnn_resnet50_fpn, tv_frcnn.FasterRCNN_ResNet50_FPN_Weights.COCO_V1,
        lambda body: RESNET_STAGES),
    "fasterrcnn_resnet50_fpn_v2": _torchvision_frcnn(
        tv_frcnn.fasterrcnn_resnet50_fpn_v2, tv_frcnn.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
        lambda body: RESNET_STAGES),
    "fasterrcnn_mobilenet_v3_large_fpn": _torchvision_frcnn(
        tv_frcnn.fasterrcnn_mobilenet_v3_large_fpn, tv_frcnn.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1,
        mobilenet_v3_stage_spec),
    "fasterrcnn_mobilenet_v3_large_320_fpn": _torchvision_frcnn(
        tv_frcnn.fasterrcnn_mobilenet_v3_large_320_fpn,
        tv_frcnn.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1, mobilenet_v3_stage_spec),
}


def build_model(mcfg: dict, class_names: list[str], load_pretrained: bool = True,
                verbose: bool = True) -> nn.Module:
    """Build `mcfg["arch"]` for `class_names`, load pretrained weights, apply freezing.

    `load_pretrained=False` builds the same modules without reading weight files: for
    restoring a checkpoint, which brings its own weights. The model carries
    `class_names` and its stage spec (`model.stages`) so checkpoints,
    inference and staged unfreezing need nothing else.
    """
    arch = mcfg["arch"]
    if arch not in ARCHS:
        raise ValueError(f"model.arch={arch!r} is unknown; choose one of: {', '.join(ARCHS)}")
    if not class_names:
        raise ValueError("no classes: set data.classes or give annotations with boxes")
    pretrained = _is_pretrained(mcfg)
    model, stages = ARCHS[arch](mcfg, len(class_names), pretrained and load_pretrained)
    freeze_at, bn_policy = mcfg["freeze_at"], mcfg["freeze_bn"]
    if not pretrained and freeze_at:
        log.info("model.weights=none: nothing is frozen (freezing random weights would only hurt)")
        freeze_at, bn_policy = 0, "frozen_stages"
    apply_freeze(model.backbone.body, stages, freeze_at, bn_policy)
    model.stages = stages
    model.class_names = list(class_names)
    if verbose:
        trainable, frozen = count_parameters(model)
        frozen_names = [name for name, _ in stages[:freeze_at]] or ["nothing"]
        log.info(
            "%s: %.2fM trainable, %.2fM frozen parameters (frozen: %s; BatchNorm frozen: %s)",
            arch, trainable / 1e6, frozen / 1e6, ", ".join(frozen_names), bn_policy,
        )
    return model
