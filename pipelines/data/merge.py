"""Merge the usable per-index tables into one wide Parquet table, one row per trading day.

Policy (every choice counted in the merge summary, per index and in total); the merge
never silently loses the present:
- The calendar is the target index's trading days (after validation dropped its bad
  rows: a dropped target day is not a trading day); the target is never filled, and the
  dataset always ends on the target's last trading day.
- An exogenous index's missing day takes its last known value (forward fill, never a
  later value), for at most ``max_fill_days`` consecutive days.
- An index is left out, with its reason, when it
  - started late: it covers less than ``min_coverage`` of the calendar (otherwise the
    calendar days before the latest start are dropped: the oldest days, never recent ones);
  - is stale: its last day is more than ``max_fill_days`` trading days before the
    target's last day (an export that was not refreshed);
  - has gaps longer than ``max_fill_days`` that would cost the target more than
    ``max_target_days_lost`` of its days. If the indices kept would together still cost
    more, the costliest is left out until they do not.
- Days on which an index has data but the target does not are ignored.
- If fewer than ``min_indices`` indices remain, the merge stops (``DataError``) naming
  each index left out and why.

Columns: ``date`` (timestamp, unique, ascending), then ``<index_id>__<field>`` (float64)
for the target first and the other indices in id order, fields in the order of
``formats.NUMERIC_FIELDS``. The index names travel in the Parquet schema metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.columns import column_name
from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import atomic_path, file_md5, write_json
from pipelines.core.params.data import DataSection
from pipelines.core.params.merge import MergeSection
from pipelines.core.params.paths import Paths
from pipelines.core.params.validate import ValidateSection
from pipelines.data.dataset import METADATA_KEY
from pipelines.data.formats import NUMERIC_FIELDS


def merge_tables(tables: dict[str, pd.DataFrame], target_index: str, settings: MergeSection,
                 min_indices: int = 1) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Merge tidy tables (index id -> table) by the policy above; return (wide, summary).

    ``min_indices``: fewer indices left is a DataError (``validate.min_usable_files``).
    """
    if target_index not in tables:
        raise DataError(f"{target_index}: the target index is not among the usable tables")
    calendar = pd.DatetimeIndex(tables[target_index]["date"]).sort_values()
    if calendar.empty:
        raise DataError(f"{target_index}: the target index has no usable trading day")
    n_days = len(calendar)
    allowed_loss = int(np.floor(settings.max_target_days_lost * n_days))
    order = [target_index] + sorted(i for i in tables if i != target_index)
    parts: dict[str, pd.DataFrame] = {}
    lost: dict[str, np.ndarray] = {}
    stats: dict[str, dict[str, Any]] = {}
    for index_id in order:
        stats[index_id], parts[index_id], lost[index_id] = _on_calendar(
            index_id, tables[index_id], calendar, settings.max_fill_days)
        if index_id != target_index:
            reason = _reason_to_leave_out(stats[index_id], calendar, allowed_loss, settings)
            stats[index_id] |= {"reason": reason, "included": reason is None}
    included = _without_costliest([i for i in order if stats[i]["included"]], stats, lost,
                                  allowed_loss, settings)
    excluded = [stats[i] for i in order if not stats[i]["included"]]
    if len(included) < min_indices:
        raise DataError(
            [f"merge: only {len(included)} of {len(order)} indices can be merged, at least "
             f"{min_indices} needed (validate.min_usable_files)"]
            + [f"{printable(s['index_id'])} ({printable(s['index_name'])}): left out: "
               f"{s['reason']}" for s in excluded])
    wide, leading, gaps = _complete_days(parts, stats, included, calendar)
    summary = {
        "target_index": target_index,
        "rows": len(wide),
        "columns": wide.shape[1],
        "first_date": f"{wide['date'].iloc[0]:%Y-%m-%d}",
        "last_date": f"{wide['date'].iloc[-1]:%Y-%m-%d}",
        "target_trading_days": n_days,
        "target_last_date": f"{calendar[-1]:%Y-%m-%d}",
        "indices_included": len(included),
        "indices_excluded": len(excluded),
        "leading_rows_dropped": leading,
        "rows_dropped_gaps": gaps,
        "values_filled": sum(stats[i]["days_filled"] for i in included),
        "warnings": [f"{s['index_id']} ({s['index_name']}): left out of the merge: "
                     f"{s['reason']}" for s in excluded],
        "policy": _policy(settings) | {"min_indices": min_indices},
        "indices": [stats[i] for i in order],
    }
    return wide, summary


