"""Issue 21.5: the serve package imports one way, __init__ included; the live index is below it."""

from __future__ import annotations

import ast
from pathlib import Path

import dnnh.serve

SERVE = Path(dnnh.serve.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every dnnh.serve module ``path`` imports, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dnnh.serve"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dnnh.serve"))
    return found


def test_no_import_cycle_in_serve_counting_the_package_init():
    """Before: serve/__init__ imported serve.service (lazily) and serve.service imported serve (the defaults)."""
    graph = {}
    for path in SERVE.glob("*.py"):
        name = "dnnh.serve" if path.stem == "__init__" else f"dnnh.serve.{path.stem}"
        graph[name] = imports_of(path) - {name}

    def reach(start: str, seen: set[str]) -> set[str]:
        for nxt in graph.get(start, ()):
            if nxt not in seen:
                seen.add(nxt)
                reach(nxt, seen)
        return seen

    for module in graph:
        assert module not in reach(module, set()), f"{module} imports itself back"


def test_the_store_keeps_durability_only_and_the_live_index_searches():
    store_source = (SERVE / "store.py").read_text()
    assert "LiveIndex" in store_source and "_delta" not in store_source and "_tomb" not in store_source
    assert ".ndistinct" not in store_source and "search(sample" not in store_source  # no warm-up by side effect
