"""Validation speed without changed verdicts: alike files in one GX batch, unchanged files
reused from the previous run's cache, and either way the same summary, quarantine and page."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import Paths
from pipelines.core.params.validate import ValidateSection
from pipelines.data import validate as validation
from pipelines.data.ingest import ingest
from pipelines.data.validate import ExportValidator, FileVerdict, validate

TARGET = "IRX6XTPI0009"
EXO = "IRX6XSNT0009"
TODAY = dt.date(2026, 1, 15)  # after the sample's last day, so no date is in the future
SETTINGS = {"min_usable_files": 12, "min_rows": 100, "price_tolerance": 5e-4}


@pytest.fixture(scope="module")
def ingested(small_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 16 small sample exports, ingested once (read-only: copy before changing)."""
    folder = tmp_path_factory.mktemp("ingested")
    ingest(small_sample_dir, folder / "tables", folder / "ingest.json")
    return folder


@pytest.fixture
def work(ingested: Path, tmp_path: Path) -> Path:
    shutil.copytree(ingested, tmp_path, dirs_exist_ok=True)
    return tmp_path


class Spy:
    """Which files reached Great Expectations in each run (the real validator still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.runs: list[list[str]] = []
        real = ExportValidator.validate

        def validate_and_record(validator, tables):
            self.runs.append([verdict.file for verdict, _ in tables])
            return real(validator, tables)

        monkeypatch.setattr(ExportValidator, "validate", validate_and_record)


def run(work: Path, report: str = "report", today: dt.date = TODAY,
        **settings: float) -> dict:
    """Validate ``work``'s tables; return what a reader sees: summary, records, page."""
    paths = Paths(tables_dir=work / "tables", ingest_report=work / "ingest.json",
                  validation_summary=work / "validation.json",
                  validation_report_dir=work / report, quarantine_dir=work / "quarantine",
                  metrics_dir=work / "metrics")
    validate(paths, ValidateSection(**(SETTINGS | settings)), DataSection(target_index=TARGET),
             today=today)
    return {
        "summary": json.loads((work / "validation.json").read_text()),
        "quarantine": {p.name: p.read_text() for p in sorted((work / "quarantine").iterdir())},
        "page": (work / report / "index.html").read_text(),
    }


def without_gx_result(seen: dict) -> dict:
    """``seen`` without the names of the GX result files (they name batches, not verdicts)."""
    summary = json.loads(json.dumps(seen["summary"]))
    for entry in summary["files"]:
        entry.pop("gx_result")
    return seen | {"summary": summary}


def edit_table(work: Path, index_id: str, edit) -> None:
    path = work / "tables" / f"{index_id}.parquet"
    frame = pd.read_parquet(path)
    edit(frame)
    frame.to_parquet(path, engine="pyarrow")


def test_an_unchanged_set_is_not_validated_again_and_reads_the_same(work, monkeypatch):
    spy = Spy(monkeypatch)
    cold = run(work)
    gx_files = {p.name: p.stat().st_mtime_ns for p in (work / "report/gx").iterdir()}
    warm = run(work)

    assert len(spy.runs) == 1 and len(spy.runs[0]) == 16
    assert warm == cold
    assert {p.name: p.stat().st_mtime_ns for p in (work / "report/gx").iterdir()} == gx_files
    # every file's GX result is there, and all 16 alike files made one batch
    names = {entry["gx_result"] for entry in cold["summary"]["files"]}
    assert len(names) == 1 and all((work / "report" / name).is_file() for name in names)


def test_a_changed_file_alone_is_validated_again(work, monkeypatch):
    spy = Spy(monkeypatch)
    run(work)

    def negative_close(frame: pd.DataFrame) -> None:
        frame.iloc[10, frame.columns.get_loc("close")] = -1.0

    edit_table(work, EXO, negative_close)
    warm = run(work)
    assert spy.runs[1] == [f"{EXO}.csv"]
    exo = next(f for f in warm["summary"]["files"] if f["index_id"] == EXO)
    assert exo["status"] == "valid" and exo["dropped_lines"] == [12]
    # the same as a run that validates every file, except for which GX result holds which
    cold = run(work, report="report-cold")
    assert without_gx_result(warm) == without_gx_result(cold)
    # the batch of the earlier run is kept for the 15 unchanged files, the new one for EXO
    assert len({f["gx_result"] for f in warm["summary"]["files"]}) == 2
    assert len(list((work / "report/gx").iterdir())) == 2


