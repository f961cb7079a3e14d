"""Errors for expected failures, each with its own exit status.

The CLI prints these as one ``error:`` line each (no traceback) and exits with the
error's ``exit_code``:

- 3 ``DataError``: the input data cannot be used (bad files, failed validation);
- 4 ``BusyError``: another run holds the project (one run at a time);
- 5 ``FetchError``: the daily feed failed (offline, HTTP errors, a malformed answer);
- 6 ``WriteError``: the project cannot be written (a read-only folder or file system, no
  permission, a full disk); the previous outputs are unchanged;
- 1 ``StageCrash``: a stage failed for a reason other than its input or the place it
  writes (a bug, a damaged model file); its last lines of output are shown.

Any command stopped by a signal ends what it started and exits 128 + the signal's number:
130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP (``pipelines.core.processes``).
A stage's process killed by a signal under ``tsepipe run`` (SIGKILL, the OOM killer) is
not a crash: one line naming the stage, and the signal's code (137 for SIGKILL).
"""

from __future__ import annotations

import re
from pathlib import Path

CRASH_EXIT = 1
DATA_ERROR_EXIT = 3
BUSY_EXIT = 4
FETCH_ERROR_EXIT = 5
WRITE_ERROR_EXIT = 6


class PipelineError(Exception):
    """An expected failure; ``lines`` holds one human-readable reason each."""

    exit_code = CRASH_EXIT

    def __init__(self, lines: list[str] | str):
        self.lines = [clip(line) for line in ([lines] if isinstance(lines, str) else lines)]
        super().__init__("\n".join(self.lines))


class DataError(PipelineError):
    """Input data cannot be used."""

    exit_code = DATA_ERROR_EXIT


class BusyError(PipelineError):
    """Another run is in progress in the same project."""

    exit_code = BUSY_EXIT


class FetchError(PipelineError):
    """The daily feed could not be fetched; ``data/raw`` was left untouched."""

    exit_code = FETCH_ERROR_EXIT


class WriteError(PipelineError):
    """The project (or a file in it) cannot be written: read-only, no permission, disk full."""

    exit_code = WRITE_ERROR_EXIT


class StageCrash(PipelineError):
    """A stage crashed (not bad data): the message carries its last lines."""

    exit_code = CRASH_EXIT


class ExportReadError(DataError):
    """One export file cannot be read; names the file and, where known, line and column."""

    def __init__(
        self,
        path: Path | str,
        reason: str,
        line: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ):
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(format_problem(self.path.name, reason, line=line, column=column,
                                        unit=unit))


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# The longest line (error, warning, a name from input) printed whole: a message that
# carries input text (a YAML bomb's value, a 10 MB field) must not print megabytes.
LINE_LIMIT = 400


def clip(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` if at most ``limit`` characters, else its start, an ellipsis and its length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def printable(text: object, limit: int = LINE_LIMIT) -> str:
    """``text`` on one line: control characters (newlines included) shown as escapes, and
    clipped to ``limit`` characters (``clip``).

    Names that come from the file system or from input files go through this before they
    reach a log line, so that a file named ``x\\nerror: ...`` cannot forge a line.
    """
    text = str(text)
    shown = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                             text[:limit])  # not escaping megabytes to show a few hundred
    if len(text) <= limit and len(shown) <= limit:
        return shown
    return f"{shown[:limit]}... ({len(text)} characters)"


def format_problem(
    file: str, reason: str, line: int | str | None = None, column: str | None = None,
    unit: str = "line",
) -> str:
    """One line: ``FILE: line N, column C: reason`` (the parts that are unknown left out).

    ``unit`` names what ``line`` counts: ``line`` in text exports, ``record`` in JSON ones.
    """
    where = []
    if line is not None:
        where.append(f"{unit} {line}" if isinstance(line, int) else f"{unit}s {line}")
    if column:
        where.append(f"column {column}")
    file = printable(file)
    return f"{file}: {', '.join(where)}: {reason}" if where else f"{file}: {reason}"
