"""Validation of the ingested exports with Great Expectations 1.x.

One expectation suite per file (fields present and non-null, dates unique, increasing
and not in the future, prices > 0, low <= high, open and close within [low, high] up to
a tolerance, volume >= 0, enough rows), then checks across the set (the target index is
present and valid; at least ``min_usable_files`` are usable).

A file that fails is left where it is, untouched, recorded in the quarantine folder with
its reasons and left out of the merge. A failing target or too few usable files raises
``DataError`` with one line per failing expectation (file, lines, column, reason).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import DataError, format_problem
from pipelines.fileio import write_json
from pipelines.formats import PRICE_FIELDS, REQUIRED_FIELDS
from pipelines.report_html import render

log = logging.getLogger(__name__)

MAX_LISTED_LINES = 5


@dataclass
class FileVerdict:
    """What validation concluded about one export file."""

    file: str
    index_id: str
    index_name: str
    status: str  # valid | invalid | unreadable | empty
    rows: int = 0
    md5: str | None = None  # of the raw file, as ingest read it
    expectations: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.status == "valid"

    def lines(self) -> list[str]:
        return [p["message"] for p in self.problems]


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


def _checks(frame: pd.DataFrame, min_rows: int, tolerance: float, today: dt.date) -> list:
    """The expectation suite for one export, as (expectation, column, reason) triples."""
    import great_expectations as gx

    E = gx.expectations
    checks: list[tuple[Any, str | None, str]] = [
        (E.ExpectTableRowCountToBeBetween(min_value=min_rows), None,
         f"fewer than {min_rows} rows"),
    ]
    for name in REQUIRED_FIELDS:
        checks.append((E.ExpectColumnToExist(column=name), name, "required column is missing"))
    present = [name for name in REQUIRED_FIELDS if name in frame.columns]
    for name in present:
        checks.append((E.ExpectColumnValuesToNotBeNull(column=name), name, "empty cell"))
    if "date" in frame.columns:
        checks += [
            (E.ExpectColumnValuesToBeUnique(column="date"), "date", "duplicate date"),
            (E.ExpectColumnValuesToBeIncreasing(column="date", strictly=True), "date",
             "date not after the previous row's (out of order)"),
            (E.ExpectColumnValuesToBeBetween(column="date", max_value=pd.Timestamp(today)),
             "date", f"date in the future (after {today:%Y-%m-%d})"),
        ]
    for name in PRICE_FIELDS:
        if name in present:
            checks.append((E.ExpectColumnValuesToBeBetween(column=name, min_value=0,
                                                           strict_min=True),
                           name, "price is not > 0"))
    if {"high", "low"} <= set(present):
        checks.append((E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="high", column_B="low", or_equal=True), "high", "high < low"))
        for name in ("open", "close"):
            if name in present:
                checks.append((E.ExpectColumnValuesToBeBetween(
                    column=f"{name}_outside_range", max_value=tolerance), name,
                    f"{name} outside [low, high] by more than {tolerance:g} (relative)"))
    if "volume" in present:
        checks.append((E.ExpectColumnValuesToBeBetween(column="volume", min_value=0),
                       "volume", "volume < 0"))
    return checks


def _with_derived_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame to validate: its line numbers as a column, plus relative range excesses."""
    data = frame.reset_index()
    if {"high", "low"} <= set(data.columns):
        for name in ("open", "close"):
            if name in data.columns:
                above = data[name] / data["high"] - 1
                below = 1 - data[name] / data["low"]
                data[f"{name}_outside_range"] = above.combine(below, max).fillna(0.0)
    return data


class ExportValidator:
    """Runs a per-file suite in one ephemeral GX context (cheap to reuse across files)."""

    def __init__(self, min_rows: int, price_tolerance: float, today: dt.date | None = None):
        import great_expectations as gx

        self.min_rows = min_rows
        self.price_tolerance = price_tolerance
        self.today = today or dt.date.today()
        self._gx = gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        # This GX module pins its logger to INFO and announces a temporary folder per context.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        self._context = gx.get_context(mode="ephemeral")
        # GX draws tqdm bars per file otherwise; the CLI shows its own progress.
        self._context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        asset = self._context.data_sources.add_pandas("exports").add_dataframe_asset("export")
        self._batch = asset.add_batch_definition_whole_dataframe("whole_file")

    def validate(self, file: str, frame: pd.DataFrame) -> tuple[list[dict], int, dict]:
        """Validate one tidy table; return (problems, expectations run, GX result JSON)."""
        gx = self._gx
        checks = _checks(frame, self.min_rows, self.price_tolerance, self.today)
        suite = gx.ExpectationSuite(name=f"export:{file}")
        for number, (expectation, column, reason) in enumerate(checks):
            expectation.meta = {"check": number, "column": column, "reason": reason}
            suite.add_expectation(expectation)
        suite = self._context.suites.add(suite)
        definition = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=f"validate:{file}", data=self._batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": _with_derived_columns(frame)},
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["line"]},
        )
        self._context.validation_definitions.delete(definition.name)
        self._context.suites.delete(suite.name)
        problems = [self._problem(file, r) for r in result.results if not r.success]
        problems.sort(key=lambda p: p["check"])
        return problems, len(checks), result.to_json_dict()

    @staticmethod
    def _problem(file: str, outcome: Any) -> dict[str, Any]:
        meta = outcome.expectation_config.meta
        details = outcome.result or {}
        lines = sorted({int(row["line"]) for row in details.get("unexpected_index_list") or []})
        reason = meta["reason"]
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            reason += f" (check could not run: {outcome.exception_info['exception_message']})"
        if "observed_value" in details and not lines and meta["column"] is None:
            reason += f" (found {details['observed_value']})"
        shown = ", ".join(map(str, lines[:MAX_LISTED_LINES]))
        if len(lines) > MAX_LISTED_LINES:
            shown += f" and {len(lines) - MAX_LISTED_LINES} more"
        if lines:
            reason += f" ({len(lines)} row{'s' if len(lines) > 1 else ''})"
        line_ref: int | str | None = (lines[0] if len(lines) == 1 else shown) if lines else None
        return {
            "check": meta["check"],
            "expectation": outcome.expectation_config.type,
            "column": meta["column"],
            "lines": lines,
            "message": format_problem(file, reason, line=line_ref, column=meta["column"]),
        }


