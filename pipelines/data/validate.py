"""Validation of the ingested exports with Great Expectations 1.x.

One expectation suite per file, built from the fields the file has (only ``date`` and
``close`` are required): values present, dates unique, increasing and not in the future,
prices > 0, low <= high, open and close within [low, high] up to a tolerance, volume >= 0,
enough rows, and levels an index can take (``close_moves``): a close that is finite and at
most ``max_price``, within ``max_daily_move`` of the median of its neighbours and of the
previous day's, and the day's other levels within ``max_daily_move`` of its close.
Then checks across the set: the target index is present and usable, and at least
``min_usable_files`` files are usable.

Row-level quality, not all-or-nothing. Real histories break a few rows (TEDPIX 2008-2019:
3 closes of 2,679 outside [low, high]). The row-level expectations carry GX's ``mostly``
(1 - ``max_bad_row_share``); the stated rule on top: a file whose bad rows (the union of
the rows that fail any row-level expectation) are at most ``max_bad_row_share`` of its
rows and at most ``max_bad_rows`` keeps its good rows, and each dropped row is recorded
(file, line, column, value, rule). Above the limit, or failing a file-level expectation,
the file is left out. The target follows the same rule; a dropped target day is not a
trading day for the merge's calendar.

A file left out stays where it is, untouched, is recorded in the quarantine folder with
its reasons and is left out of the merge. A failing target or too few usable files raises
``DataError`` with one line per failing expectation (file, lines, column, reason).

Speed, with the verdicts unchanged. GX's cost is per expectation, hardly per row, so the
files whose suites are alike (same columns, same fields) are validated together, in one
GX batch of their rows with a ``file`` column: each row-level result names (file, line),
a file's row count is checked on its own rows (a row condition), and the dates' order and
uniqueness on ``file_day``, days that never meet another file's. Each file's verdict is
then judged from its own rows, as if it had been validated alone. And only changed files
are validated again: a verdict is reused while the table's bytes, the parameters, the
day and the code are those it was reached with (``cache.json`` beside the report; a run
that finds no cache, as under ``dvc repro``, which removes the stage's outputs first,
validates every file).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.display import TSETMC_NAMES, index_html
from pipelines.core.errors import DataError, format_problem, printable
from pipelines.core.fileio import file_md5, write_json
from pipelines.core.html import header, render
from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import Paths
from pipelines.core.params.validate import ValidateSection
from pipelines.core.provenance import snapshot_md5
from pipelines.data.formats import LEVEL_FIELDS, NUMERIC_FIELDS, PRICE_FIELDS, REQUIRED_FIELDS

log = logging.getLogger(__name__)

MAX_LISTED_LINES = 5
GX_DIR = "gx"  # in the report folder: GX's own result of each batch of files
CACHE_FILE = "cache.json"  # in the report folder: each file's verdict and what it depends on
FILE_COLUMN = "file"  # in a batch of files: which file a row is from
FILE_DAY = "file_day"  # in a batch: the file's number x DAYS_APART + the row's day number
DAYS_APART = 10**7  # 27,000 years: one file's days never meet another's
NEIGHBOURS = 2  # rows either side whose median close judges a close (a typo of 1 or 2 days)
# What a verdict depends on besides the table and the parameters: our checks and messages,
# and the libraries that run them (a change to any of them validates every file again).
VERDICT_CODE = ("pipelines.data.validate", "pipelines.core.params.validate",
                "pipelines.core.errors", "pipelines.data.formats")
VERDICT_LIBRARIES = ("great-expectations", "pandas", "numpy")


@dataclass
class DroppedRow:
    """A row left out of a file that is otherwise used."""

    line: int
    date: str  # the row's date as the file gives it (YYYY-MM-DD), "" if it has none
    column: str | None
    value: str
    rule: str


@dataclass
class FileVerdict:
    """What validation concluded about one export file."""

    file: str
    index_id: str
    index_name: str
    status: str  # valid | invalid | unreadable | empty | refused | too large
    rows: int = 0
    md5: str | None = None  # of the raw file, as ingest read it
    expectations: int = 0
    unit: str = "line"  # what row numbers count: line (text exports) or record (JSON)
    problems: list[dict[str, Any]] = field(default_factory=list)
    dropped_rows: list[DroppedRow] = field(default_factory=list)
    gx_result: str | None = None  # GX's own result, relative to the report folder

    @property
    def usable(self) -> bool:
        return self.status == "valid"

    @property
    def dropped_lines(self) -> list[int]:
        return sorted({row.line for row in self.dropped_rows})

    def lines(self) -> list[str]:
        return [p["message"] for p in self.problems]

    def dropped_row_lines(self) -> list[str]:
        """One line per dropped row: ``FILE: line N, column C: rule (DAY, value V); ...``."""
        return [format_problem(self.file, f"{row.rule} ({row.date or 'no date'}, value "
                                          f"{row.value}); row dropped",
                               line=row.line, column=row.column, unit=self.unit)
                for row in self.dropped_rows]

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"usable": self.usable, "dropped_lines": self.dropped_lines}


@dataclass
class ValidationOutcome:
    passed: bool
    verdicts: list[FileVerdict]
    set_checks: list[dict[str, Any]]

    @property
    def usable_ids(self) -> list[str]:
        return [v.index_id for v in self.verdicts if v.usable]

    def failure_lines(self) -> list[str]:
        """One line per failed set check, then one per failing expectation behind it."""
        lines = [c["message"] for c in self.set_checks if not c["passed"]]
        for verdict in self.verdicts:
            if not verdict.usable:
                lines.extend(verdict.lines())
        return lines


@dataclass
class Check:
    """One expectation of the suite: what it checks, on which column, and its scope.

    ``row_level`` checks judge single rows (a bad price, a duplicated date); a file keeps
    its good rows when few enough fail them. The others judge the file as a whole.
    In a batch of files, a ``per_file`` check runs once per file, on that file's rows, and
    one with a ``batch_column`` checks that column instead of the expectation's own.
    """

    expectation: Any
    column: str | None
    reason: str
    row_level: bool
    per_file: bool = False
    batch_column: str | None = None


@dataclass
class Outcome:
    """One check's result for one file: GX's result, narrowed to the file's rows."""

    number: int
    check: Check
    expectation: str  # GX's name for it
    success: bool
    lines: list[int]
    observed_value: Any = None
    error: str | None = None  # why the check could not run


