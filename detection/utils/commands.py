"""The command a user has for each tool, for hints in errors and logs.

An installed package has `det-infer`; a checkout has `python tools/infer.py` (and `det-infer`
too when installed editable). A hint names what the user ran, else what exists here.
"""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = {  # tool: (installed script, file in the checkout's tools/)
    "train": ("det-train", "train_det.py"),
    "eval": ("det-eval", "eval_det.py"),
    "infer": ("det-infer", "infer.py"),
    "export": ("det-export", "export.py"),
    "data_check": ("det-data-check", "data_check.py"),
    "convert": ("det-convert", "convert_dataset.py"),
    "fetch_weights": ("det-fetch-weights", "fetch_weights.py"),
    "model_info": ("det-model-info", "model_info.py"),
    "tune": ("det-tune", "tune.py"),
    "review": ("det-review", "review_labels.py"),
    "benchmark": ("det-benchmark", "benchmark.py"),
}
CHECKOUT_TOOLS = Path(__file__).resolve().parents[2] / "tools"  # detection/utils/ -> the checkout


def command(tool: str) -> str:
    """`det-infer` when the user runs installed scripts (or no checkout is here), else `python tools/infer.py`."""
    script, file = TOOLS[tool]
    ran = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if ran.startswith("det-") or not (CHECKOUT_TOOLS / file).is_file():
        return script
    return f"python tools/{file}"
