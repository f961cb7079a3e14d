"""Each DVC stage's code dependencies, derived from what its module imports.

A stage runs ``tsepipe STAGE``, whose code is the stage's module (``STAGE_MODULES``) and
every ``pipelines`` module that module imports, at module level or inside a function,
directly or through another (its import closure). ``dvc.yaml`` lists exactly that closure
as the stage's ``pipelines/*.py`` dependencies, so editing any of them (``fit_network`` in
``pipelines/modelling/fitting.py``, say) makes ``dvc status`` report the stage as changed. The CLI
(``tsepipe/cli.py``, above this package) is left out on purpose: it only reads the
options and calls the stage's function, and depending on it would retrain the models
whenever a command's help text changes. The Jinja2 templates a stage renders are code too:
each ``render("NAME.html", ...)`` in its modules, and the templates those extend or
include.

``python -m pipelines.ops.stagedeps`` prints, per stage, the modules ``dvc.yaml`` should list
and says which are missing or extra (exit 1 when any are); ``--write`` first rewrites
those lists in ``dvc.yaml`` (after each stage's closure comment). ``tests/ops/test_stagedeps.py``
fails in the same case.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import yaml

from pipelines.core.fileio import write_text

PACKAGE = "pipelines"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
TEMPLATES = "core/templates"
ROOT = PACKAGE_DIR.parent
# The module of each stage's ``tsepipe`` command (tsepipe/cli.py calls its functions).
STAGE_MODULES = {
    "ingest": "data.ingest",
    "validate": "data.validate",
    "merge": "data.merge",
    "evaluate": "modelling.evaluate",
    "select": "modelling.select",
    "train": "modelling.train",
    "predict": "modelling.predict",
    "drift": "reporting.drift",
    "accuracy": "reporting.accuracy",
    "report": "reporting.front_page",
}
_TEMPLATE_REFERENCE = re.compile(  # {% extends "base.html" %}, include, import, from
    r"""{%-?\s*(?:extends|include|import|from)\s+["']([^"']+)["']""")


def _module_path(name: str) -> Path | None:
    """``pipelines/NAME.py`` for a module of the package (None for anything else)."""
    path = PACKAGE_DIR / f"{name.replace('.', '/')}.py"
    return path if path.is_file() else None


@cache
def _tree(name: str) -> ast.Module:
    """Module ``name``'s parsed source (an empty module for anything not in the package)."""
    path = _module_path(name)
    if path is None:
        return ast.Module(body=[], type_ignores=[])
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for annotations only."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (never run, so no
    dependency: a stage that names ``Params`` in an annotation does not read every
    section)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if _type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