def present_fields(frame: pd.DataFrame) -> list[str]:
    """The numeric fields this file has (a column with no value at all counts as absent)."""
    return [name for name in NUMERIC_FIELDS if name in frame.columns
            and frame[name].notna().any()]


def close_moves(close: pd.Series, max_price: float, max_move: float,
                dates: pd.Series | None = None) -> pd.DataFrame:
    """How far each close is from its neighbours' (a series in file order, oldest first).

    Only plausible closes (> 0, finite, at most ``max_price``) judge others. Columns:
    ``close_neighbours``, the median close of the ``NEIGHBOURS`` rows either side and the
    row itself, and ``close_off_neighbours``, the close's relative distance from it (a
    one- or two-day typo, ten times its neighbours, stands out; the days around it do
    not); ``close_previous``, the last close before it that was not so far off, and
    ``close_move``, the relative move from it (a move beyond ``max_move`` counts on the
    day it lands on, never on the next), 0 where a close is missing or implausible; across
    a gap of more than a week (``dates`` given: a closure, days missing from the file) the
    move per week begun, so that a year-long hole is not one implausible day;
    ``close_reference``, what the day's other levels are judged against: its close, or
    where that is implausible or far off, its neighbours' median.
    """
    plausible = close.where((close > 0) & (close <= max_price))
    neighbours = plausible.rolling(2 * NEIGHBOURS + 1, center=True, min_periods=1).median()
    off = (plausible / neighbours - 1).abs()
    kept = plausible.where(off <= max_move)
    previous = kept.ffill().shift(1)
    ratio = kept / previous
    if dates is not None:
        when = pd.to_datetime(dates, errors="coerce")
        gap = (when - when.where(kept.notna()).ffill().shift(1)).dt.days
        weeks = np.ceil(gap / 7).clip(lower=1).fillna(1)
        ratio = ratio ** (1 / weeks)
    return pd.DataFrame({"close_neighbours": neighbours, "close_off_neighbours": off.fillna(0.0),
                         "close_previous": previous,
                         "close_move": (ratio - 1).abs().fillna(0.0),
                         "close_reference": kept.fillna(neighbours)})


