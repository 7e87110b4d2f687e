"""The README's numbers are the code's numbers."""

import re
from pathlib import Path

import pytest

from detection.models.builders import build_model
from detection.models.freeze import count_parameters, freeze_model

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def readme_rows() -> dict[str, list[int]]:
    rows = {}
    for line in README.splitlines():
        m = re.match(r"\| (\w+_mobilenet_v2\w*) \| ([\d, |]+)\|$", line.strip())
        if m:
            rows[m.group(1)] = [int(v.replace(",", "")) for v in m.group(2).split("|")]
    return rows


def test_readme_has_the_table():
    assert set(readme_rows()) == {"fasterrcnn_mobilenet_v2_fpn", "retinanet_mobilenet_v2_fpn", "ssdlite_mobilenet_v2"}


@pytest.mark.parametrize("arch", sorted(readme_rows()))
def test_trainable_counts_match_the_readme(default_cfg, arch):
    model = build_model(dict(default_cfg["model"], arch=arch), ["a", "b", "c"], load_pretrained=False, verbose=False)
    got = []
    for freeze_at in range(6):
        freeze_model(model, freeze_at, "all")
        got.append(count_parameters(model)[0])
    freeze_model(model, 0, "all", "feature_extraction")
    got.append(count_parameters(model)[0])
    assert got == readme_rows()[arch]
