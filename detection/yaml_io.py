"""YAML read safely (`yaml.safe_load` rules), with `1e-3` and `5e-4` read as floats.

Its own module at the bottom of the package: configs, YOLO data.yaml files and run folders
all read YAML, and none of them should import the others for it.
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


def yaml_load(text_or_stream):
    """yaml.safe_load, with exponent floats read as floats."""
    return yaml.load(text_or_stream, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