def _checks(frame: pd.DataFrame, min_rows: int, tolerance: float, today: dt.date,
            mostly: float, max_price: float, max_move: float) -> list[Check]:
    """The expectation suite for one export: the fields it has, not a layout's promise.

    Row-level expectations carry GX's ``mostly`` (1 - ``validate.max_bad_row_share``), so
    GX's own results say which fail on more rows than a file may lose.
    """
    import great_expectations as gx

    E = gx.expectations
    checks = [Check(E.ExpectTableRowCountToBeBetween(min_value=min_rows), None,
                    f"fewer than {min_rows} rows", row_level=False, per_file=True)]
    for name in REQUIRED_FIELDS:
        checks.append(Check(E.ExpectColumnToExist(column=name), name,
                            "required column is missing", row_level=False))
    fields = present_fields(frame)
    present = ["date"] * ("date" in frame.columns) + fields

    def row(expectation: Any, column: str, reason: str, batch_column: str | None = None) -> None:
        expectation.mostly = mostly
        checks.append(Check(expectation, column, reason, row_level=True,
                            batch_column=batch_column))

    for name in present:
        row(E.ExpectColumnValuesToNotBeNull(column=name), name, "empty cell")
    if "date" in frame.columns:
        row(E.ExpectColumnValuesToBeUnique(column="date"), "date", "duplicate date", FILE_DAY)
        row(E.ExpectColumnValuesToBeIncreasing(column="date", strictly=True), "date",
            "date not after the previous row's (out of order)", FILE_DAY)
        row(E.ExpectColumnValuesToBeBetween(column="date", max_value=pd.Timestamp(today)),
            "date", f"date in the future (after {today:%Y-%m-%d})")
    for name in PRICE_FIELDS:
        if name in fields:
            row(E.ExpectColumnValuesToBeBetween(column=name, min_value=0, strict_min=True),
                name, "price is not > 0")
    if {"high", "low"} <= set(fields):
        row(E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="low",
                                                      or_equal=True), "high", "high < low")
        for name in ("open", "close"):
            if name in fields:
                row(E.ExpectColumnValuesToBeBetween(column=f"{name}_outside_range",
                                                    max_value=tolerance), name,
                    f"{name} outside [low, high] by more than {tolerance:g} (relative)")
    if "volume" in fields:
        row(E.ExpectColumnValuesToBeBetween(column="volume", min_value=0), "volume",
            "volume < 0")
    if "close" in fields:
        for expectation, column, reason in _level_checks(fields, max_price, max_move):
            row(expectation, column, reason)
    return checks


def _level_checks(fields: list[str], max_price: float, max_move: float
                  ) -> list[tuple[Any, str, str]]:
    """(expectation, column, reason) of each level an index cannot take (``close_moves``)."""
    import great_expectations as gx

    between = gx.expectations.ExpectColumnValuesToBeBetween
    move = f"{max_move:.0%}"
    checks = [
        (between(column="close", max_value=max_price), "close",
         f"not finite, or above validate.max_price ({max_price:g})"),
        (between(column="close_off_neighbours", max_value=max_move), "close",
         f"more than {move} from the median close of the {NEIGHBOURS} days either side "
         "(validate.max_daily_move)"),
        (between(column="close_move", max_value=max_move), "close",
         f"moved more than {move} from the previous day's close (validate.max_daily_move)"),
    ]
    return checks + [(between(column=f"{name}_off_close", max_value=max_move), name,
                      f"not finite, or more than {move} from the day's close "
                      "(validate.max_daily_move)")
                     for name in LEVEL_FIELDS if name in fields and name != "close"]


def _with_derived_columns(frame: pd.DataFrame, max_price: float, max_move: float
                          ) -> pd.DataFrame:
    """The frame to validate: its line numbers as a column, plus relative range excesses,
    the close's moves (``close_moves``) and each other level's distance from the close."""
    data = frame.reset_index()
    if "close" in data.columns:
        data = pd.concat([data, close_moves(data["close"], max_price, max_move,
                                            data.get("date"))], axis=1)
        for name in LEVEL_FIELDS:
            if name in data.columns and name != "close":
                off = data[name] / data["close_reference"] - 1
                data[f"{name}_off_close"] = off.abs().fillna(0.0)
    if {"high", "low"} <= set(data.columns):
        for name in ("open", "close"):
            if name in data.columns:
                above = data[name] / data["high"] - 1
                below = 1 - data[name] / data["low"]
                # the larger excess, as max(above, below) per row (above where either is NaN)
                data[f"{name}_outside_range"] = above.where(~(below > above), below).fillna(0.0)
    return data


