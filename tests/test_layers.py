"""The layer diagram of docs/ARCHITECTURE.md, enforced: every `paradistill` import (module top and inside
functions alike) goes to the importer's own package or to a lower layer, and the package has no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "paradistill"

# Bottom to top. A top-level module or package of paradistill may import its own package and lower layers only.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("config", "memory", "kinds", "io", "seeding", "cpus", "console"),
    ("checkpoint", "data", "rundir", "bases"),
    ("models", "diffusion"),
    ("sampling",),
    ("distill", "train"),
    ("recipes", "loader"),
    ("loading",),  # checkpoint references and foreign formats: paradistill checkpoints through `loader`
    ("generation",),
    ("eval", "interop", "sharded"),
    ("methods", "plan"),
    ("api", "pipeline"),
    ("quickstart",),
    ("commands",),
    ("cli", "__init__", "__main__"),
]
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """'paradistill.distill.gumbel' -> 'distill' (the top-level module or package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """(imported paradistill module, line) for every import statement in the file, at any depth."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target + "." + a.name for a in node.names] if not node.module else [target]
            else:
                names = [node.module or ""]
            found += [(n, node.lineno) for n in names if n.startswith("paradistill")]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("paradistill")]
    return found


def violations(path: Path, source: str | None = None) -> list[str]:
    me = unit_of(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
    if me not in LAYER_OF:
        return [f"{path}: '{me}' is in no layer of tests/test_layers.py (add it, and to docs/ARCHITECTURE.md)"]
    bad = []
    for target, line in imports_of(path, source):
        other = unit_of(target)
        if other == me or other == "__init__" and target == "paradistill":
            continue
        if other not in LAYER_OF:
            bad.append(f"{path}:{line} imports '{target}', which is in no layer")
        elif LAYER_OF[other] >= LAYER_OF[me]:
            bad.append(f"{path}:{line}: '{me}' (layer {LAYER_OF[me]}) imports '{target}' (layer {LAYER_OF[other]})")
    return bad


def source_files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_import_goes_down():
    bad = [v for f in source_files() for v in violations(f)]
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_an_upward_import_is_caught():
    """The check itself: an import of `api` inside a function of `distill/` (the kind of import that once hid a
    cycle) is reported, as is an import of a module in no layer."""
    path = SRC / "distill" / "gumbel.py"
    upward = path.read_text() + "\n\ndef _late():\n    from .. import api\n    from ..methods.base import train_model\n"
    bad = violations(path, upward)
    assert len(bad) == 2 and "'distill'" in bad[0] and "paradistill.api" in bad[0]
    assert "paradistill.methods.base" in bad[1]
    assert violations(path, "from ..newthing import x\n")[0].endswith("which is in no layer")


def test_no_import_cycles_between_modules():
    graph: dict[str, set[str]] = {}
    modules = {".".join(f.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): f
               for f in source_files()}
    for name, f in modules.items():
        targets = set()
        for target, _ in imports_of(f):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
