"""Ingest: every export file in the raw folder becomes a typed tidy Parquet table.

Files are taken in name order (never in whatever order the file system lists them), their
patterns matched case-insensitively (``.CSV`` is read like ``.csv``). A file that cannot
be read, or has no rows, is recorded with its reason and left for validation to
quarantine; the raw files themselves are only ever read. Some files are refused before
they are opened, each with a warning:

- a symbolic link (it may point anywhere: its target is never read);
- a name that cannot be an index id: one holding the column separator ``__``, bytes that
  are not UTF-8, or control characters such as a newline, or any stem that is not an ISIN
  or up to 40 letters, digits, ``_``, ``-`` and ``.`` (``data.INDEX_ID_PATTERN``: no
  space, quote or markup reaches a table, a column or a page);
- two files of one index (``same_index``): a browser's second download ``X (1).csv``
  beside ``X.csv`` (the copy is refused, ``X.csv`` is read), or one stem under two
  extensions or cases, ``X.csv`` and ``X.json`` (both refused: which is right is not ours
  to guess);
- a file larger than ``max_file_mb``, or of more than ``max_rows`` rows (counted before
  the rows are parsed).

A file whose rows run newest first (some exports do) is read oldest first.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipelines.core.columns import COLUMN_SEPARATOR
from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import atomic_folder, file_md5, leftover_staging, write_json
from pipelines.core.params.data import INDEX_ID_PATTERN
from pipelines.core.params.ingest import IngestSection
from pipelines.data.formats import EmptyExportError, ExportReadError, TooManyRowsError, read_export

log = logging.getLogger(__name__)

INDEX_ID = re.compile(INDEX_ID_PATTERN)
BROWSER_COPY = re.compile(r"(?P<stem>.+) \((?P<copy>\d+)\)")  # "X (1)": a second download of X


def display_name(name: str) -> str:
    """A file name as it can be shown and stored: undecodable bytes and controls escaped."""
    raw = os.fsencode(name)
    return printable(raw.decode("utf-8", errors="backslashreplace"))


def refusal(path: Path, max_file_mb: float) -> tuple[str, str] | None:
    """(status, reason) when ``path`` must not be read, else None; never opens the file."""
    name = path.name
    if path.is_symlink():
        return "refused", ("a symbolic link: refused, never read (put the file itself in the "
                           "raw folder)")
    if display_name(name) != name:
        return "refused", ("a file name with control characters or bytes that are not "
                           "UTF-8: refused (rename the file)")
    if COLUMN_SEPARATOR in path.stem:
        return "refused", (f"a file name holding {COLUMN_SEPARATOR!r}, the dataset's column "
                           "separator: refused (rename the file)")
    if not INDEX_ID.match(path.stem):
        return "refused", ("a file name that is not an index id (an ISIN, or up to 40 letters, "
                           "digits, '_', '-' and '.'; no space, quote or markup): refused "
                           "(rename the file)")
    size = path.stat().st_size
    if size > max_file_mb * 1e6:
        return "too large", (f"{size / 1e6:.1f} MB, larger than ingest.max_file_mb "
                             f"({max_file_mb:g} MB): not read")
    return None


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a file name matches any pattern, ignoring case (``*.csv`` takes ``X.CSV``)."""
    return any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in patterns)


def export_files(raw_dir: Path | str, patterns: Iterable[str]) -> list[Path]:
    """The export files in ``raw_dir`` matching any of ``patterns``, sorted by name.

    Symbolic links are listed too (ingest refuses them, naming each); folders are not.
    """
    raw_dir = Path(raw_dir)
    patterns = list(patterns)
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir}: the raw folder does not exist")
    files = sorted((p for p in raw_dir.iterdir()
                    if (p.is_symlink() or p.is_file()) and not p.name.startswith(".")
                    and matches(p.name, patterns)), key=lambda p: p.name)
    if not files:
        raise DataError(f"{raw_dir}: no export files matching {', '.join(patterns)}")
    return files


def same_index(files: list[Path]) -> dict[Path, str]:
    """The files refused as another's copy, each with its reason naming the other file.

    ``X (1).csv`` beside a file of stem ``X`` is a browser's second download: refused, the
    other is read. Files whose stems differ only in case or extension (``X.csv`` and
    ``X.json``) are one index twice: all of them are refused.
    """
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem.lower(), []).append(path)
    refused = {}
    for path in files:
        copy = BROWSER_COPY.fullmatch(path.stem)
        if copy and copy["stem"].lower() in by_stem:
            original = by_stem[copy["stem"].lower()][0]
            refused[path] = (f"a second download of {display_name(original.name)} (a "
                             f"browser's copy): refused, {display_name(original.name)} is "
                             "read (delete the copy)")
    for same in by_stem.values():
        for path in same if len(same) > 1 else []:
            others = ", ".join(display_name(p.name) for p in same if p != path)
            refused[path] = (f"the same index id as {others}: both refused (keep one; which "
                             "is right is not guessed)")
    return refused


