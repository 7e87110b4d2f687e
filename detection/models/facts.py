"""What the toolkit knows of a built detector beyond its modules, as one declared value.

Every builder in `builders.ARCHS` attaches a `ModelFacts` as `model.facts`; freezing,
parameter groups, checkpoints, `model_info` and staged unfreezing read it, and nothing
else is hung on the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelFacts:
    family: str  # frcnn | retinanet | fcos | ssd | ssdlite: decides the head type
    trunk: str  # `model.get_submodule(trunk)` is the pretrained trunk
    stages: list  # [(name, [child paths under trunk])], stem first; model.freeze_at counts these
    neck: list[str]  # the FPN or SSD extra layers, as module paths
    neck_pretrained: bool  # frozen in feature_extraction mode only when their weights came pretrained
    arch: str = ""
    class_names: list[str] = field(default_factory=list)  # the label order of the new heads
    carried_classes: list[str] = field(default_factory=list)  # classes whose head rows came from COCO
    freeze: dict = field(default_factory=dict)  # the freezing policy applied last (checkpoints record it)

    def frozen_stage_names(self) -> list[str]:
        return [name for name, _ in self.stages[: self.freeze.get("freeze_at", 0)]]
