"""YAML configs: `_base_` inheritance, `key.sub=value` overrides, validation.

Every valid key and its default lives in `configs/_base_/default.yaml`; that file is
the schema. A user config only says what differs. Validation (keys, types, choices and
ranges, all here) runs before anything heavy starts so that a typo costs a second, not
an epoch.

Resolved once, then read: `load_config` returns the config frozen (`FrozenDict` /
`FrozenList`: a write raises), and the one way to change a value is `with_values`, which
returns a changed copy. The training plan (`training/plan.py`) is the only place that does,
before the loop starts; what it pins is saved as the run's config.yaml.

Paths: `data.root`, `model.weights_file` and `model.init` written in a YAML file are relative to that
file's folder; given on the command line, to the current folder. The loaded config
holds them absolute, so a run's saved config works from anywhere.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .utils.yaml_io import yaml_load

# an installed wheel carries the configs inside the package; a checkout has them at its top
_PACKAGED = Path(__file__).resolve().parent / "configs"
CONFIG_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "_base_" / "default.yaml"
MISSING = "???"  # a value the user must supply
# resolved against the file that sets them
PATH_KEYS = (("data", "root"), ("data", "split_file"), ("data", "cache_dir"), ("data", "augment"),
             ("model", "weights_file"), ("model", "init"))
# the keys the recipe chooses (training/recipe.py): here because the loader marks the ones a user
# sets (in a config file of their own or on the command line) as recipe.keep, so theirs win; the
# shipped configs' values are starting points the recipe may change
RECIPE_KEYS = ("model.min_size", "model.max_size", "model.tile_size", "model.auto_size", "model.anchors",
               "model.rpn_post_nms_top_n_train", "model.rpn_post_nms_top_n_test", "model.box_batch_size_per_image",
               "model.box_detections_per_img", "model.freeze_at", "data.sampler", "data.repeat_thresh")

__all__ = ["ConfigError", "load_config", "save_config", "parse_overrides", "yaml_load", "validate", "check_values",
           "freeze", "thaw", "with_values"]


# --- a resolved config is read-only ---------------------------------------------------------

def _read_only(self, *args, **kwargs):
    raise TypeError("a loaded config is read-only: make a changed copy with detection.config.with_values(cfg, "
                    "{'section.key': value})")


class FrozenDict(dict):
    """A dict whose writes raise; equal to, and read like, the plain dict it was made from."""

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _read_only

    def __reduce__(self):  # pickling (DataLoader workers, DDP broadcasts) must not write items one by one
        return FrozenDict, (dict(self),)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class FrozenList(list):
    """A list whose writes raise (class names, milestones, stages, anchor sizes)."""

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _read_only
    __iadd__ = __imul__ = _read_only

    def __reduce__(self):
        return FrozenList, (list(self),)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


# YAML writes them as the plain mapping and list they are (user code dumps loaded configs too)
yaml.SafeDumper.add_representer(FrozenDict, yaml.SafeDumper.represent_dict)
yaml.SafeDumper.add_representer(FrozenList, yaml.SafeDumper.represent_list)


def freeze(value):
    """`value` with every mapping and list in it made read-only."""
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value):
    """Plain dicts and lists again: for YAML, checkpoints (`weights_only` loads plain types only)
    and code that builds a new config from pieces."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