def ingest(
    raw_dir: Path | str,
    tables_dir: Path | str,
    report_path: Path | str,
    settings: IngestSection | None = None,
    track: Callable[[list[Path]], Iterable[Path]] = iter,
) -> dict[str, Any]:
    """Read every export in ``raw_dir``; write ``tables_dir/<index_id>.parquet`` and a report.

    ``settings``: params.yaml's ``ingest:`` (the schema's defaults when not given).

    The tables folder is replaced as a whole (``fileio.atomic_folder``), so a failure
    leaves the previous tables; what a killed run left beside it is removed first.
    Returns the report that is written as JSON.
    """
    raw_dir, tables_dir = Path(raw_dir), Path(tables_dir)
    settings = settings or IngestSection()
    files = export_files(raw_dir, settings.file_patterns)
    for folder in leftover_staging(tables_dir):
        log.warning("warning: removing %s, left by an ingest that did not finish", folder)
    copies = same_index(files)
    entries = []
    with atomic_folder(tables_dir) as staging:
        for path in track(files):
            entries.append(_ingest_one(path, staging, settings, copies.get(path)))
        copies = same_bytes(entries)
        if copies:  # before the tables are swapped in: the previous ones stay
            raise DataError(copies)
    report = {
        "raw_dir": str(raw_dir),
        "files_total": len(entries),
        "files_read": sum(e["status"] == "ok" for e in entries),
        "files": entries,
    }
    write_json(report_path, report)
    return report


def same_bytes(entries: list[dict[str, Any]]) -> list[str]:
    """A line per file with the very bytes of an earlier one: one export under two names
    (a browser saves a second download as ``X (1).csv``), which would count its index
    twice under two ids."""
    first: dict[str, str] = {}
    lines = []
    for entry in entries:
        md5 = entry["md5"]
        if md5 is None:
            continue
        if md5 in first:
            lines.append(f"{first[md5]} and {entry['file']}: the same bytes, one export under "
                         "two names (its index would count twice); keep one")
        else:
            first[md5] = entry["file"]
    return lines


def _ingest_one(path: Path, staging: Path, settings: IngestSection, copy_of: str | None
                ) -> dict[str, Any]:
    name = display_name(path.name)
    entry: dict[str, Any] = {"file": name, "index_id": display_name(path.stem),
                             "index_name": None, "md5": None, "bytes": None}
    refused = ("refused", copy_of) if copy_of else refusal(path, settings.max_file_mb)
    if refused:
        status, reason = refused
        if status == "too large":
            entry["bytes"] = path.stat().st_size
        reason = f"{name}: {reason}"
        log.warning("warning: %s; left out", reason)
        return entry | {"status": status, "reason": reason, "rows": 0}
    entry |= {"md5": file_md5(path), "bytes": path.stat().st_size}
    try:
        export = read_export(path, max_rows=settings.max_rows)
    except TooManyRowsError as exc:
        log.warning("warning: %s; left out", exc)
        return entry | {"status": "too large", "reason": str(exc), "rows": 0}
    except EmptyExportError as exc:
        log.warning("warning: %s; left out", exc)
        return entry | {"status": "empty", "reason": str(exc), "rows": 0}
    except ExportReadError as exc:
        log.warning("error: %s; left out", exc)
        return entry | {"status": "unreadable", "reason": str(exc), "rows": 0}
    frame = export.frame
    newest_first = len(frame) > 1 and frame["date"].is_monotonic_decreasing and \
        frame["date"].is_unique
    if newest_first:
        frame = frame.iloc[::-1]
    frame.to_parquet(staging / f"{export.index_id}.parquet", engine="pyarrow")
    return entry | {
        "status": "ok",
        "reason": None,
        "index_name": export.index_name,
        "rows": len(frame),
        "row_unit": export.row_unit,
        "encoding": export.encoding,
        "delimiter": export.delimiter,
        "layout": export.layout,
        "calendar": export.calendar,
        "order": "newest first (read oldest first)" if newest_first else "oldest first",
        "first_date": f"{frame['date'].iloc[0]:%Y-%m-%d}",
        "last_date": f"{frame['date'].iloc[-1]:%Y-%m-%d}",
        "fields": [c for c in frame.columns if c not in ("date", "index_id", "index_name")],
        "dropped_columns": export.dropped_columns,
    }
