"""The import structure: no cycle between modules, and the packages in layers.

``tsepipe`` (the CLI) may import ``flows`` and ``pipelines``; ``flows`` may import
``pipelines``; ``pipelines`` (the stage code) imports neither. Inside ``pipelines`` the
concern folders are layered too: ``core`` imports no other folder; ``data`` only ``core``;
``modelling`` ``core`` and ``data``; ``reporting`` those three; ``ops`` only ``core``.
Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "flows", "tsepipe")
MAY_IMPORT = {"pipelines": {"pipelines"}, "flows": {"flows", "pipelines"},
              "tsepipe": set(PACKAGES)}
# pipelines' concern folders, each with the folders it may import (besides itself)
CONCERNS = {"core": set(), "data": {"core"}, "modelling": {"core", "data"},
            "reporting": {"core", "data", "modelling"}, "ops": {"core"}}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_the_packages_are_layered():
    wrong = sorted(f"{module} imports {target}" for module, targets in import_graph().items()
                   for target in targets
                   if target.split(".")[0] not in MAY_IMPORT[module.split(".")[0]])
    assert wrong == []


def concern(module: str) -> str | None:
    """``data`` for ``pipelines.data.merge``; None outside the concern folders."""
    parts = module.split(".")
    return parts[1] if parts[0] == "pipelines" and len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in graph.items()
                  for target in targets
                  if concern(module) and concern(target)
                  and concern(target) != concern(module)
                  and concern(target) not in CONCERNS[concern(module)])


def test_every_stage_module_sits_in_a_concern_folder():
    loose = sorted(path.name for path in (ROOT / "pipelines").glob("*.py")
                   if path.name != "__init__.py")
    folders = sorted(path.name for path in (ROOT / "pipelines").iterdir()
                     if (path / "__init__.py").is_file())
    assert loose == [] and folders == sorted(CONCERNS)


def test_the_concerns_are_layered():
    """data -> modelling -> reporting never runs back; core and ops import no concern."""
    assert upward_imports(import_graph()) == []


def test_the_checks_can_fail():
    assert upward_imports({"pipelines.data.merge": {"pipelines.modelling.features"},
                           "pipelines.core.params": {"pipelines.data.fetch"},
                           "pipelines.reporting.drift": {"pipelines.modelling.fitting"}}) == [
        "pipelines.core.params imports pipelines.data.fetch",
        "pipelines.data.merge imports pipelines.modelling.features"]
    graph = {"pipelines.a": {"pipelines.b"}, "pipelines.b": {"pipelines.c"},
             "pipelines.c": {"pipelines.a"}, "pipelines.d": {"pipelines.a"}}
    assert cycles(graph) == [["pipelines.a", "pipelines.b", "pipelines.c"]]
    assert "pipelines.cli" not in import_graph()  # the CLI lives above (tsepipe.cli)
    assert {"pipelines", "flows"} <= {t.split(".")[0] for t in import_graph()["tsepipe.cli"]}


def test_no_flow_module_hides_a_package():
    """Prefect puts a flow file's folder on sys.path: a flows/dvc.py would hide dvc."""
    installed = set(importlib.metadata.packages_distributions()) | set(sys.stdlib_module_names)
    clashes = sorted(path.stem for path in (ROOT / "flows").glob("*.py")
                     if path.stem in installed)
    assert "dvc" in installed and clashes == []


def test_the_documented_layout_names_every_module_of_pipelines():
    development = (ROOT / "docs/development.md").read_text(encoding="utf-8")
    layout = development[development.index("## Layout"):]
    unnamed = sorted(f"{path.parent.name}/{path.stem}"
                     for path in (ROOT / "pipelines").rglob("*.py")
                     if path.stem != "__init__" and path.stem not in layout)
    assert unnamed == []
    assert all(f"{folder}/" in layout for folder in CONCERNS)