def _shown_value(frame: pd.DataFrame, line: int, column: str | None, rule: str) -> str:
    """The offending value as a reviewer wants to read it (with its range where relevant)."""
    if column is None or column not in frame.columns:
        return ""
    value = frame.at[line, column]
    if pd.isna(value):
        return "empty"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d}"
    text = f"{value:.10g}"
    if "outside [low, high]" in rule:
        low, high = frame.at[line, "low"], frame.at[line, "high"]
        excess = max(value / high - 1, 1 - value / low)
        text += f" not in [{low:.10g}, {high:.10g}]: {excess:.2%} outside"
    elif rule == "high < low":
        text += f" < low {frame.at[line, 'low']:.10g}"
    elif "from the median close" in rule:
        median = frame.at[line, "close_neighbours"]
        text += f", {value / median:.3g} times the median {median:.10g}"
    elif "from the previous day's close" in rule:
        previous = frame.at[line, "close_previous"]
        text += f" after {previous:.10g}: {value / previous - 1:+.1%}"
    elif "from the day's close" in rule:
        reference = frame.at[line, "close_reference"]
        judged = ("close" if reference == frame.at[line, "close"]
                  else "close off: its neighbours' median")
        text += f", {judged} {reference:.10g}"
    return text


class ExportValidator:
    """Validates tidy tables in one ephemeral GX context, alike files in one GX batch."""

    def __init__(self, settings: ValidateSection, today: dt.date | None = None):
        import great_expectations as gx

        self.min_rows = settings.min_rows
        self.price_tolerance = settings.price_tolerance
        self.max_price, self.max_move = settings.max_price, settings.max_daily_move
        self.quality = settings
        self.today = today or dt.date.today()
        self._gx = gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # This GX module pins its logger to INFO and announces a temporary folder per context.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        self._context = gx.get_context(mode="ephemeral")
        # GX draws tqdm bars per batch otherwise; the CLI shows its own progress.
        self._context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        asset = self._context.data_sources.add_pandas("exports").add_dataframe_asset("export")
        self._batch = asset.add_batch_definition_whole_dataframe("whole_batch")

    def validate(self, tables: list[tuple[FileVerdict, pd.DataFrame]]) -> dict[str, Any]:
        """Validate tidy tables into their verdicts (status, problems, dropped rows).

        Tables whose suites are alike go in one GX batch. Returns GX's own result of each
        batch as JSON, by its path in the report folder (each verdict's ``gx_result``).
        """
        batches: dict[tuple, list[tuple[FileVerdict, pd.DataFrame]]] = {}
        for verdict, frame in tables:
            batches.setdefault(_suite_shape(frame), []).append((verdict, frame))
        return dict(self._validate_batch(members) for members in batches.values())

    def _validate_batch(self, members: list[tuple[FileVerdict, pd.DataFrame]]
                        ) -> tuple[str, dict[str, Any]]:
        """Validate tables of one suite shape together; return (name, GX's result as JSON)."""
        gx = self._gx
        checks = _checks(members[0][1], self.min_rows, self.price_tolerance, self.today,
                         self.quality.mostly, self.max_price, self.max_move)
        files = [verdict.file for verdict, _ in members]
        expectations = []
        for number, check in enumerate(checks):
            check.expectation.meta = {"check": number, "column": check.column,
                                      "reason": check.reason, "row_level": check.row_level}
            expectations += _batch_expectations(check, files)
        data = pd.concat([_batch_rows(number, verdict.file, self._derived(frame))
                          for number, (verdict, frame) in enumerate(members)],
                         ignore_index=True)
        name = f"{GX_DIR}/{_batch_name(files, data)}.json"
        suite = gx.ExpectationSuite(name=f"exports:{name}", expectations=expectations)
        result = self._batch.get_batch(batch_parameters={"dataframe": data}).validate(
            suite,
            result_format={"result_format": "COMPLETE",
                           "unexpected_index_column_names": [FILE_COLUMN, "line"]},
        )
        order = _result_order(checks)
        for verdict, frame in members:
            outcomes = _file_outcomes(result.results, checks, verdict.file)
            self._judge(verdict, frame, sorted(outcomes, key=lambda o: order[o.number]))
            verdict.expectations = len(checks)
            verdict.gx_result = name
        return name, result.to_json_dict()

    def _judge(self, verdict: FileVerdict, frame: pd.DataFrame, outcomes: list[Outcome]) -> None:
        """File-level failures leave the file out; bad rows within the limit are dropped."""
        # a row-level check that failed without naming rows (it could not run) is fatal
        file_level = [o for o in outcomes
                      if not o.success and not (o.check.row_level and o.lines)]
        row_level = [o for o in outcomes if o.check.row_level and o.lines]
        bad_lines = sorted({line for o in row_level for line in o.lines})
        within = self.quality.allows(len(bad_lines), len(frame))
        if file_level or (row_level and not within):
            problems = [self._problem(verdict, o) for o in file_level + row_level]
            if not file_level:
                problems.append({
                    "check": len(outcomes), "expectation": "max_bad_rows", "column": None,
                    "lines": bad_lines,
                    "message": format_problem(
                        verdict.file, f"{len(bad_lines)} bad rows of {len(frame)} "
                        f"({len(bad_lines) / max(len(frame), 1):.1%}): more than a file may lose "
                        f"(validate.max_bad_row_share {self.quality.max_bad_row_share:g}, "
                        f"validate.max_bad_rows {self.quality.max_bad_rows})")})
            verdict.problems = sorted(problems, key=lambda p: p["check"])
            verdict.status = "invalid"
            return
        shown = self._derived(frame).set_index(frame.index.name or "index")
        for outcome in row_level:
            column, reason = outcome.check.column, outcome.check.reason
            for line in outcome.lines:
                day = frame.at[line, "date"] if "date" in frame.columns else None
                verdict.dropped_rows.append(DroppedRow(
                    line, "" if pd.isna(day) else f"{day:%Y-%m-%d}", column,
                    _shown_value(shown, line, column, reason), reason))
        verdict.dropped_rows.sort(key=lambda row: (row.line, row.column or ""))
        verdict.status = "valid"

    def _derived(self, frame: pd.DataFrame) -> pd.DataFrame:
        return _with_derived_columns(frame, self.max_price, self.max_move)

    @staticmethod
    def _problem(verdict: FileVerdict, outcome: Outcome) -> dict[str, Any]:
        column, lines = outcome.check.column, outcome.lines
        reason = outcome.check.reason
        if outcome.error is not None:
            reason += f" (check could not run: {outcome.error})"
        if outcome.observed_value is not None and not lines and column is None:
            reason += f" (found {outcome.observed_value})"
        shown = ", ".join(map(str, lines[:MAX_LISTED_LINES]))
        if len(lines) > MAX_LISTED_LINES:
            shown += f" and {len(lines) - MAX_LISTED_LINES} more"
        if lines:
            reason += f" ({len(lines)} row{'s' if len(lines) > 1 else ''})"
        line_ref: int | str | None = (lines[0] if len(lines) == 1 else shown) if lines else None
        return {
            "check": outcome.number,
            "expectation": outcome.expectation,
            "column": column,
            "lines": lines,
            "message": format_problem(verdict.file, reason, line=line_ref, column=column,
                                      unit=verdict.unit),
        }