@pytest.mark.parametrize("change", [
    {"price_tolerance": 1e-3}, {"min_rows": 50}, {"today": TODAY + dt.timedelta(days=1)},
], ids=["price_tolerance", "min_rows", "today"])
def test_changed_settings_validate_every_file_again(work, monkeypatch, change):
    spy = Spy(monkeypatch)
    run(work)
    run(work, **change)
    assert [len(files) for files in spy.runs] == [16, 16]


def test_changed_code_validates_every_file_again(work, monkeypatch):
    spy = Spy(monkeypatch)
    run(work)
    monkeypatch.setattr(validation, "_code_version", lambda: "another version")
    run(work)
    assert [len(files) for files in spy.runs] == [16, 16]


def test_a_missing_cache_or_gx_result_means_a_full_run(work, monkeypatch):
    """DVC removes a stage's outputs (the report folder with its cache) before running it."""
    spy = Spy(monkeypatch)
    cold = run(work)
    shutil.rmtree(work / "report")
    assert run(work) == cold
    for result in (work / "report/gx").iterdir():
        result.unlink()
    assert without_gx_result(run(work)) == without_gx_result(cold)
    assert [len(files) for files in spy.runs] == [16, 16, 16]


def break_rows(frame: pd.DataFrame, index_id: str) -> pd.DataFrame:
    """A different mix of bad rows per file: several rules on one row, too many bad rows."""
    frame = frame.copy()
    column = frame.columns.get_loc
    if index_id == TARGET:
        frame.iloc[5, column("high")] = np.nan  # empty cell and high < low on one row
        frame.iloc[8, column("date")] = frame["date"].iloc[7]  # duplicate, out of order
    elif index_id == EXO:
        frame.iloc[3, column("close")] = -1.0  # not > 0 and outside [low, high]
        frame.iloc[-1, column("date")] = pd.Timestamp("2099-12-31")  # in the future
    elif index_id.endswith("1"):
        frame.iloc[20:40, column("close")] = -1.0  # too many bad rows: left out
    elif index_id.endswith("5"):
        frame = frame.iloc[:50]  # too few rows
    elif index_id.endswith("8"):
        frame = frame.drop(columns=["volume", "high"])  # another suite: another batch
    return frame


def test_files_validated_together_get_the_verdicts_they_get_alone(ingested):
    entries = json.loads((ingested / "ingest.json").read_text())["files"]
    tables = [(entry, break_rows(pd.read_parquet(ingested / "tables" /
                                                 f"{entry['index_id']}.parquet"),
                                 entry["index_id"])) for entry in entries]

    def verdicts(together: bool) -> list[dict]:
        validator = ExportValidator(ValidateSection(**SETTINGS), TODAY)
        made = [(FileVerdict(entry["file"], entry["index_id"], "", "ok"), frame)
                for entry, frame in tables]
        for group in [made] if together else [[pair] for pair in made]:
            validator.validate(group)
        return [asdict(verdict) | {"gx_result": None} for verdict, _ in made]

    together, alone = verdicts(together=True), verdicts(together=False)
    assert together == alone
    statuses = {v["index_id"]: v["status"] for v in together}
    assert statuses[TARGET] == statuses[EXO] == "valid"
    assert sorted(set(statuses.values())) == ["invalid", "valid"]
    target = next(v for v in together if v["index_id"] == TARGET)
    assert [(r["line"], r["column"], r["rule"]) for r in target["dropped_rows"]] == [
        (7, "high", "high < low"), (7, "high", "empty cell"),
        (9, "date", "duplicate date"), (10, "date", "duplicate date"),
        (10, "date", "date not after the previous row's (out of order)")]
