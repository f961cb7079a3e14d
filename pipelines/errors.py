"""Errors for expected failures: bad input files, failed validation, unusable sets.

The CLI prints these as one line each (no traceback) and exits with DATA_ERROR_EXIT.
"""

from __future__ import annotations

from pathlib import Path

DATA_ERROR_EXIT = 3


class DataError(Exception):
    """Input data cannot be used; ``lines`` holds one human-readable reason each."""

    def __init__(self, lines: list[str] | str):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


class ExportReadError(DataError):
    """One export file cannot be read; names the file and, where known, line and column."""

    def __init__(
        self,
        path: Path | str,
        reason: str,
        line: int | None = None,
        column: str | None = None,
    ):
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(format_problem(self.path.name, reason, line=line, column=column))


def format_problem(
    file: str, reason: str, line: int | str | None = None, column: str | None = None
) -> str:
    """One line: ``FILE: line N, column C: reason`` (the parts that are unknown left out)."""
    where = []
    if line is not None:
        where.append(f"line {line}" if isinstance(line, int) else f"lines {line}")
    if column:
        where.append(f"column {column}")
    return f"{file}: {', '.join(where)}: {reason}" if where else f"{file}: {reason}"
