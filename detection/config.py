"""YAML configs: `_base_` inheritance, `key.sub=value` overrides, validation.

Every valid key and its default lives in `configs/_base_/default.yaml`; that file is
the schema. A user config only says what differs. Validation runs before anything
heavy starts so that a typo costs a second, not an epoch.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "_base_" / "default.yaml"
MISSING = "???"  # a value the user must supply


class ConfigError(ValueError):
    """A config problem, with a message that names the key and the fix."""


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
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


def load_yaml_with_bases(path: str | Path, _seen: tuple = ()) -> dict:
    """Load a YAML file, resolving `_base_` (a path or list of paths relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: `_base_` cycle: {' -> '.join(str(p) for p in _seen + (path,))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for b in bases:
        merged = merge(merged, load_yaml_with_bases(path.parent / b, _seen + (path,)))
    return merge(merged, data)


def parse_overrides(items: list[str]) -> dict:
    """Turn `["train.lr=0.01", "data.classes=[a,b]"]` into a nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
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


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None,
                base: dict | None = None) -> dict:
    """Defaults <- `base` (e.g. a checkpoint's config) <- file (with its `_base_` chain) <- overrides.

    The result is validated against the defaults file.
    """
    schema = load_yaml_with_bases(DEFAULT_CONFIG)
    cfg = copy.deepcopy(schema)
    if base is not None:  # a checkpoint's config: keys of another version must not lock it out
        cfg = merge(cfg, _known_keys(base, schema, "checkpoint config"))
    if path is not None:
        cfg = _merge_checked(cfg, load_yaml_with_bases(path), schema, source=str(path))
    if overrides:
        ov = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        cfg = _merge_checked(cfg, ov, schema, source="command line")
    validate(cfg, schema)
    return cfg


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


def save_config(cfg: dict, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
