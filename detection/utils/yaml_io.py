"""YAML read safely (`yaml.safe_load` rules), with `1e-3` and `5e-4` read as floats, and
bounded in what it expands to.

Its own module at the bottom of the package: configs, YOLO data.yaml files and run folders
all read YAML, and none of them should import the others for it.

A file's byte size does not bound its value: a few hundred bytes of nested aliases (`&a`,
`*a`, a "billion laughs") load as shared references that every later walk (freezing a config,
saving it, comparing a tune's space) expands in full until memory runs out. So what a file
loads to is counted as if every alias were copied, and a file over MAX_VALUES, or one whose
aliases refer to themselves, is refused as YAML that cannot be read.
"""

from __future__ import annotations

import re

import yaml


class _Loader(yaml.SafeLoader):
    """safe_load that reads `1e-3` and `5e-4` as floats: YAML 1.1, and so PyYAML, wants a dot."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


MAX_VALUES = 100_000  # keys and values, aliases counted as copies; a config holds a few hundred


class YAMLTooLarge(yaml.YAMLError):
    """A YAML whose aliases expand past MAX_VALUES, refer to themselves, or nest too deep."""


def yaml_load(text_or_stream):
    """yaml.safe_load, with exponent floats read as floats, refusing what expands past MAX_VALUES."""
    try:
        data = yaml.load(text_or_stream, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        expanded_size(data, {}, set())
    except RecursionError:
        raise YAMLTooLarge("nested deeper than can be read (a config is a few levels deep)") from None
    return data


def expanded_size(value, seen: dict, open_: set) -> int:
    """How many keys and values `value` holds with every alias copied out: each shared object
    is counted once per place it is used (memoized, so the count itself stays cheap)."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in seen:
        return seen[key]
    if key in open_:
        raise YAMLTooLarge("an alias (*name) refers to the value that holds it: it never ends")
    open_.add(key)
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    total = 1
    for item in items:
        total += expanded_size(item, seen, open_)
        if total > MAX_VALUES:
            raise YAMLTooLarge(f"its aliases (&name / *name) expand to more than {MAX_VALUES:,} values; "
                               "a config or a data.yaml holds a few hundred: write it out without them")
    open_.discard(key)
    seen[key] = total
    return total