def _on_calendar(index_id: str, table: pd.DataFrame, calendar: pd.DatetimeIndex,
                 max_fill_days: int) -> tuple[dict[str, Any], pd.DataFrame, np.ndarray]:
    """One index on the target's calendar: (its summary entry, its columns, the calendar
    days it cannot fill)."""
    fields = [f for f in NUMERIC_FIELDS if f in table and table[f].notna().any()]
    series = table.set_index("date")[fields].sort_index()
    first_day, last_day = series.index[0], series.index[-1]
    coverage = float((calendar >= first_day).mean())
    # Reindex on the union so that a value published on a day the target did not trade
    # still counts as the last known value for the next trading day.
    union = series.index.union(calendar)
    on_calendar = series.reindex(union).ffill(limit=max_fill_days).reindex(calendar)
    observed = calendar.isin(series.index)
    after_start = calendar >= first_day
    complete = on_calendar.notna().all(axis=1).to_numpy()
    filled = after_start & ~observed & complete
    lost = after_start & ~complete & (calendar <= last_day)
    entry: dict[str, Any] = {
        "index_id": index_id,
        "index_name": str(table["index_name"].iloc[0]),
        "fields": fields,
        "rows_in": len(series),
        "first_date": f"{first_day:%Y-%m-%d}",
        "last_date": f"{last_day:%Y-%m-%d}",
        "coverage": round(coverage, 4),
        "rows_off_calendar": int((~series.index.isin(calendar)).sum()),
        "days_filled": int(filled.sum()), "longest_fill": _longest_run(filled),
        "days_lost": int(lost.sum()),
        "included": True, "reason": None,
    }
    columns = on_calendar.rename(columns=lambda f: column_name(index_id, f))
    return entry, columns, lost


def _reason_to_leave_out(entry: dict[str, Any], calendar: pd.DatetimeIndex, allowed_loss: int,
                         settings: MergeSection) -> str | None:
    """Why an exogenous index is left out (started late, stale, gappy), or None."""
    stale_days = int((calendar > pd.Timestamp(entry["last_date"])).sum())
    if entry["coverage"] < settings.min_coverage:
        return (f"started late ({entry['first_date']}): covers {entry['coverage']:.1%} of "
                f"the target's trading days, below merge.min_coverage "
                f"{settings.min_coverage:.0%}")
    if stale_days > settings.max_fill_days:
        return (f"stale: its last day {entry['last_date']} is {stale_days} trading "
                f"days before the target's last day {calendar[-1]:%Y-%m-%d} "
                f"(merge.max_fill_days {settings.max_fill_days})")
    if entry["days_lost"] > allowed_loss:
        return _gap_reason(entry["days_lost"], len(calendar), settings)
    return None


def _without_costliest(included: list[str], stats: dict[str, dict[str, Any]],
                       lost: dict[str, np.ndarray], allowed_loss: int, settings: MergeSection
                       ) -> list[str]:
    """Together the kept indices may still cost too much: leave out the costliest first."""
    n_days = len(next(iter(lost.values())))
    while len(included) > 1:
        union_lost = np.logical_or.reduce([lost[i] for i in included])
        if union_lost.sum() <= allowed_loss:
            break
        costliest = max(included[1:], key=lambda i: (lost[i].sum(), i))
        stats[costliest] |= {"included": False, "reason": _gap_reason(
            stats[costliest]["days_lost"], n_days, settings, together=True)}
        included = [i for i in included if i != costliest]
    return included