def validate(
    tables_dir: Path | str,
    ingest_report: Path | str,
    summary_path: Path | str,
    report_dir: Path | str,
    quarantine_dir: Path | str,
    target_index: str,
    min_usable_files: int,
    min_rows: int,
    price_tolerance: float,
    today: dt.date | None = None,
) -> ValidationOutcome:
    """Validate every ingested file and the set; write the summary, report and quarantine.

    Reads ``tables_dir/<index_id>.parquet`` and the ingest report. Writes
    ``summary_path`` (JSON, read by the merge), ``report_dir/index.html`` and
    ``report_dir/gx/<index_id>.json`` (GX's own results), and one record per left-out
    file in ``quarantine_dir``. Raises ``DataError`` when the set is not usable.
    """
    tables_dir, report_dir = Path(tables_dir), Path(report_dir)
    ingested = json.loads(Path(ingest_report).read_text(encoding="utf-8"))
    validator = ExportValidator(min_rows, price_tolerance, today)
    verdicts: list[FileVerdict] = []
    gx_dir = report_dir / "gx"
    for entry in ingested["files"]:
        verdict = FileVerdict(entry["file"], entry["index_id"], entry["index_name"] or "",
                              entry["status"], rows=entry.get("rows", 0),
                              md5=entry.get("md5"))
        if entry["status"] == "ok":
            frame = pd.read_parquet(tables_dir / f"{entry['index_id']}.parquet")
            problems, count, gx_result = validator.validate(entry["file"], frame)
            verdict.problems, verdict.expectations = problems, count
            verdict.status = "invalid" if problems else "valid"
            write_json(gx_dir / f"{entry['index_id']}.json", gx_result)
        else:
            verdict.problems = [{"check": -1, "expectation": "readable", "column": None,
                                 "lines": [], "message": entry["reason"]}]
        verdicts.append(verdict)

    set_checks = _set_checks(verdicts, target_index, min_usable_files)
    outcome = ValidationOutcome(all(c["passed"] for c in set_checks), verdicts, set_checks)
    _write_quarantine(Path(quarantine_dir), Path(ingested["raw_dir"]), outcome)
    summary = {
        "passed": outcome.passed,
        "target_index": target_index,
        "files_total": len(verdicts),
        "files_usable": len(outcome.usable_ids),
        "files_quarantined": len(verdicts) - len(outcome.usable_ids),
        "min_usable_files": min_usable_files,
        "usable_index_ids": outcome.usable_ids,
        "set_checks": set_checks,
        "files": [vars(v) | {"usable": v.usable} for v in verdicts],
    }
    write_json(summary_path, summary)
    render("validation.html", report_dir / "index.html", summary=summary,
           tolerance=price_tolerance, min_rows=min_rows)
    if not outcome.passed:
        raise DataError(outcome.failure_lines())
    return outcome


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
                        "message": f"{verdict.file}: the target index {target} is "
                                   f"{'valid' if verdict.usable else verdict.status}"}
    count_check = {"check": "enough usable files", "passed": usable >= min_usable,
                   "message": f"{usable} of {len(verdicts)} export files usable, "
                              f"at least {min_usable} needed (validate.min_usable_files)"}
    return [target_check, count_check]


def _write_quarantine(folder: Path, raw_dir: Path, outcome: ValidationOutcome) -> None:
    """Record each left-out file (the raw file itself stays where it is, untouched)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    records = []
    for verdict in outcome.verdicts:
        if verdict.usable:
            continue
        record = {
            "file": str(raw_dir / verdict.file),
            "index_id": verdict.index_id,
            "status": verdict.status,
            "md5": verdict.md5,
            "reasons": verdict.lines(),
        }
        write_json(folder / f"{verdict.file}.json", record)
        records.append({"file": verdict.file, "status": verdict.status})
    write_json(folder / "quarantine.json", {"files": records})
