"""The shape of the code: imports flow one way (io -> data -> models -> objectives/tasks ->
cli), with no cycles, counting the imports made inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def import_graph() -> dict[str, set[str]]:
    """vidfm module -> the vidfm modules it imports (module level or inside functions)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add(full if full in modules else base)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    assert "vidfm.adapt" in graph["vidfm.models"]  # load_encoder imports it inside the function


def test_no_import_cycles():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    "low, high",
    [
        ("vidfm.errors", "vidfm."),
        ("vidfm.files", "vidfm."),
        ("vidfm.io", "vidfm.data"),
        ("vidfm.io", "vidfm.models"),
        ("vidfm.data", "vidfm.models"),
        ("vidfm.models", "vidfm.objectives"),
        ("vidfm.models", "vidfm.tasks"),
        ("vidfm.models", "vidfm.training"),
        ("vidfm.models", "vidfm.pipelines"),
        ("vidfm.models", "vidfm.retrieval"),
        ("vidfm.models", "vidfm.cli"),
        ("vidfm.shots", "vidfm.retrieval"),
        ("vidfm.pipelines", "vidfm.tasks"),
        ("vidfm.tasks", "vidfm.cli"),
    ],
)
def test_layers_import_downwards_only(low, high):
    """Nothing in ``low`` imports anything in ``high`` (models never reach up to tasks)."""
    graph = import_graph()
    offenders = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m == low or m.startswith(low + ".")
        for t in targets
        if (t == high.rstrip(".") or t.startswith(high if high.endswith(".") else high + ".")) and not (t == low or t.startswith(low + "."))
        and t not in ("vidfm.errors",)
    )
    assert offenders == []
