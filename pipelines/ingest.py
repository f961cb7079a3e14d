"""Ingest: every export file in the raw folder becomes a typed tidy Parquet table.

Files are taken in name order (never in whatever order the file system lists them).
A file that cannot be read, or has no rows, is recorded with its reason and left for
validation to quarantine; the raw files themselves are only ever read.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipelines.errors import DataError
from pipelines.fileio import file_md5, write_json
from pipelines.formats import EmptyExportError, ExportReadError, read_export

log = logging.getLogger(__name__)


def export_files(raw_dir: Path | str, patterns: Iterable[str]) -> list[Path]:
    """The export files in ``raw_dir`` matching any of ``patterns``, sorted by name."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir}: the raw folder does not exist")
    found = {p for pattern in patterns for p in raw_dir.glob(pattern) if p.is_file()}
    files = sorted((p for p in found if not p.name.startswith(".")), key=lambda p: p.name)
    if not files:
        raise DataError(f"{raw_dir}: no export files matching {', '.join(patterns)}")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise DataError(f"{path.name}: same index id as {stems[path.stem].name}; keep one")
        stems[path.stem] = path
    return files


def ingest(
    raw_dir: Path | str,
    tables_dir: Path | str,
    report_path: Path | str,
    patterns: Iterable[str] = ("*.csv", "*.txt"),
    track: Callable[[list[Path]], Iterable[Path]] = iter,
) -> dict[str, Any]:
    """Read every export in ``raw_dir``; write ``tables_dir/<index_id>.parquet`` and a report.

    The tables folder is replaced as a whole (built beside it, then swapped in), so a
    failure leaves the previous tables. Returns the report that is written as JSON.
    """
    raw_dir, tables_dir = Path(raw_dir), Path(tables_dir)
    files = export_files(raw_dir, list(patterns))
    tables_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{tables_dir.name}.", dir=tables_dir.parent))
    entries = []
    try:
        for path in track(files):
            entries.append(_ingest_one(path, staging))
        _swap_in(staging, tables_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report = {
        "raw_dir": str(raw_dir),
        "files_total": len(entries),
        "files_read": sum(e["status"] == "ok" for e in entries),
        "files": entries,
    }
    write_json(report_path, report)
    return report


def _ingest_one(path: Path, staging: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": path.name, "index_id": path.stem, "index_name": None,
                             "md5": file_md5(path), "bytes": path.stat().st_size}
    try:
        export = read_export(path)
    except EmptyExportError as exc:
        log.warning("warning: %s; left out", exc)
        return entry | {"status": "empty", "reason": str(exc), "rows": 0}
    except ExportReadError as exc:
        log.warning("error: %s; left out", exc)
        return entry | {"status": "unreadable", "reason": str(exc), "rows": 0}
    export.frame.to_parquet(staging / f"{export.index_id}.parquet", engine="pyarrow")
    frame = export.frame
    return entry | {
        "status": "ok",
        "reason": None,
        "index_name": export.index_name,
        "rows": len(frame),
        "encoding": export.encoding,
        "layout": export.layout,
        "calendar": export.calendar,
        "first_date": f"{frame['date'].iloc[0]:%Y-%m-%d}",
        "last_date": f"{frame['date'].iloc[-1]:%Y-%m-%d}",
        "fields": [c for c in frame.columns if c not in ("date", "index_id", "index_name")],
        "dropped_columns": export.dropped_columns,
    }


def _swap_in(staging: Path, target: Path) -> None:
    """Replace the folder ``target`` by ``staging`` with two renames."""
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
