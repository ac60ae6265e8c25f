"""The package's shape as a newcomer reads it: its longest functions, and its modules per layer.

    python benchmarks/code_shape.py                 # this checkout
    python benchmarks/code_shape.py --repo /tmp/old # another tree (e.g. a worktree at d995ddc)

Functions are measured by ``ast`` (``end_lineno - lineno + 1``: decorators left out, the
docstring counted), methods and nested functions named by their path (``Class.method``).
Layers are that tree's own ``LAYERS`` in ``tests/test_layers.py``, read as a literal (the tree is
not imported), each module counted in the layer its longest matching prefix names.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def functions(root: Path) -> list[tuple[int, str, str]]:
    """(lines, qualified name, file:line) of every function and method below ``root``."""
    found: list[tuple[int, str, str]] = []
    for path in sorted(root.rglob("*.py")):
        where = str(path.relative_to(root.parent))
        _visit(ast.parse(path.read_text(), filename=str(path)), "", where, found)
    return sorted(found, key=lambda f: (-f[0], f[2]))


def _visit(node: ast.AST, prefix: str, where: str, found: list[tuple[int, str, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + child.name
            found.append((child.end_lineno - child.lineno + 1, name, f"{where}:{child.lineno}"))
            _visit(child, name + ".", where, found)
        elif isinstance(child, ast.ClassDef):
            _visit(child, prefix + child.name + ".", where, found)


def read_layers(test_file: Path) -> list[list[str]]:
    """The ``LAYERS`` literal of a tree's layer test."""
    for node in ast.parse(test_file.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LAYERS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{test_file} has no LAYERS")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer whose longest prefix holds ``module`` (None: in no layer)."""
    best: tuple[int, int] | None = None
    for level, prefixes in enumerate(layers):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "dnnh" and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > best[1]):
                best = (level, len(prefix))
    return None if best is None else best[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1], help="the tree (default this one)")
    p.add_argument("--top", type=int, default=10, help="longest functions shown (default 10)")
    args = p.parse_args(argv)
    root = args.repo / "src" / "dnnh"
    found = functions(root)
    print(f"## Longest functions ({len(found)} in {root})\n")
    print("| lines | function | where |\n|---|---|---|")
    for lines, name, where in found[:args.top]:
        print(f"| {lines} | `{name}` | {where} |")
    layers = read_layers(args.repo / "tests" / "test_layers.py")
    modules = sorted(module_name(path, root) for path in root.rglob("*.py"))
    print("\n## Modules per layer (tests/test_layers.py LAYERS)\n")
    print("| layer | packages and modules | .py modules |\n|---|---|---|")
    for level, prefixes in enumerate(layers):
        count = sum(1 for m in modules if layer_of(m, layers) == level)
        print(f"| {level} | {', '.join(prefixes)} | {count} |")
    outside = [m for m in modules if layer_of(m, layers) is None]
    if outside:
        print(f"\nIn no layer: {', '.join(outside)}")


if __name__ == "__main__":
    main()