def _suite_shape(frame: pd.DataFrame) -> tuple:
    """What a table's suite and its batch depend on: its columns, their types, its fields."""
    return tuple(frame.dtypes.astype(str).items()), tuple(present_fields(frame))


def _batch_expectations(check: Check, files: list[str]) -> list[Any]:
    """The GX expectations that run ``check`` on a batch of ``files``."""
    from great_expectations.expectations.row_conditions import Column

    expectation = check.expectation
    if check.per_file:
        return [expectation.copy(update={"row_condition": Column(FILE_COLUMN) == file,
                                         "meta": expectation.meta | {"file": file}})
                for file in files]
    if check.batch_column:
        return [expectation.copy(update={"column": check.batch_column})]
    return [expectation]


def _batch_rows(number: int, file: str, data: pd.DataFrame) -> pd.DataFrame:
    """A table's rows (with their derived columns) as they enter a batch: with the file's
    name and, if dated, its days."""
    data.insert(0, FILE_COLUMN, file)
    if "date" in data.columns:
        days = (data["date"] - pd.Timestamp(0)) / pd.Timedelta(days=1)
        data[FILE_DAY] = number * DAYS_APART + days
    return data


def _batch_name(files: list[str], data: pd.DataFrame) -> str:
    """A name for a batch's GX result, from its files and rows (a new batch never reuses one)."""
    digest = hashlib.sha256(json.dumps(files).encode())
    digest.update(pd.util.hash_pandas_object(data).to_numpy().tobytes())
    return f"batch-{digest.hexdigest()[:16]}"


def _result_order(checks: list[Check]) -> dict[int, int]:
    """Each check's place in GX's results for one file's own suite: check number -> rank.

    GX 1.x runs a suite grouped by the column each expectation names, in order of first
    appearance (those naming none make one group). A row that breaks several rules of one
    column has always listed them in that order; a batch keeps it.
    """
    groups: dict[str | None, list[int]] = {}
    for number, check in enumerate(checks):
        groups.setdefault(getattr(check.expectation, "column", None), []).append(number)
    order = [number for group in groups.values() for number in group]
    return {number: rank for rank, number in enumerate(order)}


