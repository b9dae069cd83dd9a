"""The package is layered: no module imports one that imports it back, directly or through others.

Imports are read from the source (module level and inside functions alike: a function-local
import that would close a circle is a circle worked around, not removed). Each module also
says its one job in its docstring.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "eva_utils"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))


def sibling_imports(name: str) -> set[str]:
    """The package modules ``name`` imports (``from . import x``, ``from .x import y``), anywhere in it."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found & set(MODULES)


def find_cycle(graph: dict[str, set[str]]):
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle():
    graph = {name: sibling_imports(name) for name in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_layers_sit_where_the_readme_says():
    """Descriptions and sources below the loaders; models and recipes above; nothing imports the CLI."""
    graph = {name: sibling_imports(name) for name in MODULES}
    assert graph["datasets"] == set()
    assert graph["sources"] <= {"datasets", "fsutil"}
    assert "engine" not in graph["data"] and "recipes" not in graph["data"]
    assert "recipes" not in graph["models"]
    assert not any("cli" in deps for deps in graph.values())


@pytest.mark.parametrize("name", MODULES)
def test_every_module_says_its_job(name):
    doc = ast.get_docstring(ast.parse((PACKAGE / f"{name}.py").read_text()))
    assert doc and len(doc.split()) >= 8, f"eva_utils/{name}.py: no docstring saying what the module is for"
