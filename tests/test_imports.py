"""The import graph of chalicelib/ stays layered: no cycle, function-level imports counted (what it may
not import at all, the tooling in leanlake/, is tests/test_layout.py's).

Imports under ``if TYPE_CHECKING:`` are type-only and don't count. A function-level import of
leanlake's own modules hides a cycle or defers a heavy library; the ones left are listed here
with the reason, so that a new one is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "chalicelib"

#: Function-level imports of own modules that remain, and why.
DEFERRED = {
    # the Powertools logger is imported on first use: `leanlake convert` on local files loads no AWS library
    ("chalicelib.ledger", "chalicelib.log"),
    # the price model is read when a storage class is checked: parse_size (`leanlake convert --max-row-size`) needs none
    ("chalicelib.policy.units", "chalicelib.economics.figures"),
    # pricing a batch loads pyarrow: the app and its handlers import without it (tests/test_app.py), chalice too
    ("chalicelib.actions.lifecycle", "chalicelib.economics.arrays"),
    ("chalicelib.actions.storage_class", "chalicelib.economics.arrays"),
    ("chalicelib.actions.writer", "chalicelib.economics.arrays"),
    # column matching imports pyarrow: matching an ObjectRef (an S3 event's function) loads none
    ("chalicelib.policy.policyset", "chalicelib.policy.matching"),
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported own module, whether the import is inside a function) for every import of ``name``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            targets = [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            resolved = _resolve(target)
            if resolved and resolved != name:
                found.append((resolved, id(node) not in top))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycle_in_chalicelib_counting_function_level_imports():
    edges = {name: {target for target, _ in deps} for name, deps in GRAPH.items()}
    state: dict[str, int] = {}
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


def test_function_level_imports_of_own_modules_are_only_the_known_deferrals():
    found = {(name, target) for name, deps in GRAPH.items() for target, inner in deps if inner}
    assert found <= DEFERRED, sorted(found - DEFERRED)