def _file_outcomes(results: list[Any], checks: list[Check], file: str) -> list[Outcome]:
    """Each check's outcome for ``file``, from GX's results for its batch."""
    outcomes = []
    for result in results:
        meta = result.expectation_config.meta
        if meta.get("file", file) != file:
            continue  # another file's own check
        details = result.result or {}
        lines = sorted({int(row["line"]) for row in details.get("unexpected_index_list") or []
                        if row[FILE_COLUMN] == file})
        info = result.exception_info or {}
        error = info["exception_message"] if info.get("raised_exception") else None
        check = checks[meta["check"]]
        # GX judges a row-level check on the whole batch; the file passes it with no bad row
        success = error is None and not lines if check.row_level else result.success
        outcomes.append(Outcome(meta["check"], check, result.expectation_config.type, success,
                                lines, details.get("observed_value"), error))
    return outcomes


def validate(paths: Paths, settings: ValidateSection, data: DataSection,
             today: dt.date | None = None) -> ValidationOutcome:
    """Validate every ingested file and the set; write the summary, report and quarantine.

    Reads ``paths.tables_dir/<index_id>.parquet`` and the ingest report. Writes
    ``paths.validation_summary`` (JSON, read by the merge: usable files and their dropped
    lines), the validation page, ``<validation_report_dir>/gx/batch-<hash>.json`` (GX's own
    results, a file per batch of files validated together; each verdict's ``gx_result``
    names its batch) and ``<validation_report_dir>/cache.json`` (the verdicts, for the next
    run to reuse while nothing they depend on changed), and a record per left-out file and
    per file with dropped rows in ``paths.quarantine_dir``. Raises ``DataError`` when the
    set is not usable.
    """
    ingested = _ingest_report(Path(paths.ingest_report))
    today = today or dt.date.today()
    verdicts = _verdicts(ingested, paths, settings, today)
    set_checks = _set_checks(verdicts, data.target_index, settings.min_usable_files)
    outcome = ValidationOutcome(all(c["passed"] for c in set_checks), verdicts, set_checks)
    _write_quarantine(Path(paths.quarantine_dir), Path(ingested["raw_dir"]), outcome)
    summary = {
        "passed": outcome.passed,
        "target_index": data.target_index,
        "files_total": len(verdicts),
        "files_usable": len(outcome.usable_ids),
        "files_quarantined": len(verdicts) - len(outcome.usable_ids),
        "rows_dropped": sum(len(v.dropped_lines) for v in verdicts if v.usable),
        "min_usable_files": settings.min_usable_files,
        "row_quality": _row_quality(settings),
        "usable_index_ids": outcome.usable_ids,
        "set_checks": set_checks,
        "files": [v.to_json() for v in verdicts],
    }
    write_json(paths.validation_summary, summary)
    validation_page(paths, summary, settings, ingested)
    if not outcome.passed:
        raise DataError(outcome.failure_lines())
    return outcome


# ---------------------------------------------------------------- the page

def validation_page(paths: Paths, summary: dict[str, Any], settings: ValidateSection,
                    ingested: dict[str, Any]) -> Path:
    """The validation page (``paths.validation_page``): the checks across the set, each
    file's verdict, its expectations (GX's name and column, what each checks, its result
    on the file's own rows) and the rows it lost with their reasons. Its header names the
    data, the raw export files (and ``dvc add``'s hash of their folder where recorded);
    no model yet. The same verdicts draw the same page (no time on it: a verdict reused
    from the cache reads as it did)."""
    report_dir = Path(paths.validation_report_dir)
    results: dict[str, list[dict[str, Any]]] = {}
    expectations = {}
    for verdict in summary["files"]:
        name = verdict.get("gx_result")
        if name and name not in results:
            results[name] = _read_gx_results(report_dir / name)
        expectations[verdict["file"]] = file_expectations(results.get(name) or [],
                                                          verdict["file"])
    raw_dir = ingested.get("raw_dir") or str(paths.raw_dir)
    files = summary["files_total"]
    data = f"{files} export file{'s' if files != 1 else ''} in {raw_dir}"
    recorded = snapshot_md5(paths.raw_dvc)
    if recorded:
        data += f" (dvc add: {recorded.removesuffix('.dir')[:8]})"
    what = (f"Input validation: {summary['files_usable']} of {summary['files_total']} "
            f"export files usable, {summary['rows_dropped']} "
            f"row{'s' if summary['rows_dropped'] != 1 else ''} dropped")
    return render("validation.html", paths.validation_page, summary=summary,
                  header=header(paths.validation_page, paths.front_page, what, data=data),
                  expectations=expectations, index_html=index_html,
                  tsetmc_name=lambda index_id: TSETMC_NAMES.get(index_id),
                  tolerance=settings.price_tolerance, min_rows=settings.min_rows,
                  quality=settings)


