"""Merge the usable per-index tables into one wide Parquet table, one row per trading day.

Policy (every choice counted in the merge summary):
- The calendar is the target index's trading days; the target is never filled.
- An exogenous index's missing day takes its last known value (forward fill, never a
  later value), for at most ``max_fill_days`` consecutive days.
- An index whose data covers less than ``min_coverage`` of the calendar (it starts
  late) is left out; otherwise calendar days before the latest start are dropped.
- Days on which an index has data but the target does not are ignored.
- Days still missing a value after filling (a gap longer than ``max_fill_days``) are
  dropped.

Columns: ``date`` (timestamp, unique, ascending), then ``<index_id>__<field>`` (float64)
for the target first and the other indices in id order, fields in the order of
``formats.NUMERIC_FIELDS``. The index names travel in the Parquet schema metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import DataError
from pipelines.fileio import atomic_path, file_md5, write_json
from pipelines.formats import NUMERIC_FIELDS

COLUMN_SEPARATOR = "__"
METADATA_KEY = b"tsepipe"


def column_name(index_id: str, field: str) -> str:
    return f"{index_id}{COLUMN_SEPARATOR}{field}"


def merge_tables(
    tables: dict[str, pd.DataFrame],
    target_index: str,
    min_coverage: float,
    max_fill_days: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Merge tidy tables (index id -> table) by the policy above; return (wide, summary)."""
    if target_index not in tables:
        raise DataError(f"{target_index}: the target index is not among the usable tables")
    calendar = pd.DatetimeIndex(tables[target_index]["date"]).sort_values()
    order = [target_index] + sorted(i for i in tables if i != target_index)
    parts, stats = [], []
    for index_id in order:
        table = tables[index_id]
        fields = [f for f in NUMERIC_FIELDS if f in table and table[f].notna().any()]
        series = table.set_index("date")[fields].sort_index()
        first_day = series.index[0]
        coverage = float((calendar >= first_day).mean())
        entry: dict[str, Any] = {
            "index_id": index_id,
            "index_name": str(table["index_name"].iloc[0]),
            "rows_in": len(series),
            "first_date": f"{first_day:%Y-%m-%d}",
            "last_date": f"{series.index[-1]:%Y-%m-%d}",
            "coverage": round(coverage, 4),
            "rows_off_calendar": int((~series.index.isin(calendar)).sum()),
        }
        if index_id != target_index and coverage < min_coverage:
            stats.append(entry | {"included": False, "reason":
                                  f"covers {coverage:.1%} of the target's trading days, "
                                  f"below merge.min_coverage {min_coverage:.0%}"})
            continue
        # Reindex on the union so that a value published on a day the target did not
        # trade still counts as the last known value for the next trading day.
        union = series.index.union(calendar)
        on_calendar = series.reindex(union).ffill(limit=max_fill_days).reindex(calendar)
        observed = calendar.isin(series.index)
        after_start = calendar >= first_day
        filled = after_start & ~observed & on_calendar.notna().all(axis=1).to_numpy()
        entry |= {"included": True, "reason": None,
                  "days_filled": int(filled.sum()),
                  "longest_fill": _longest_run(filled)}
        stats.append(entry)
        parts.append(on_calendar.rename(columns=lambda f, i=index_id: column_name(i, f)))

    wide = pd.concat(parts, axis=1)
    included = [s for s in stats if s["included"]]
    start = max(pd.Timestamp(s["first_date"]) for s in included)
    leading = wide.index < start
    stale = ~leading & wide.isna().any(axis=1).to_numpy()
    wide = wide[~leading & ~stale]
    if wide.empty:
        raise DataError("merge: no trading day has a value for every included index")
    wide.index.name = "date"
    wide = wide.reset_index()
    summary = {
        "target_index": target_index,
        "rows": len(wide),
        "columns": wide.shape[1],
        "first_date": f"{wide['date'].iloc[0]:%Y-%m-%d}",
        "last_date": f"{wide['date'].iloc[-1]:%Y-%m-%d}",
        "target_trading_days": len(calendar),
        "indices_included": len(included),
        "indices_excluded": len(stats) - len(included),
        "leading_rows_dropped": int(leading.sum()),
        "rows_dropped_stale": int(stale.sum()),
        "values_filled": sum(s["days_filled"] for s in included),
        "policy": {
            "calendar": "trading days of the target index",
            "fill": f"last known value, at most {max_fill_days} consecutive days",
            "min_coverage": min_coverage,
            "before_an_index_starts": "dropped (indices below min_coverage are left out)",
        },
        "indices": stats,
    }
    return wide, summary


def _longest_run(flags: Any) -> int:
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def merge(
    tables_dir: Path | str,
    validation_summary: Path | str,
    dataset_path: Path | str,
    summary_path: Path | str,
    target_index: str,
    min_coverage: float,
    max_fill_days: int,
) -> dict[str, Any]:
    """Merge the tables that validation found usable; write Parquet and its summary.

    Both files are written atomically; on any error the previous dataset stays.
    The summary records the dataset's MD5, which is the hash DVC gives it.
    """
    try:
        validation = json.loads(Path(validation_summary).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{validation_summary}: no validation summary; run tsepipe validate "
                        "first") from None
    if not validation["passed"]:
        raise DataError(f"{validation_summary}: validation did not pass; nothing merged")
    tables = {}
    for index_id in validation["usable_index_ids"]:
        table_path = Path(tables_dir) / f"{index_id}.parquet"
        if not table_path.exists():
            raise DataError(f"{table_path}: validated table missing; run tsepipe ingest and "
                            "validate again")
        tables[index_id] = pd.read_parquet(table_path)
    wide, summary = merge_tables(tables, target_index, min_coverage, max_fill_days)
    names = {s["index_id"]: s["index_name"] for s in summary["indices"] if s["included"]}
    table = pa.Table.from_pandas(wide, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(
        {"target_index": target_index, "index_names": names}, ensure_ascii=False
    ).encode("utf-8")
    table = table.replace_schema_metadata(metadata)
    with atomic_path(dataset_path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    summary = {"dataset": str(dataset_path), "md5": file_md5(dataset_path)} | summary
    write_json(summary_path, summary)
    return summary


def read_dataset(path: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a merged dataset; return (frame, tsepipe metadata)."""
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return table.to_pandas(), meta
