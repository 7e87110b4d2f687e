"""The package's import graph has no cycles, counting the imports inside functions (a cycle held
apart by a late import still ties two concerns together, and breaks when someone moves it)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "detection"


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports_of(name: str, path: Path, known: dict) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_finder_sees_a_cycle_held_by_a_late_import(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_in_the_package():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert graph["detection.data.dataset"]  # the walk sees imports at all
    assert cycles(graph) == []


# Lower layers never import higher ones; train and infer never import each other.
LAYERS = [
    ("ground", ("errors", "utils")),
    ("data", ("data",)),
    ("models", ("models",)),
    ("config", ("config",)),
    ("evaluation and checkpoints", ("evaluation", "checkpoint")),
    ("train and infer", ("training", "inference")),
    ("scoring and deployment checks", ("deploy",)),
    ("tuning and review", ("tuning", "review")),
    ("api and commands", ("api", "cli", "")),
]


def layer_of(module: str) -> int:
    name = module.removeprefix("detection").removeprefix(".")
    for k, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or (p and name.startswith(p + ".")) for p in prefixes):
            return k
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_imports_point_down_the_layers():
    assert layer_of("detection.data.doctor") < layer_of("detection.evaluation.analysis")  # the doctor once did
    known = modules()
    upward = []
    for name, path in known.items():
        for target in imports_of(name, path, known):
            a, b = layer_of(name), layer_of(target)
            sideways = a == b == 5 and name.split(".")[1] != target.split(".")[1]  # training <-> inference
            if b > a or sideways:
                upward.append(f"{name} ({LAYERS[a][0]}) -> {target} ({LAYERS[b][0]})")
    assert upward == []


def test_loading_reads_export_metadata_without_the_exporter():
    """The model loader and the exporter share one metadata module; loading a file needs no export code."""
    known = modules()
    loading = imports_of("detection.inference.loading", known["detection.inference.loading"], known)
    export = imports_of("detection.inference.export", known["detection.inference.export"], known)
    assert "detection.inference.export" not in loading
    assert "detection.inference.metadata" in loading and "detection.inference.metadata" in export