def with_values(cfg: dict, changes: dict) -> FrozenDict:
    """A frozen copy of `cfg` with dotted keys set: `with_values(cfg, {"model.min_size": 512})`."""
    out = thaw(cfg)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = out
        for p in parents:
            node = node[p]
        if key not in node:
            raise KeyError(f"with_values: `{dotted}` is not a config key")
        node[key] = thaw(value)
    return freeze(out)


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def merge(base: dict, update: dict) -> dict:
    """Recursively merge `update` into a copy of `base` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml_with_bases(path: str | Path, schema: dict | None = None, _seen: tuple = (),
                         users: set | None = None) -> dict:
    """Load a YAML file, resolving `_base_` (a path or list of paths relative to the file, else
    the name of a shipped config, as `--cfg` finds them). Errors in a base name the chain;
    with `schema`, every file's keys are checked where they are written. `users` collects the
    dotted keys set by the files of the chain that are not shipped configs (the user's own)."""
    path = Path(path).resolve()
    chain = " -> ".join(str(p) for p in _seen + (path,))
    if path in _seen:
        raise ConfigError(f"{path}: `_base_` cycle: {chain}")
    try:
        data = _read_yaml(path)
        if schema is not None:
            try:
                validate({k: v for k, v in data.items() if k != "_base_"}, schema, values=False)
            except ConfigError as e:
                raise ConfigError(f"{path}: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"{e} (through `_base_`: {chain})" if _seen else str(e)) from None
    _resolve_paths(data, path.parent)
    if users is not None and not path.is_relative_to(CONFIG_DIR.resolve()):
        users.update(k for k, _ in flat_items({k: v for k, v in data.items() if k != "_base_"}))
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: `_base_` must be a file name or a list of them, got {bases!r}")
    merged: dict = {}
    for b in bases:
        local = path.parent / b
        found = local if local.exists() else resolve_config_file(b)
        merged = merge(merged, load_yaml_with_bases(found if found.exists() else local, schema, _seen + (path,),
                                                    users))
    return merge(merged, data)


def _resolve_paths(data: dict, folder: Path) -> None:
    """Make the path keys that `data` sets absolute, relative to `folder` (data.augment: when a file)."""
    from .data.transforms import is_pipeline_file

    for section, key in PATH_KEYS:
        node = data.get(section)
        if not (isinstance(node, dict) and isinstance(node.get(key), str) and node[key] not in ("", MISSING)):
            continue
        if (section, key) != ("data", "augment") or is_pipeline_file(node[key]):
            node[key] = os.path.normpath(os.path.join(folder, os.path.expanduser(node[key])))


def parse_overrides(items: list[str]) -> dict:
    """Turn `["train.lr=0.01", "data.classes=[a,b]"]` into a nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        try:
            value = yaml_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override of {p!r}")
        node[parts[-1]] = value
    return out


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, dict) and v:
            keys += _flat_keys(v, full + ".")
    return keys


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or default == MISSING or value is None:
        return True  # free-typed or optional
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(default, dict):
        return isinstance(value, dict)
    return isinstance(value, type(default))


def validate(cfg: dict, schema: dict, values: bool = True, prefix: str = "", root: dict | None = None) -> None:
    """Raise ConfigError on the first unknown key, wrong type or missing value.

    With `values=False` only the keys are checked (used on a partial file or override,
    so the error can name where the bad key came from).
    """
    root = schema if root is None else root
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        if k not in schema:
            # hints search the whole schema, so `lr` can point at `train.lr`
            close = difflib.get_close_matches(full, _flat_keys(root), n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise ConfigError(f"unknown config key `{full}`{hint}")
        d = schema[k]
        if isinstance(d, dict) and d:
            if isinstance(v, dict):
                validate(v, d, values, full + ".", root)
            elif values:
                raise ConfigError(f"config key `{full}` must be a mapping with keys {sorted(d)}, got {v!r}")
        elif not values:
            continue
        elif v == MISSING:
            raise ConfigError(f"config key `{full}` is required; set it in the YAML or as `{full}=...`")
        elif not _type_ok(d, v):
            raise ConfigError(
                f"config key `{full}` must be {type(d).__name__} (default {d!r}), got {type(v).__name__} {v!r}"
            )


def resolve_config_file(path: str | Path) -> Path:
    """`path` as given when it exists; else the shipped config of that name (`voc_frcnn.yaml`,
    `configs/voc_frcnn.yaml`), so an installed package finds its configs from any folder."""
    path = Path(path)
    if path.exists():
        return path
    candidates = [CONFIG_DIR / path] + ([CONFIG_DIR / Path(*path.parts[1:])] if path.parts[:1] == ("configs",) else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return path  # not found anywhere: the loader says so, naming the path as given


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                base: dict | None = None) -> dict:
    """Defaults <- `base` (e.g. a checkpoint's config) <- file (with its `_base_` chain) <- overrides.

    The result is validated against the defaults file. The recipe keys the user's own files and
    the overrides set are added to `recipe.keep` (the recipe leaves them as set).
    """
    schema = load_yaml_with_bases(DEFAULT_CONFIG)
    cfg, users = copy.deepcopy(schema), set()
    if base is not None:  # a checkpoint's config: keys of another version must not lock it out
        cfg = merge(cfg, _known_keys(base, schema, "checkpoint config"))
    if path is not None:
        path = resolve_config_file(path)
        cfg = merge(cfg, load_yaml_with_bases(path, schema, users=users))
    if overrides:
        ov = parse_overrides(overrides) if isinstance(overrides, list) else copy.deepcopy(overrides)
        _resolve_paths(ov, Path.cwd())
        cfg = _merge_checked(cfg, ov, schema, source="command line")
        users.update(k for k, _ in flat_items(ov))
    validate(cfg, schema)
    keep = cfg["recipe"]["keep"]
    if isinstance(keep, list):
        cfg["recipe"]["keep"] = list(dict.fromkeys([*keep, *(k for k in RECIPE_KEYS if k in users)]))
    check_values(cfg)
    return freeze(cfg)


# --- values: every choice and numeric range, in one place -----------------------------------

CHOICES = {  # data.format's choices are data/formats.CHOICES, checked in check_values
    "data.cache": ("none", "ram", "disk"),
    "data.sampler": ("default", "repeat_factor"),
    "model.weights": ("pretrained", "none"),
    "model.freeze_bn": ("all", "frozen_stages"),
    "model.mode": ("fine_tune", "feature_extraction"),
    "model.anchors": ("default", "auto"),
    "train.optimizer": ("sgd", "adamw"),
    "train.scheduler": ("multistep", "cosine"),
    "train.amp": ("none", "bf16", "fp16", "auto"),
    "eval.voc_metric": ("voc07", "voc12"),
    "eval.backend": ("pycocotools", "faster_coco_eval"),
    "eval.calibrate": ("none", "temperature"),
}

# key: (low, high, low inclusive, high inclusive); None is unbounded
RANGES = {
    "seed": (0, None, True, True),
    "data.num_workers": (0, 64, True, True),
    "data.max_pixels": (1, None, True, True),
    "data.val_fraction": (0.0, 1.0, True, False),
    "data.fraction": (0.0, 1.0, False, True),
    "data.repeat_thresh": (0.0, 1.0, False, True),
    "data.synthetic.num_train": (1, None, True, True),
    "data.synthetic.num_val": (1, None, True, True),
    "data.synthetic.image_size": (32, 4096, True, True),
    "model.freeze_at": (0, None, True, True),
    "model.fpn_channels": (1, None, True, True),
    "model.min_size": (32, None, True, True),
    "model.max_size": (32, None, True, True),
    "model.tile_size": (0, None, True, True),
    "model.rpn_pre_nms_top_n_train": (1, None, True, True),
    "model.rpn_post_nms_top_n_train": (1, None, True, True),
    "model.rpn_pre_nms_top_n_test": (1, None, True, True),
    "model.rpn_post_nms_top_n_test": (1, None, True, True),
    "model.box_batch_size_per_image": (1, None, True, True),
    "model.box_detections_per_img": (1, None, True, True),
    "model.box_score_thresh": (0.0, 1.0, True, False),
    "train.epochs": (1, None, True, True),
    "train.time": (0.0, 1e6, True, True),  # minutes; about two years (larger overflows the clock arithmetic)
    "train.batch_size": (1, None, True, True),
    "train.lr": (0.0, None, True, True),
    "train.momentum": (0.0, 1.0, True, False),
    "train.weight_decay": (0.0, None, True, True),
    "train.warmup_iters": (0, None, True, True),
    "train.warmup_factor": (0.0, 1.0, False, True),
    "train.warmup_fraction": (0.0, 1.0, True, False),
    "train.min_lr_ratio": (0.0, 1.0, True, True),
    "train.gamma": (0.0, 1.0, False, True),
    "train.backbone_lr_mult": (0.0, None, True, True),
    "train.norm_weight_decay": (0.0, None, True, True),
    "train.base_batch_size": (1, None, True, True),
    "train.eval_every": (1, None, True, True),
    "train.time_validations": (0, 100, True, True),
    "train.clip_grad_norm": (0.0, None, True, True),
    "train.ema_decay": (0.0, 1.0, False, False),
    "train.ema_tau": (0.0, None, False, True),
    "train.patience": (0, None, True, True),
    "train.max_nonfinite": (1, None, True, True),
    "train.ckpt_every": (0, None, True, True),
    "eval.iou_thresh": (0.0, 1.0, False, False),
    "eval.bootstrap": (0, 100000, True, True),
}
THRESHOLD_RULE = re.compile(r"^(f1|(precision|recall)=(0?\.\d*[1-9]\d*|1(\.0*)?))$")  # parsed in operating_point
STAGE_KEYS = ("epochs", "freeze_at", "mode", "lr", "backbone_lr_mult", "warmup_iters")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _in_range(key: str, v, rng: tuple) -> None:
    low, high, low_in, high_in = rng
    if isinstance(v, float) and not math.isfinite(v):
        raise ConfigError(f"config key `{key}` must be a finite number, got {v}")
    too_low = low is not None and (v < low if low_in else v <= low)
    too_high = high is not None and (v > high if high_in else v >= high)
    if too_low or too_high:
        lo = "" if low is None else f"{'>=' if low_in else '>'} {low}"
        hi = "" if high is None else f"{'<=' if high_in else '<'} {high}"
        raise ConfigError(f"config key `{key}` must be {' and '.join(x for x in (lo, hi) if x)}, got {v}")


def check_values(cfg: dict) -> None:
    """Every choice key and numeric range of a full config; raise ConfigError naming the first bad one."""
    for key, allowed in CHOICES.items():
        v = _get(cfg, key)
        if v == MISSING:
            continue
        if v not in allowed:
            close = difflib.get_close_matches(str(v), allowed, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise ConfigError(f"config key `{key}` must be one of {', '.join(allowed)}, got {v!r}{hint}")
    for key, rng in RANGES.items():
        _in_range(key, _get(cfg, key), rng)
    from .data.formats import CHOICES as FORMATS  # the one table of data formats

    fmt = cfg["data"]["format"]
    if fmt != MISSING and fmt not in FORMATS:
        close = difflib.get_close_matches(str(fmt), FORMATS, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"config key `data.format` must be one of {', '.join(FORMATS)}, got {fmt!r}{hint}")
    from .data.transforms import PRESETS, is_pipeline_file  # the file itself is read when training starts

    aug = cfg["data"]["augment"]
    if aug not in PRESETS and not is_pipeline_file(aug):
        close = difflib.get_close_matches(str(aug), PRESETS, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        raise ConfigError(f"config key `data.augment` must be one of {', '.join(PRESETS)} or an albumentations "
                          f"pipeline file (.yaml, .yml, .json), got {aug!r}{hint}")
    m, t = cfg["model"], cfg["train"]
    _check_model(m)
    unknown = [k for k in cfg["recipe"]["keep"] if k not in RECIPE_KEYS]
    if unknown:
        raise ConfigError(f"config key `recipe.keep` names {', '.join(map(str, unknown))}, which the recipe does not "
                          f"choose; it chooses: {', '.join(RECIPE_KEYS)}")
    if not THRESHOLD_RULE.match(str(cfg["eval"]["threshold"])):
        raise ConfigError(f"config key `eval.threshold` must be f1, precision=P or recall=R (P, R in (0, 1]), got "
                          f"{cfg['eval']['threshold']!r}")
    if not isinstance(cfg["device"], str) or not DEVICE_PATTERN.match(cfg["device"]):
        raise ConfigError(f"config key `device` must be auto, cpu, cuda or cuda:N, got {cfg['device']!r}")
    for i, ms in enumerate(t["milestones"]):
        whole = isinstance(ms, int) and not isinstance(ms, bool) and ms >= 1
        fraction = isinstance(ms, float) and 0 < ms < 1
        if not (whole or fraction):
            raise ConfigError(f"config key `train.milestones[{i}]` must be an epoch number >= 1 or a fraction of the "
                              f"run between 0 and 1, got {ms!r}")
    if not all(isinstance(c, str) and c for c in cfg["data"]["classes"]):
        raise ConfigError(f"config key `data.classes` must list non-empty class names, got {cfg['data']['classes']}")
    _check_stages(t["stages"])


def _check_model(m: dict) -> None:
    """The model section's cross-key rules: a known arch, what auto fitting and tiles need."""
    from .models.builders import ARCHS  # the one list of architectures

    if m["arch"] not in ARCHS:
        close = difflib.get_close_matches(m["arch"], list(ARCHS), n=1)
        hint = f"; did you mean `{close[0]}`?" if close else f"; choose one of: {', '.join(ARCHS)}"
        raise ConfigError(f"config key `model.arch` is {m['arch']!r}, which is unknown{hint}")
    if m["anchors"] == "auto":
        from .models.anchors import check_fittable

        check_fittable(m["arch"])
    if m["stride4_level"] and m["arch"] != "fasterrcnn_mobilenet_v2_fpn":
        raise ConfigError(f"config key `model.stride4_level` adds a /4 level to fasterrcnn_mobilenet_v2_fpn only; "
                          f"{m['arch']} keeps its levels (set model.stride4_level=false)")
    if m["auto_size"]:
        from .models.anchors import check_sizable

        check_sizable(m["arch"])
    if 0 < m["tile_size"] < 32:
        raise ConfigError(f"config key `model.tile_size` must be 0 (whole images) or at least 32 px, got "
                          f"{m['tile_size']}")
    if m["tile_size"] and m["min_size"] != m["max_size"]:
        raise ConfigError(f"config key `model.tile_size` ({m['tile_size']}) feeds square tiles at one size: set "
                          f"model.min_size = model.max_size (got {m['min_size']} and {m['max_size']}), or "
                          "model.tile_size=0 for whole images")
    if m["max_size"] < m["min_size"]:
        raise ConfigError(f"config key `model.max_size` ({m['max_size']}) must be >= model.min_size ({m['min_size']})")
    if m["keep_old_classes"] and not m["init"]:
        raise ConfigError("config key `model.keep_old_classes` keeps the classes of the model a run starts from: set "
                          "model.init=runs/<name> too")


def _check_stages(stages: list) -> None:
    for i, st in enumerate(stages):
        where = f"train.stages[{i}]"
        if not isinstance(st, dict):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(STAGE_KEYS)}, got {st!r}")
        unknown = [k for k in st if k not in STAGE_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(STAGE_KEYS)}")
        if "epochs" not in st:
            raise ConfigError(f"{where} needs `epochs`")
        for k in ("epochs", "freeze_at", "warmup_iters"):
            if k in st and (not isinstance(st[k], int) or isinstance(st[k], bool) or st[k] < (k == "epochs")):
                raise ConfigError(f"{where}.{k} must be an integer >= {int(k == 'epochs')}, got {st[k]!r}")
        for k in ("lr", "backbone_lr_mult"):
            if k in st:
                if not isinstance(st[k], (int, float)) or isinstance(st[k], bool):
                    raise ConfigError(f"{where}.{k} must be a number, got {st[k]!r}")
                _in_range(f"{where}.{k}", st[k], RANGES[f"train.{k}"])
        if "mode" in st and st["mode"] not in CHOICES["model.mode"]:
            raise ConfigError(f"{where}.mode must be one of {', '.join(CHOICES['model.mode'])}, got {st['mode']!r}")


def _known_keys(cfg: dict, schema: dict, source: str, prefix: str = "") -> dict:
    """`cfg` without the keys the schema does not know, each dropped with a warning."""
    import logging

    out = {}
    for k, v in cfg.items():
        if k not in schema:
            logging.getLogger("detection.config").warning(
                "%s: ignoring `%s%s`, which this version does not know", source, prefix, k)
        elif isinstance(v, dict) and isinstance(schema[k], dict) and schema[k]:
            out[k] = _known_keys(v, schema[k], source, f"{prefix}{k}.")
        else:
            out[k] = v
    return out


def _merge_checked(cfg: dict, update: dict, schema: dict, source: str) -> dict:
    try:
        validate(update, schema, values=False)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return merge(cfg, update)


def flat_items(cfg: dict, prefix: str = ""):
    """(dotted key, value) of every leaf of a nested config (lists are leaves)."""
    for k, v in cfg.items():
        if isinstance(v, dict) and v:
            yield from flat_items(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def save_config(cfg: dict, path: str | Path) -> None:
    from .errors import writing

    with writing(path), open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(thaw(cfg), f, sort_keys=False)