def _complete_days(parts: dict[str, pd.DataFrame], stats: dict[str, dict[str, Any]],
                   included: list[str], calendar: pd.DatetimeIndex
                   ) -> tuple[pd.DataFrame, int, int]:
    """The included indices side by side on the days all of them have: (the wide table,
    leading days dropped before the latest start, days dropped for gaps)."""
    wide = pd.concat([parts[i] for i in included], axis=1)
    start = max(pd.Timestamp(stats[i]["first_date"]) for i in included)
    leading = wide.index < start
    gaps = ~leading & wide.isna().any(axis=1).to_numpy()
    wide = wide[~leading & ~gaps]
    if wide.empty:
        raise DataError("merge: no trading day has a value for every included index")
    if wide.index[-1] != calendar[-1]:  # the policy above makes this impossible
        raise DataError(f"merge: the dataset would end {wide.index[-1]:%Y-%m-%d}, before the "
                        f"target's last trading day {calendar[-1]:%Y-%m-%d}")
    wide.index.name = "date"
    return wide.reset_index(), int(leading.sum()), int(gaps.sum())


def _policy(settings: MergeSection) -> dict[str, Any]:
    """The policy in words, with its settings, for the summary."""
    return {
        "calendar": "trading days of the target index",
        "fill": f"last known value, at most {settings.max_fill_days} consecutive days",
        "before_an_index_starts": "dropped (indices below min_coverage are left out)",
        "stale": f"an index ending more than {settings.max_fill_days} trading days before "
                 "the target is left out",
        "gaps": f"an index whose gaps cost the target more than "
                f"{settings.max_target_days_lost:.1%} of its days is left out",
    } | settings.model_dump()


def _gap_reason(days_lost: int, n_days: int, settings: MergeSection, together: bool = False
                ) -> str:
    reason = (f"gaps longer than merge.max_fill_days ({settings.max_fill_days}) would cost the "
              f"target {days_lost} of its {n_days} trading days ({days_lost / n_days:.1%}), "
              f"more than merge.max_target_days_lost ({settings.max_target_days_lost:.1%})")
    if together:
        reason = (f"with the indices kept, gaps would cost the target more than "
                  f"merge.max_target_days_lost ({settings.max_target_days_lost:.1%}); this one "
                  f"costs the most ({days_lost} of {n_days} days)")
    return reason


def _longest_run(flags: Any) -> int:
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def merge(paths: Paths, settings: MergeSection, data: DataSection,
          validation: ValidateSection) -> dict[str, Any]:
    """Merge the tables that validation found usable, without the rows it dropped.

    ``data.target_index`` sets the calendar; fewer than ``validation.min_usable_files``
    indices left stops the merge.

    Writes the Parquet dataset and its summary, both atomically; on any error the previous
    dataset stays. The summary records the dataset's MD5, which is the hash DVC gives it.
    """
    tables = _usable_tables(paths.tables_dir, paths.validation_summary)
    target_index = data.target_index
    wide, summary = merge_tables(tables, target_index, settings, validation.min_usable_files)
    names = {s["index_id"]: s["index_name"] for s in summary["indices"] if s["included"]}
    table = pa.Table.from_pandas(wide, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(
        {"target_index": target_index, "index_names": names}, ensure_ascii=False
    ).encode("utf-8")
    table = table.replace_schema_metadata(metadata)
    with atomic_path(paths.dataset) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    summary = {"dataset": str(paths.dataset), "md5": file_md5(paths.dataset)} | summary
    write_json(paths.merge_summary, summary)
    return summary


def _usable_tables(tables_dir: Path, validation_summary: Path) -> dict[str, pd.DataFrame]:
    """The tables validation found usable, without the rows it dropped."""
    try:
        validation = json.loads(Path(validation_summary).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{validation_summary}: no validation summary; run tsepipe validate "
                        "first") from None
    if not validation["passed"]:
        raise DataError(f"{validation_summary}: validation did not pass; nothing merged")
    dropped = {f["index_id"]: f.get("dropped_lines", []) for f in validation.get("files", [])}
    tables = {}
    for index_id in validation["usable_index_ids"]:
        table_path = Path(tables_dir) / f"{index_id}.parquet"
        if not table_path.exists():
            raise DataError(f"{table_path}: validated table missing; run tsepipe ingest and "
                            "validate again")
        table = pd.read_parquet(table_path)
        tables[index_id] = table[~table.index.isin(dropped.get(index_id, []))]
    return tables