@cache
def direct_imports(name: str) -> frozenset[str]:
    """The ``pipelines`` modules that module ``name`` imports anywhere in its source
    (``from pipelines.core import fileio`` imports ``core.fileio``)."""
    found: set[str] = set()
    for node in _runtime_nodes(_tree(name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{PACKAGE}."):
                    found.add(alias.name.removeprefix(f"{PACKAGE}."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                anchor = name.split(".")[:-node.level]
                base = ".".join(anchor + ([node.module] if node.module else []))
            elif node.module == PACKAGE:
                base = ""
            elif node.module and node.module.startswith(f"{PACKAGE}."):
                base = node.module.removeprefix(f"{PACKAGE}.")
            else:
                continue
            if base:
                found.add(base)
            # from pipelines.core import a, b: each a module where one has that name
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return frozenset(module for module in found if _module_path(module) is not None)


def _packages(module: str) -> set[str]:
    """The packages whose ``__init__`` importing ``module`` runs (``core`` for
    ``core.fileio``), as ``core.__init__``."""
    parts = module.split(".")[:-1]
    return {".".join(parts[:i] + ["__init__"]) for i in range(1, len(parts) + 1)}


def import_closure(name: str) -> set[str]:
    """``name`` and every ``pipelines`` module it imports, transitively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        module = todo.pop()
        if module in seen or _module_path(module) is None:
            continue
        seen.add(module)
        todo.extend(direct_imports(module) - seen)
    return seen


def templates_of(modules: set[str]) -> set[str]:
    """The templates (names in ``pipelines/core/templates``) that ``modules`` render: the first
    argument of each ``render("NAME.html", ...)`` call, and what those templates extend or
    include, transitively; with ``pipelines.core.html``, the header it puts on other
    tools' pages (``add_header``)."""
    folder = PACKAGE_DIR / TEMPLATES
    todo = ["_header.html"] if f"{PACKAGE}.core.html" in modules else []
    for module in modules:
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.Call) and node.args and getattr(
                    node.func, "id", getattr(node.func, "attr", None)) == "render":
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    todo.append(first.value)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen and (folder / name).is_file():
            seen.add(name)
            todo += _TEMPLATE_REFERENCE.findall((folder / name).read_text(encoding="utf-8"))
    return seen


def code_deps(stage: str) -> list[str]:
    """The ``pipelines/*.py`` files and templates a stage's ``dvc.yaml`` entry must list."""
    modules = import_closure(STAGE_MODULES[stage])
    modules |= {"__init__"}.union(*(_packages(m) for m in modules))
    return sorted([f"{PACKAGE}/{m.replace('.', '/')}.py" for m in modules
                   if _module_path(m) is not None]
                  + [f"{PACKAGE}/{TEMPLATES}/{name}" for name in templates_of(modules)])


def _is_code(dep: str) -> bool:
    return dep.startswith(f"{PACKAGE}/") and (dep.endswith(".py") or dep.endswith(".html")
                                              or dep == f"{PACKAGE}/{TEMPLATES}")


def declared_code_deps(dvc_yaml: Path, stage: str) -> list[str]:
    """The code dependencies (modules, templates) that ``dvc.yaml`` lists for ``stage``."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    deps = [d if isinstance(d, str) else next(iter(d))
            for d in stages.get(stage, {}).get("deps", [])]
    return sorted(d for d in deps if _is_code(d))


def disagreements(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, dict[str, list[str]]]:
    """Per stage, the modules ``dvc.yaml`` misses and those it lists but need not."""
    found = {}
    for stage in STAGE_MODULES:
        wanted, declared = set(code_deps(stage)), set(declared_code_deps(dvc_yaml, stage))
        if wanted != declared:
            found[stage] = {"missing": sorted(wanted - declared),
                            "extra": sorted(declared - wanted)}
    return found


CLOSURE_COMMENT = "# the stage's import closure"


def write(dvc_yaml: Path = ROOT / "dvc.yaml") -> None:
    """Rewrite each stage's code lines (modules, templates) in ``dvc.yaml`` to its closure.

    The lines go right after the stage's ``CLOSURE_COMMENT`` line, with its indent; every
    other line (comments, templates, data deps) stays as it is.
    """
    stage_line = re.compile(r"^  ([A-Za-z_][\w-]*):\s*$")
    module_line = re.compile(rf"^\s+- {PACKAGE}/(\S+\.(py|html)|{TEMPLATES})\s*$")
    out, stage = [], None
    for line in dvc_yaml.read_text(encoding="utf-8").splitlines():
        if match := stage_line.match(line):
            stage = match.group(1)
        if stage in STAGE_MODULES and module_line.match(line):
            continue
        out.append(line)
        if stage in STAGE_MODULES and line.strip().startswith(CLOSURE_COMMENT):
            indent = line[:len(line) - len(line.lstrip())]
            out.extend(f"{indent}- {path}" for path in code_deps(stage))
    write_text(dvc_yaml, "\n".join(out) + "\n")


def main(argv: list[str] | None = None) -> int:
    if "--write" in (sys.argv[1:] if argv is None else argv):
        write()
    problems = disagreements()
    for stage in STAGE_MODULES:
        print(f"{stage}:")
        for path in code_deps(stage):
            print(f"  - {path}")
    for stage, found in problems.items():
        for path in found["missing"]:
            print(f"error: dvc.yaml: stage {stage} uses {path} but does not list it",
                  file=sys.stderr)
        for path in found["extra"]:
            print(f"error: dvc.yaml: stage {stage} lists {path} but does not use it",
                  file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
