"""Where the config travels while `plan.prepare` sets a run up: every call inside `detection/`
that is handed the config or a section of it (a `FrozenDict` argument) is a step of the walk;
a step into another module than the one the config is in "enters a room". The structure rule
(issue 30): each room entered at most twice, lower layers handed plain arguments.

    .venv/bin/python bench/config_walk.py          # the rooms, in the order entered, and the counts
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from detection.config import CONFIG_DIR, FrozenDict, load_config  # noqa: E402

PACKAGE = str(ROOT / "detection")
VERBOSE = "-v" in sys.argv


def carries_config(frame) -> bool:
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return any(isinstance(frame.f_locals.get(n), FrozenDict) for n in names)


def walk(fn, *args) -> tuple[list[str], collections.Counter]:
    """(rooms in the order entered, entries per room) of the config while `fn(*args)` runs."""
    stack: list[tuple[object, str]] = []  # (frame, module) of the config-carrying calls
    entered: list[str] = []

    def profile(frame, event, arg):
        if event not in ("call", "return") or not frame.f_code.co_filename.startswith(PACKAGE):
            return
        if event == "return":
            if stack and stack[-1][0] is frame:
                stack.pop()
            return
        if not carries_config(frame):
            return
        module = str(Path(frame.f_code.co_filename).relative_to(PACKAGE))
        if not stack or stack[-1][1] != module:
            entered.append(module if not VERBOSE else f"{module}:{frame.f_code.co_name}")
        stack.append((frame, module))

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return entered, collections.Counter(entered)


def main() -> None:
    from detection.training import plan

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(CONFIG_DIR / "demo.yaml", [f"data.root={tmp}/data", f"output_dir={tmp}/runs", "name=w",
                                                     "model.weights=none", "data.synthetic.num_train=8",
                                                     "data.synthetic.num_val=4", "train.amp=none"])
        entered, counts = walk(plan.prepare, cfg, None, None, torch.device("cpu"))
    print("rooms in the order the config enters them:")
    print("  " + " -> ".join(entered))
    print(f"{len(entered)} entries into {len(counts)} rooms; the most entered:")
    for module, n in counts.most_common():
        print(f"  {n}  {module}")


if __name__ == "__main__":
    main()
