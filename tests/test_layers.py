"""The package's import graph: layers read bottom-up and no module imports itself back.

Every ``import`` counts, including those inside functions (a lazy import is still a
dependency). The layers follow the data's flow, bottom-up: errors, checks,
machine, similarity -> devices, networks and miners -> the config -> data, codes, losses ->
index, metrics -> runs -> encoder -> training (and export) -> evaluation -> bench and the
service -> the command line -> the slow references of ``dnnh.testing``, which the library never
imports. A module may import its own layer or lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dnnh

ROOT = Path(dnnh.__file__).parent
LAYERS = [
    ["dnnh", "dnnh.atomic", "dnnh.locks", "dnnh.machine", "dnnh.similarity", "dnnh.errors", "dnnh.checks"],
    ["dnnh.devices", "dnnh.nn", "dnnh.miners"],
    ["dnnh.config"],
    ["dnnh.data", "dnnh.codes", "dnnh.losses", "dnnh.baselines"],
    ["dnnh.index", "dnnh.metrics"],
    ["dnnh.runs"],
    ["dnnh.encoder"],
    ["dnnh.training", "dnnh.export"],
    ["dnnh.evaluation"],
    ["dnnh.bench", "dnnh.demo", "dnnh.serve"],
    ["dnnh.cli", "dnnh.__main__"],
    ["dnnh.testing"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "dnnh" and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > best[1]):
                best = (level, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def imports() -> dict[str, set[str]]:
    """{module: the dnnh modules it imports anywhere in its body}."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {t for t in targets if t.split(".")[0] == "dnnh" and t in modules}
        graph[name] = found - {name}
    return graph


def test_every_import_goes_to_the_same_layer_or_below():
    wrong = [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
             for a, targets in imports().items() for b in sorted(targets) if layer_of(b) > layer_of(a)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = imports()
    # A package's __init__ re-exporting its own modules is not a cycle of behaviour: leave those edges out.
    graph = {a: {b for b in targets if not (a + ".").startswith(b + ".") and not b.startswith(a + ".")}
             for a, targets in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_references_share_no_code_with_what_they_check():
    """dnnh.testing recomputes answers from their definitions: it imports no other dnnh module."""
    wrong = [f"{a} imports {b}" for a, targets in imports().items() if a.startswith("dnnh.testing")
             for b in targets if not b.startswith("dnnh.testing")]
    assert not wrong, wrong


#: Test tools: the installed package never imports them (test-only helpers live in tests/support/).
TEST_ONLY = ("pytest", "hypothesis", "fastapi.testclient", "support")


def test_the_package_imports_no_test_tool():
    wrong = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            wrong += [f"{module_name(path)} imports {n}" for n in names
                      if any(n == t or n.startswith(t + ".") for t in TEST_ONLY)]
    assert not wrong, wrong


#: Pairs that may not import each other even within the layer rules: losses get their miner handed in
#: (pytorch-metric-learning's design); training does not reach into the scikit-learn baselines.
FORBIDDEN = [("dnnh.losses", "dnnh.miners"), ("dnnh.training", "dnnh.baselines")]


def test_losses_do_not_import_miners_and_training_not_baselines():
    graph = imports()
    wrong = [f"{a} imports {b}" for a, targets in graph.items() for b in targets for src, dst in FORBIDDEN
             if (a == src or a.startswith(src + ".")) and (b == dst or b.startswith(dst + "."))]
    assert not wrong, wrong
