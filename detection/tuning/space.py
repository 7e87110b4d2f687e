"""The search space of tools/tune.py: config keys and the values each may take.

A space is a YAML mapping in the config's own dotted keys (`--space space.yaml`):

    model.freeze_at: [2, 3, 4]                        # one of these
    train.lr: {low: 0.005, high: 0.05, log: true}     # a float in a range (log scale)
    model.fpn_channels: {low: 64, high: 256, step: 32} # an int in a range
    train.lr: {factor: [0.3, 3]}                      # the base config's value times a factor (log scale)
    optimizer:                                        # not a config key: a name for a choice of bundles
      - {train.optimizer: sgd}
      - {train.optimizer: adamw, train.lr: 0.0005, train.weight_decay: 0.05}

Bundles apply first (in the file's order), then plain keys, then factors (of the value after
both). `model.min_size` moves `model.max_size` with it (same ratio, unless the space sets it)
and turns `model.auto_size` off, so the size tried is the size trained. Every value a space
can give is checked like a config before the first trial.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..config import load_config, thaw, with_values
from ..errors import ConfigError
from ..utils.yaml_io import yaml_load

DEFAULT_SPACE = {  # MobileNetV2 detectors: the ImageNet weights that can be had offline fit all three
    "arch": [
        {"model.arch": "fasterrcnn_mobilenet_v2_fpn"},
        {"model.arch": "retinanet_mobilenet_v2_fpn", "model.fpn_channels": 128},
        {"model.arch": "ssdlite_mobilenet_v2", "model.freeze_at": 2, "model.auto_size": False,
         "train.weight_decay": 0.00004},
    ],
    "optimizer": [
        {"train.optimizer": "sgd"},
        {"train.optimizer": "adamw", "train.lr": 0.0005, "train.weight_decay": 0.05},
    ],
    "model.freeze_at": [2, 3, 4],
    "train.lr": {"factor": [0.3, 3.0]},
    "train.backbone_lr_mult": [0.1, 0.3, 1.0],
    "model.min_size": {"factor": [0.6, 1.0], "step": 32},
    "model.rpn_post_nms_top_n_train": [300, 600, 1000],
    "model.box_batch_size_per_image": [128, 256, 512],
    "data.augment": ["light", "default", "heavy"],
    "train.ema": [False, True],
}
MAX_SPACE_BYTES = 1 << 20


def load_space(path: str | None) -> tuple[dict, str]:
    """(space, where it came from): the YAML file, or the default space."""
    if not path:
        return DEFAULT_SPACE, "the default space"
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--space {path}: no such file")
    if p.stat().st_size > MAX_SPACE_BYTES:
        raise ConfigError(f"--space {path}: larger than {MAX_SPACE_BYTES >> 10} KiB; a space is a few lines")
    try:
        space = yaml_load(p.read_text(encoding="utf-8"))
    except Exception as e:  # a YAML error, or bytes that are not text
        raise ConfigError(f"--space {path}: not YAML ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"--space {path}: must be a mapping of config keys to values, e.g. `train.lr: [0.01, 0.02]`")
    return space, str(path)


def kind(key: str, spec) -> str:
    """bundle | choice | factor | range, or one line saying what the entry should look like."""
    if isinstance(spec, list) and spec:
        if all(isinstance(v, dict) and v for v in spec):
            return "bundle"
        if not any(isinstance(v, (dict, list)) for v in spec):
            return "choice"
    if isinstance(spec, dict) and set(spec) <= {"factor", "step"} and _pair(spec.get("factor")):
        return "factor"
    if isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log", "step"} \
            and _pair([spec["low"], spec["high"]]):
        return "range"
    raise ConfigError(f"space entry `{key}`: give a list of values, a list of {{key: value}} bundles, "
                      "{low: L, high: H[, log: true][, step: S]} or {factor: [lo, hi]}")


def _pair(v) -> bool:
    return (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                       and math.isfinite(x) for x in v) and v[0] <= v[1])


def bundle_labels(bundles: list[dict]) -> list[str]:
    """Readable names for a choice of bundles (what trials.csv shows): each bundle's first value."""
    first = [str(next(iter(b.values()))) for b in bundles]
    return [f if first.count(f) == 1 else f"{f}#{i}" for i, f in enumerate(first)]


