"""No function in the product code is over 60 lines, unless a comment in it says why.

A function that must be long (a table of cases, say) carries a comment starting
``# long:`` with its reason, within its body.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 60


def long_functions(source: str, limit: int = LIMIT) -> list[str]:
    """``name (N lines)`` for each function over ``limit`` lines without a ``# long:``."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            body = lines[node.lineno - 1:node.end_lineno]
            if length > limit and not any(line.strip().startswith("# long:") for line in body):
                found.append(f"{node.name} ({length} lines)")
    return found


def test_no_function_is_over_60_lines():
    found = [f"{path.relative_to(ROOT)}: {name}"
             for folder in ("pipelines", "flows", "tsepipe")
             for path in sorted((ROOT / folder).rglob("*.py"))
             for name in long_functions(path.read_text(encoding="utf-8"))]
    assert found == []


def test_the_check_counts_and_reads_the_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(4))
    assert long_functions(f"def f():\n{body}\n", limit=4) == ["f (5 lines)"]
    assert long_functions(f"def f():\n    # long: a table\n{body}\n", limit=4) == []
    assert long_functions(f"def f():\n{body}\n", limit=5) == []
