"""The package's shape: imports point down the layers, no import cycle, nothing imports the command line.

Every ``import`` / ``from ... import`` of a detente module is read from the source, at module level
and inside functions alike (only ``if TYPE_CHECKING:`` blocks are left out), so a cycle cannot hide
in a function body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import detente

ROOT = Path(detente.__file__).resolve().parent
LAYERS = [
    ("detente", "detente.errors", "detente.atomic", "detente.progress", "detente.agent_spec"),
    ("detente.games", "detente.credit"),  # credit is pure tensor code: it imports nothing of detente
    ("detente.policies", "detente.models"),
    ("detente.config",),
    ("detente.runs",),
    ("detente.agents", "detente.rollout"),
    ("detente.behaviour",),
    ("detente.train",),
    ("detente.eval", "detente.bench"),
    ("detente.report", "detente.serve"),
    ("detente.cli",),
]
"""Bottom first. A module may import its own layer and those below it, never one above."""


def module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = ("detente", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def imports(path: Path, known: set[str]) -> set[str]:
    """The detente modules ``path`` imports (TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known}
    return found


def layer(module: str) -> int:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    assert best is not None, f"{module} is in no layer of LAYERS"
    return best[0]


GRAPH = {name: imports(path, set(module_names())) - {name} for name, path in module_names().items()}


def test_imports_point_down_the_layers():
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in GRAPH.items() for b in targets if layer(b) > layer(a)]
    assert upward == []


def test_no_module_imports_the_command_line():
    assert [a for a, targets in GRAPH.items() if not a.startswith("detente.cli")
            and any(b == "detente.cli" or b.startswith("detente.cli.") for b in targets)] == []


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from detente.cli import main\n"
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import detente.eval\n")
    assert imports(source, {"detente.cli", "detente.eval"}) == {"detente.cli"}
