"""The layers of docs/architecture.md, kept: imports between packages run one way, no module
imports another that (directly or through others) imports it back, and only the layers that face
Hydra import it.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import
is still a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "typedexp"

# Top to bottom. A module may import from its own package and from any package on a lower layer;
# packages that share a layer do not import each other.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"app"}),
    frozenset({"sweeps"}),
    frozenset({"runs"}),
    frozenset({"specs"}),
    frozenset({"engine"}),
    frozenset({"data", "tracking"}),
    frozenset({"core"}),
)
# The package's own entry points sit above every layer.
TOP = frozenset({"typedexp", "typedexp.__main__"})
# Hydra, OmegaConf and hydra-zen stay in the layers that compose or read Hydra's configs.
HYDRA_LAYERS = frozenset({"app", "sweeps", "runs"})
HYDRA = ("hydra", "omegaconf", "hydra_zen")


def module_name(path: Path) -> str:
    parts = ("typedexp", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, importer: str, is_package: bool, modules: frozenset[str] = frozenset()) -> Iterable[str]:
    """Every module name ``importer`` imports, absolute: ``from x import y`` is ``x.y`` where that
    is one of ``modules``, else ``x``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def import_graph() -> dict[str, set[str]]:
    paths = sorted(SRC.rglob("*.py"))
    names = frozenset(module_name(path) for path in paths)
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = module_name(path)
        targets = imported(ast.parse(path.read_text()), name, path.name == "__init__.py", names)
        graph[name] = {target for target in targets if target in names and target != name}
    return graph


def third_party(path: Path) -> set[str]:
    return {target.split(".")[0] for target in imported(ast.parse(path.read_text()), module_name(path), False)}


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (SRC / parts[1]).is_dir()) else module


def layer(module: str) -> int:
    for index, packages in enumerate(LAYERS):
        if package(module) in packages:
            return index
    raise AssertionError(f"{module} is in no layer of LAYERS: add its package to one (and to docs/architecture.md)")


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    wrong = []
    for importer, targets in sorted(graph.items()):
        if importer in TOP:
            continue
        for target in sorted(targets):
            if target in TOP:
                wrong.append(f"{importer} -> {target} (the public entry point)")
            elif package(importer) != package(target) and layer(target) <= layer(importer):
                wrong.append(f"{importer} -> {target}")
    return wrong


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer() -> None:
    for module in import_graph():
        if module not in TOP:
            layer(module)


def test_imports_run_down_the_layers() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_hydra_stays_in_the_layers_that_face_it() -> None:
    leaking = [
        module_name(path)
        for path in sorted(SRC.rglob("*.py"))
        if module_name(path) not in TOP
        and package(module_name(path)) not in HYDRA_LAYERS
        and third_party(path) & set(HYDRA)
    ]
    assert leaking == []


def test_the_top_level_stays_small() -> None:
    """A folder list a newcomer can read: the packages, the entry points and py.typed."""
    entries = sorted(path.name for path in SRC.iterdir() if path.name != "__pycache__")
    assert len(entries) <= 12, entries


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"typedexp.engine.loop": {"typedexp.runs.layout"}, "typedexp.runs.layout": set()}, ["typedexp.engine.loop -> typedexp.runs.layout"]),
        ({"typedexp.data.tensors": {"typedexp.tracking.base"}, "typedexp.tracking.base": set()}, ["typedexp.data.tensors -> typedexp.tracking.base"]),
        ({"typedexp.core.report": {"typedexp"}}, ["typedexp.core.report -> typedexp (the public entry point)"]),
        ({"typedexp.app.cli": {"typedexp.core.report"}, "typedexp.core.report": set()}, []),
    ],
)
def test_the_layer_check_sees_an_upward_import(graph: dict[str, set[str]], expected: list[str]) -> None:
    assert upward_imports(graph) == expected


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = {"typedexp.app.task": {"typedexp.app.ranks"}, "typedexp.app.ranks": {"typedexp.app.task"}, "typedexp.core.errors": set()}
    assert cycles(graph) == [["typedexp.app.ranks", "typedexp.app.task"]]
