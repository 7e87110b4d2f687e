"""Trunks split into named stages, and FPN backbones built on them.

Stages are cut where the stride doubles, so `freeze_at` means the same thing on every
family. The table in the README ("Freezing") is generated from these specs.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .freeze import StageSpec
from .weights import load_state_dict

# MobileNetV2 `features` indices per stage: stride and width at the stage's output.
MOBILENET_V2_STAGES = OrderedDict(
    stem=(0, 2),  # conv 3x3 s2 + the t=1 block: /2, 16 ch
    stage1=(2, 4),  # /4, 24 ch
    stage2=(4, 7),  # /8, 32 ch
    stage3=(7, 14),  # /16, 96 ch
    stage4=(14, 18),  # /32, 320 ch (the final 1x1 conv to 1280 is dropped: costly, little gain)
)
MOBILENET_V2_CHANNELS = {"stem": 16, "stage1": 24, "stage2": 32, "stage3": 96, "stage4": 320}

RESNET_STAGES: StageSpec = [
    ("stem", ["conv1", "bn1"]), ("layer1", ["layer1"]), ("layer2", ["layer2"]),
    ("layer3", ["layer3"]), ("layer4", ["layer4"]),
]


def mobilenet_v2_trunk(pretrained: bool, weights_file: str = "") -> nn.Sequential:
    """MobileNetV2 `features` regrouped into named stages, ImageNet weights when asked."""
    net = mobilenet_v2(weights=None)
    if pretrained:
        net.load_state_dict(load_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, weights_file))
    return nn.Sequential(
        OrderedDict((name, net.features[a:b]) for name, (a, b) in MOBILENET_V2_STAGES.items())
    )


def mobilenet_v2_stage_spec() -> StageSpec:
    return [(name, [name]) for name in MOBILENET_V2_STAGES]


def mobilenet_v2_fpn(pretrained: bool, fpn_channels: int, weights_file: str = "",
                     returned: tuple[str, ...] = ("stage2", "stage3", "stage4")) -> BackboneWithFPN:
    """MobileNetV2 with an FPN on /8, /16, /32 plus a max-pooled /64 level."""
    trunk = mobilenet_v2_trunk(pretrained, weights_file)
    return BackboneWithFPN(
        trunk,
        return_layers={name: str(i) for i, name in enumerate(returned)},
        in_channels_list=[MOBILENET_V2_CHANNELS[n] for n in returned],
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )


def mobilenet_v3_stage_spec(trunk: nn.Module) -> StageSpec:
    """torchvision's MobileNetV3 detection trunk: children '0'..'N', a new stage at each stride-2 block."""
    spec: StageSpec = []
    for name, block in trunk.named_children():
        if not spec or getattr(block, "_is_cn", False):
            spec.append((f"stage{len(spec)}" if spec else "stem", [name]))
        else:
            spec[-1][1].append(name)
    return spec