def check_space(space: dict, base: dict, source: str) -> None:
    """Every value the space can give, on the base config, checked like a config; one line
    naming the space and the entry when one is not."""
    for key, spec in space.items():
        k = kind(key, spec)
        if k != "bundle" and "." not in key:
            raise ConfigError(f"{source}: `{key}` is not a config key (a name like this holds bundles: a list of "
                              "{key: value} mappings)")
        if k == "bundle":
            candidates = list(spec)
        elif k == "choice":
            candidates = [{key: v} for v in spec]
        elif k == "range":
            _check_range(key, spec, source)
            candidates = [{key: spec["low"]}, {key: spec["high"]}]
        else:
            candidates = [{key: _times(base, key, f, spec.get("step"))} for f in spec["factor"]]
        for changes in candidates:
            try:
                resolve(base, changes)
            except (ConfigError, KeyError, TypeError) as e:
                msg = str(e).strip("'\"") if not isinstance(e, KeyError) else f"unknown config key {e}"
                raise ConfigError(f"{source}: entry `{key}` = {changes}: {msg}") from None


def _check_range(key: str, spec: dict, source: str) -> None:
    """What Optuna would refuse only when the first trial draws from it (after the baseline trained)."""
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0
                             or not math.isfinite(step)):
        raise ConfigError(f"{source}: entry `{key}`: step must be a number above 0, got {step!r}")
    ints = all(isinstance(v, int) for v in (spec["low"], spec["high"])) and (step is None or isinstance(step, int))
    if spec.get("log") and not step and spec["low"] < (1 if ints else 1e-300):
        raise ConfigError(f"{source}: entry `{key}`: a log range must start above 0"
                          f"{' (at 1 or more for whole numbers)' if ints else ''}, got low: {spec['low']}; "
                          "give a positive low or drop log: true")


def _times(base: dict, key: str, factor: float, step=None):
    value = _get(base, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"space entry `{key}`: a factor needs a number in the base config, found {value!r}")
    out = value * factor
    if isinstance(value, int):
        s = int(step or 1)
        return max(s, int(round(out / s)) * s)
    return float(out)


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def resolve(base: dict, changes: dict) -> dict:
    """The base config with `changes` (dotted keys), the input size rule applied, checked like
    any config: the config a trial trains."""
    changes = dict(changes)
    if "model.min_size" in changes and "model.max_size" not in changes:
        m = base["model"]
        changes["model.max_size"] = max(changes["model.min_size"],
                                        int(round(changes["model.min_size"] * m["max_size"] / m["min_size"])))
        changes.setdefault("model.auto_size", False)
    return load_config(None, base=thaw(with_values(base, changes)))


def suggest(trial, space: dict, base: dict) -> dict:
    """The changes of one trial, drawn by the trial (Optuna's sampler) from the space."""
    changes: dict = {}
    for key, spec in space.items():
        if kind(key, spec) == "bundle":
            labels = bundle_labels(spec)
            changes.update(spec[labels.index(trial.suggest_categorical(key, labels))])
    for key, spec in space.items():
        k = kind(key, spec)
        if k == "choice":
            changes[key] = trial.suggest_categorical(key, list(spec))
        elif k == "range":
            changes[key] = _suggest_range(trial, key, spec)
    for key, spec in space.items():
        if kind(key, spec) == "factor":
            lo, hi = spec["factor"]
            f = trial.suggest_float(f"{key}*", lo, hi, log=lo > 0)
            changes[key] = _times(with_values(base, changes), key, f, spec.get("step"))
    return changes


def _suggest_range(trial, key: str, spec: dict):
    lo, hi, log, step = spec["low"], spec["high"], bool(spec.get("log")), spec.get("step")
    if isinstance(lo, int) and isinstance(hi, int) and (step is None or isinstance(step, int)):
        return trial.suggest_int(key, lo, hi, step=step or 1, log=log and not step)
    return trial.suggest_float(key, float(lo), float(hi), log=log and not step, step=step)