def _read_gx_results(path: Path) -> list[dict[str, Any]]:
    """GX's results of a batch as this stage wrote them ([] when missing or unreadable)."""
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("results") or [])
    except (OSError, ValueError, AttributeError):
        return []


def file_expectations(results: list[dict[str, Any]], file: str) -> list[dict[str, Any]]:
    """``file``'s expectations from GX's results of its batch (``result.to_json_dict()``'s
    ``results``), in the suite's order: GX's name with the column it reads (``name``), what
    it refuses (``reason``), whether the file's own rows passed (``passed``; a row-level
    expectation judged on the file's rows, as ``_file_outcomes`` does), the file's failing
    lines (``lines``), GX's observed value where it has one, and whether it is row-level."""
    found = []
    for result in results:
        config = result.get("expectation_config") or {}
        meta, kwargs = config.get("meta") or {}, config.get("kwargs") or {}
        if meta.get("file", file) != file or "check" not in meta:
            continue
        details = result.get("result") or {}
        lines = sorted({int(row["line"]) for row in details.get("unexpected_index_list") or []
                        if isinstance(row, dict) and row.get(FILE_COLUMN) == file})
        info = result.get("exception_info") or {}
        error = info.get("exception_message") if info.get("raised_exception") else None
        row_level = bool(meta.get("row_level"))
        passed = (error is None and not lines) if row_level else bool(result.get("success"))
        column = kwargs.get("column")
        if column == FILE_DAY:  # a batch checks the dates' order on its own column
            column = meta.get("column")
        columns = column or ", ".join(kwargs[k] for k in ("column_A", "column_B") if k in kwargs)
        found.append({
            "check": meta["check"], "name": config.get("type", ""), "column": columns,
            "reason": meta.get("reason", ""), "row_level": row_level, "passed": passed,
            "lines": lines, "observed": details.get("observed_value"), "error": error})
    return sorted(found, key=lambda item: item["check"])


def _ingest_report(path: Path) -> dict[str, Any]:
    """What ingest read; missing or unreadable, a ``DataError`` saying to run it first."""
    if not path.is_file():
        raise DataError(f"{printable(path)}: no ingest report; run tsepipe ingest first")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(report, dict) or "raw_dir" not in report:
            raise ValueError("not an ingest report")
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{printable(path)}: not an ingest report tsepipe can read "
                        f"({printable(exc)}); run tsepipe ingest again") from None
    return report


def _row_quality(settings: ValidateSection) -> dict[str, Any]:
    return {"max_bad_row_share": settings.max_bad_row_share,
            "max_bad_rows": settings.max_bad_rows}


def _verdicts(ingested: dict[str, Any], paths: Paths, settings: ValidateSection,
              today: dt.date) -> list[FileVerdict]:
    """Each ingested file's verdict: the cached one while nothing it depends on changed,
    else Great Expectations' (alike files in one batch); the cache is rewritten."""
    report_dir = Path(paths.validation_report_dir)
    depends_on = {"min_rows": settings.min_rows, "price_tolerance": settings.price_tolerance,
                  "max_price": settings.max_price, "max_daily_move": settings.max_daily_move,
                  "row_quality": _row_quality(settings), "today": today.isoformat()}
    cached = _read_cache(report_dir)
    verdicts: list[FileVerdict] = []
    keys: dict[str, str] = {}  # file -> what its verdict depends on, hashed
    pending: list[tuple[FileVerdict, pd.DataFrame]] = []
    for entry in ingested["files"]:
        verdict = FileVerdict(entry["file"], entry["index_id"], entry["index_name"] or "",
                              entry["status"], rows=entry.get("rows", 0),
                              md5=entry.get("md5"), unit=entry.get("row_unit") or "line")
        verdicts.append(verdict)
        if entry["status"] != "ok":
            verdict.problems = [{"check": -1, "expectation": "readable", "column": None,
                                 "lines": [], "message": entry["reason"]}]
            continue
        table = Path(paths.tables_dir) / f"{entry['index_id']}.parquet"
        keys[verdict.file] = key = _verdict_key(verdict, table, depends_on)
        if not _reuse(verdict, cached.get(verdict.file), key, report_dir):
            pending.append((verdict, pd.read_parquet(table)))
    if pending:
        validator = ExportValidator(settings, today)
        for name, result in validator.validate(pending).items():
            write_json(report_dir / name, result)
    _write_cache(report_dir, verdicts, keys)
    return verdicts


