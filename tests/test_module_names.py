"""A module of the project defines each top-level name once. A second `def` of a name replaces the first for every
caller, also for callers above it: a helper added under a name the module already used broke `vbhc demo`
(registry._joined), and ruff's F811 does not see a redefinition once the first was used."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("vbhc", "ui", "views", "benchmarks", "scripts")
SOURCES = [*sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")), ROOT / "streamlit_app.py"]


def _defined_twice(tree: ast.Module) -> list[str]:
    """Top-level functions and classes defined more than once (typing.overload's stubs aside)."""

    def overload(node: ast.AST) -> bool:
        decorators = getattr(node, "decorator_list", [])
        return any("overload" in ast.unparse(d) for d in decorators)

    names = Counter(
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not overload(node)
    )
    return sorted(name for name, count in names.items() if count > 1)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_top_level_function_and_class_is_defined_once(path):
    assert _defined_twice(ast.parse(path.read_text(encoding="utf-8"))) == []


def test_a_name_defined_twice_is_found():
    """The check itself: a second def of a used name, as registry._joined was."""
    source = "def a():\n    return b(1)\n\ndef b(x):\n    return x\n\ndef b(y, z):\n    return y\n"
    assert _defined_twice(ast.parse(source)) == ["b"]
