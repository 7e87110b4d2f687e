"""Trunks split into named stages, and FPN backbones built on them.

Stages are cut where the stride doubles, so `freeze_at` means the same thing on every
family. The table in the README ("Freezing") is generated from these specs.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import nn
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .freeze import StageSpec
from .weights import load_state_dict, load_weights_into

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


def imagenet_mobilenet_v2(pretrained: bool, weights_file: str = "") -> nn.Module:
    net = mobilenet_v2(weights=None)
    if pretrained:
        load_weights_into(net, load_state_dict(MobileNet_V2_Weights.IMAGENET1K_V1, weights_file),
                          f"model.weights_file={weights_file}" if weights_file else "ImageNet MobileNetV2")
    return net


def mobilenet_v2_trunk(pretrained: bool, weights_file: str = "") -> nn.Sequential:
    """MobileNetV2 `features` regrouped into named stages, ImageNet weights when asked."""
    net = imagenet_mobilenet_v2(pretrained, weights_file)
    return nn.Sequential(
        OrderedDict((name, net.features[a:b]) for name, (a, b) in MOBILENET_V2_STAGES.items())
    )


def mobilenet_v2_stage_spec() -> StageSpec:
    return [(name, [name]) for name in MOBILENET_V2_STAGES]


def mobilenet_v2_fpn(pretrained: bool, fpn_channels: int, weights_file: str = "", extra_blocks=None,
                     returned: tuple[str, ...] = ("stage2", "stage3", "stage4")) -> BackboneWithFPN:
    """MobileNetV2 with an FPN on the `returned` stages (/8, /16, /32; stage1 adds /4), plus a
    max-pooled /64 level (Faster R-CNN) or, with `extra_blocks=LastLevelP6P7(c, c)`, P6 and P7
    (RetinaNet, FCOS)."""
    trunk = mobilenet_v2_trunk(pretrained, weights_file)
    return BackboneWithFPN(
        trunk,
        return_layers={name: str(i) for i, name in enumerate(returned)},
        in_channels_list=[MOBILENET_V2_CHANNELS[n] for n in returned],
        out_channels=fpn_channels,
        extra_blocks=extra_blocks or LastLevelMaxPool(),
    )


def mobilenet_v3_stage_spec(trunk: nn.Module) -> StageSpec:
    """torchvision's MobileNetV3 detection trunk: children '0'..'N', a new stage at each stride-2 block."""
    return split_at(trunk, lambda b: getattr(b, "_is_cn", False))


class MobileNetV2SSDLite(nn.Module):
    """SSDLite's feature extractor on MobileNetV2, as in the MobileNetV2 paper (section 6.2).

    Maps: the expansion layer of the first /32 block (576 ch at /16), the final 1x1 conv
    (1280 ch at /32), then four depthwise-separable extra layers (512, 256, 256, 128).
    The first /32 block has stride 2 and thus no residual, so cutting it after its
    expansion changes nothing in the computation.
    """

    def __init__(self, pretrained: bool, weights_file: str = ""):
        super().__init__()
        from torchvision.models.detection.ssdlite import _extra_block

        f = imagenet_mobilenet_v2(pretrained, weights_file).features
        self.body = nn.Sequential(OrderedDict(
            stem=f[0:2], stage1=f[2:4], stage2=f[4:7], stage3=f[7:14],
            c4_expand=f[14].conv[0],  # 160 -> 576 at /16: SSDLite's first map
            stage4=nn.Sequential(f[14].conv[1:], *f[15:19]),  # to the 1280-ch /32 map
        ))
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        self.extra = nn.ModuleList([
            _extra_block(1280, 512, norm), _extra_block(512, 256, norm),
            _extra_block(256, 256, norm), _extra_block(256, 128, norm),
        ])
        self.out_channels = [576, 1280, 512, 256, 256, 128]

    def forward(self, x):
        b = self.body
        x = b.stage3(b.stage2(b.stage1(b.stem(x))))
        c4 = b.c4_expand(x)
        x = b.stage4(c4)
        outs = [c4, x]
        for block in self.extra:
            x = block(x)
            outs.append(x)
        return OrderedDict((str(i), o) for i, o in enumerate(outs))


MOBILENET_V2_SSDLITE_STAGES: StageSpec = [
    ("stem", ["stem"]), ("stage1", ["stage1"]), ("stage2", ["stage2"]), ("stage3", ["stage3"]),
    ("stage4", ["c4_expand", "stage4"]),
]


def split_at(seq: nn.Module, starts_stage, prefix: str = "") -> StageSpec:
    """Stages of a sequential trunk: a new stage begins at each child where `starts_stage(child)`."""
    spec: StageSpec = []
    for name, block in seq.named_children():
        if not spec or starts_stage(block):
            spec.append(("stem" if not spec else f"stage{len(spec)}", [prefix + name]))
        else:
            spec[-1][1].append(prefix + name)
    return spec


def vgg_stage_spec(features: nn.Module) -> StageSpec:
    """SSD's VGG16 trunk: conv blocks separated by max-pooling; a stage ends at each pool."""
    spec: StageSpec = []
    current: list[str] = []
    for name, layer in features.named_children():
        current.append(name)
        if isinstance(layer, nn.MaxPool2d):
            spec.append(("stem" if not spec else f"stage{len(spec)}", current))
            current = []
    if current:
        spec.append((f"stage{len(spec)}", current))
    return spec


def ssdlite_mobilenet_v3_stage_spec(features: nn.Module) -> StageSpec:
    """torchvision's SSDlite MobileNetV3 trunk: features.0 (to C4's expansion) split at stride-2 blocks, features.1."""
    spec = split_at(features[0], lambda b: getattr(b, "_is_cn", False), prefix="0.")
    spec.append((f"stage{len(spec)}", ["1"]))
    return spec
