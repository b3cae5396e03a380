"""The arrows of the architecture, read from the code's own imports (function-level ones included; imports made
only for type checkers are not arrows): no module imports another that imports it back, the packages form no
cycle, the shared vocabulary imports nothing above it, and runtimes/exporters never import the harness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The shared vocabulary at the bottom: what each of these may import of the harness (nothing else of it).
BOTTOM = {"cells": set(), "errors": set(), "paths": set(), "parts": set(), "policy": set(), "units": {"errors", "paths"}}
# What each part above may not import (parts named by the harness's first-level module or package).
# protocol reads the timing policy (harness.policy) and the engine shapes (runtimes.base); parts and policy are
# at the bottom
FORBIDDEN = {
    "protocol": {"sweep", "cli", "reports", "fleet", "execution", "cell", "api", "measure", "accuracy"},
    "records": {"sweep", "cli", "reports", "fleet", "execution", "cell", "api", "measure", "accuracy"},
    "profiles": {"sweep", "cli", "reports", "fleet", "execution", "cell", "api"},
    "measure": {"sweep", "cli", "reports", "fleet", "execution", "cell", "api"},
    "accuracy": {"sweep", "cli", "reports", "fleet", "execution", "cell", "api"},
    "catalogue": {"sweep", "cli", "reports", "fleet", "execution", "cell", "api"},
    "cell": {"sweep", "cli", "reports", "fleet", "execution", "api"},
    "execution": {"sweep", "cli", "reports", "fleet", "api"},
    "fleet": {"sweep", "cli", "reports", "api"},
    "reports": {"cli", "sweep", "fleet", "execution", "cell", "api"},
}


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that `path` imports anywhere in its code, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for part in node.body for n in ast.walk(part)}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    named: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            named |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    resolved = set()
    for module in named:
        while module and module not in known:
            module = module.rpartition(".")[0]
        if module and module != name:
            resolved.add(module)
    return resolved


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = {**_modules("harness"), **_modules("runtimes"), **_modules("exporters")}
    return {name: _imported(path, name, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "harness" and len(parts) > 1 else parts[0]


def test_no_module_imports_one_that_imports_it_back(graph):
    assert _cycles(graph) == []


def test_the_packages_form_no_cycle(graph):
    packages: dict[str, set[str]] = {}
    for module, imports in graph.items():
        packages.setdefault(_package(module), set()).update(_package(i) for i in imports if _package(i) !=
                                                            _package(module))
    assert _cycles(packages) == []


def _part(module: str) -> str | None:
    """'measure' for harness.measure.timing, 'records' for harness.records; None outside the harness."""
    parts = module.split(".")
    return parts[1] if parts[0] == "harness" and len(parts) > 1 else None


def test_each_part_imports_nothing_above_it(graph):
    wrong = []
    for module, imports in graph.items():
        part = _part(module)
        for target in imports:
            other = _part(target)
            if part is None or other is None or other == part:
                continue
            if (part in BOTTOM and other not in BOTTOM[part]) or other in FORBIDDEN.get(part, ()):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_runtimes_and_exporters_never_import_the_harness(graph):
    assert [f"{m} -> {t}" for m, imports in graph.items() if m.split(".")[0] in ("runtimes", "exporters")
            for t in imports if t.startswith("harness")] == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The checks above can fail: a made-up graph with a cycle and a record importing the CLI is caught."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    made_up = {"harness.records": {"harness.cli.main"}}
    with pytest.raises(AssertionError):
        test_each_part_imports_nothing_above_it(made_up)