def _verdict_key(verdict: FileVerdict, table: Path, settings: dict[str, Any]) -> str:
    """A hash of what a file's verdict depends on: its table, name, unit, settings, code."""
    depends_on = {"table_md5": file_md5(table), "file": verdict.file, "unit": verdict.unit,
                  "settings": settings, "code": _code_version()}
    return hashlib.sha256(json.dumps(depends_on, sort_keys=True).encode()).hexdigest()


@functools.cache
def _code_version() -> str:
    """A hash of the code a verdict depends on (``VERDICT_CODE``, ``VERDICT_LIBRARIES``)."""
    digest = hashlib.sha256()
    for module in VERDICT_CODE:
        digest.update(Path(sys.modules[module].__file__).read_bytes())
    for library in VERDICT_LIBRARIES:
        digest.update(f"{library} {importlib.metadata.version(library)}".encode())
    return digest.hexdigest()


def _read_cache(report_dir: Path) -> dict[str, dict[str, Any]]:
    """The previous run's verdicts by file; none when there is no readable cache."""
    try:
        return json.loads((report_dir / CACHE_FILE).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _reuse(verdict: FileVerdict, cached: dict[str, Any] | None, key: str,
           report_dir: Path) -> bool:
    """Fill ``verdict`` from the cache if it was reached from the same ``key``."""
    if not cached or cached.get("key") != key or not (report_dir / cached["gx_result"]).is_file():
        return False
    verdict.status, verdict.expectations = cached["status"], cached["expectations"]
    verdict.problems = cached["problems"]
    verdict.dropped_rows = [DroppedRow(**row) for row in cached["dropped_rows"]]
    verdict.gx_result = cached["gx_result"]
    return True


def _write_cache(report_dir: Path, verdicts: list[FileVerdict], keys: dict[str, str]) -> None:
    """Keep this run's verdicts for the next, and only the GX results they name."""
    files = {v.file: {"key": keys[v.file], "status": v.status, "expectations": v.expectations,
                      "problems": v.problems, "dropped_rows": [asdict(r) for r in v.dropped_rows],
                      "gx_result": v.gx_result}
             for v in verdicts if v.file in keys}
    write_json(report_dir / CACHE_FILE, {"files": files})
    named = {report_dir / v.gx_result for v in verdicts if v.gx_result}
    for stale in (report_dir / GX_DIR).glob("*.json"):
        if stale not in named:
            stale.unlink()


def _set_checks(verdicts: list[FileVerdict], target: str, min_usable: int) -> list[dict]:
    by_id = {v.index_id: v for v in verdicts}
    usable = sum(v.usable for v in verdicts)
    if target not in by_id:
        target_check = {"check": "target present and valid", "passed": False,
                        "message": f"{target}: the target index file is missing "
                                   f"(no {target}.* among {len(verdicts)} export files)"}
    else:
        verdict = by_id[target]
        target_check = {"check": "target present and valid", "passed": verdict.usable,
                        "message": format_problem(verdict.file, f"the target index {target} is "
                                   f"{'valid' if verdict.usable else verdict.status}")}
    count_check = {"check": "enough usable files", "passed": usable >= min_usable,
                   "message": f"{usable} of {len(verdicts)} export files usable, "
                              f"at least {min_usable} needed (validate.min_usable_files)"}
    return [target_check, count_check]


def _write_quarantine(folder: Path, raw_dir: Path, outcome: ValidationOutcome) -> None:
    """Record each left-out file and each dropped row (the raw files stay untouched)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    files, rows = [], []
    for verdict in outcome.verdicts:
        if verdict.usable and not verdict.dropped_rows:
            continue
        record = {
            "file": str(raw_dir / verdict.file),
            "index_id": verdict.index_id,
            "status": verdict.status if not verdict.usable else "rows dropped",
            "md5": verdict.md5,
            "reasons": verdict.lines() if not verdict.usable else verdict.dropped_row_lines(),
            "rows": [asdict(row) | {"unit": verdict.unit} for row in verdict.dropped_rows],
        }
        write_json(folder / f"{_record_name(verdict.file)}.json", record)
        if verdict.usable:
            rows += [{"file": verdict.file} | asdict(row) | {"unit": verdict.unit}
                     for row in verdict.dropped_rows]
        else:
            files.append({"file": verdict.file, "status": verdict.status})
    write_json(folder / "quarantine.json", {"files": files, "rows_dropped": rows})


def _record_name(file: str) -> str:
    """A quarantine record's file name for ``file`` (no path separator can slip in)."""
    return file.replace("/", "_").replace("\\", "_")
