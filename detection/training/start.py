"""Starting a new run from a trained model of this toolkit (`model.init`): the next round of a
labelling loop, a new data set of the same kind, or more classes.

`model.init` names a run folder (its best.pt, else last.pt) or a checkpoint. The new run builds
the same architecture for its own classes and takes every weight of the old model that is not
per class; the per-class rows are carried for each class whose name matches an old one, and the
log lists which classes were carried and which start new (`models.heads.carry_trained`). What a
model learned at a scale is kept with it: the input size, tiles and anchors come from the old
run's config (a size the user sets wins), so the recipe does not choose them again. The old
model's predicting weights (the EMA's when it kept one) are the ones carried: those scored its
validation. Unlike `resume=`, the new run has its own folder, data, schedule and optimizer; its
config.yaml pins `model.init` as the file it started from, and so does every checkpoint's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import load_checkpoint, predicting_weights
from ..config import load_config
from ..errors import CheckpointError
from ..models.heads import carry_trained
from ..utils.runs import model_file

# model keys the old model's weights were learned with: the modules' shapes (fpn_channels, the
# anchors per place, the /4 level) and what the RPN's and heads' rows mean (the anchors' sizes, the scale)
STRUCTURE = ("fpn_channels", "stride4_level", "anchors", "anchor_sizes", "aspect_ratios")
SCALE = ("min_size", "max_size", "tile_size")


@dataclass(frozen=True)
class Start:
    """The trained model a run starts from: its checkpoint file and contents."""

    file: Path
    ckpt: dict

    @classmethod
    def read(cls, init: str) -> Start:
        """The checkpoint `model.init` names; one line when it is not a checkpoint of this toolkit."""
        if not Path(init).exists():
            raise CheckpointError(f"model.init={init}: not found (a run folder, runs/<name>, or a .pt checkpoint of "
                                  "this toolkit)")
        try:
            file, kind, _ = model_file(init)
        except CheckpointError as e:
            raise CheckpointError(f"model.init={init}: {e}") from None
        if kind != "checkpoint":
            raise CheckpointError(f"model.init={init} is an exported {kind} file, which cannot train: give the run "
                                  "folder it came from (runs/<name>) or its weights/best.pt")
        try:
            ckpt = load_checkpoint(file)
        except CheckpointError as e:
            raise CheckpointError(f"model.init={init}: {e}") from None
        return cls(file, ckpt)

    @property
    def model_cfg(self) -> dict:
        return load_config(base=self.ckpt["config"])["model"]  # through today's defaults, as loading does

    def inherited(self, cfg: dict) -> tuple[dict, list[str]]:
        """({dotted key: value}, log lines): the old model's structure and scale for the new run's
        config (a scale the user set stays theirs), and `model.init` pinned as the file."""
        old, m = self.model_cfg, cfg["model"]
        if old["arch"] != m["arch"]:
            raise CheckpointError(f"model.init={self.file} is a {old['arch']} model and this config builds "
                                  f"{m['arch']}: set model.arch={old['arch']}, or start from a {m['arch']} run")
        keys = list(STRUCTURE)
        users_scale = set(cfg["recipe"]["keep"]) & {f"model.{k}" for k in SCALE}
        if not users_scale:
            keys += [*SCALE, "auto_size"]
        changes = {f"model.{k}": old[k] for k in keys if m[k] != old[k]}
        changes["model.init"] = str(self.file)
        scale = (f"{old['tile_size']}-px tiles fed at {old['min_size']}" if old["tile_size"] else
                 f"{old['min_size']} / {old['max_size']}")
        line = (f"model.init: starting from {self.file} ({old['arch']}, {len(self.ckpt['class_names'])} classes, "
                f"trained at {scale})")
        if users_scale:
            line += f"; the input size is yours ({', '.join(sorted(users_scale))})"
        return changes, [line]

    def load_into(self, model) -> list[str]:
        """Carry the old model's weights into `model` (built for the new run's classes); log lines."""
        carried, new = carry_trained(model, predicting_weights(self.ckpt), list(self.ckpt["class_names"]),
                                     f"model.init={self.file}")
        if not new and len(carried) == len(self.ckpt["class_names"]):
            return [f"model.init: every weight carried (the same {len(carried)} classes)"]
        lines = [f"model.init: every weight carried but the class rows; classes carried: "
                 f"{', '.join(carried) or 'none'}"]
        if new:
            lines.append(f"model.init: new classes (their rows start fresh): {', '.join(new)}")
        return lines
