"""The package's import graph is layered: each subpackage imports only the layers below it, and there is
no import cycle between subpackages.  argparse is confined to the CLI layer."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "analogprop"

#: subpackage (or top-level module) -> the ones it may import.  Top to bottom:
#: cli -> runs / sweep -> config, training -> drivers -> circuit, spice, bench -> model, data -> errors, stop
#: (config reads architectures with the model's parser; config and training share the learning-rate rule of
#: the top-level module rates, which imports only errors)
ALLOWED = {
    "errors": set(),
    "stop": set(),
    "rates": {"errors"},
    "data": {"errors"},
    "model": {"errors"},
    "circuit": {"model", "errors"},
    "spice": {"circuit", "model", "errors"},
    "bench": {"circuit", "model", "errors", "stop"},
    "drivers": {"circuit", "spice", "bench", "model", "errors"},
    "training": {"drivers", "model", "data", "errors", "rates"},
    "config": {"model", "errors", "rates"},
    "runs": {"config", "training", "drivers", "circuit", "spice", "model", "data", "errors", "stop", "rates"},
    "sweep": {"runs", "config", "training", "drivers", "circuit", "model", "data", "errors", "rates"},
    "cli": {"runs", "sweep", "config", "training", "drivers", "circuit", "spice", "bench", "model", "data",
            "errors", "stop", "rates"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path):
    """(absolute analogprop module, line) of every import in ``path``, at any depth (lazy ones too)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG).with_suffix("")
    here = ["analogprop", *rel.parts[:-1]] if rel.name != "__init__" else ["analogprop", *rel.parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            yield mod, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno


MODULES = sorted(p for p in PKG.rglob("*.py"))


def test_every_layer_is_known():
    assert {_layer(p) for p in MODULES} <= set(ALLOWED), "a new subpackage needs its place in ALLOWED"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_go_down(path):
    layer = _layer(path)
    bad = []
    for mod, line in _imports(path):
        if mod == "argparse" and layer != "cli":
            bad.append(f"line {line}: argparse outside the CLI layer")
        if not mod.startswith("analogprop."):
            continue
        target = mod.split(".")[1]
        if target != layer and target not in ALLOWED[layer]:
            bad.append(f"line {line}: {layer} imports {mod}")
    assert not bad, f"{path.relative_to(PKG)}: " + "; ".join(bad)


def test_allowed_graph_has_no_cycle():
    seen, done = set(), set()

    def visit(n, stack):
        assert n not in stack, f"cycle: {' -> '.join([*stack, n])}"
        if n in done:
            return
        for m in ALLOWED[n]:
            visit(m, [*stack, n])
        done.add(n)

    for n in ALLOWED:
        visit(n, [])
