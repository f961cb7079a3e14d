"""Bad inputs: each kind of broken export file, run through ingest -> validate -> merge.

Every case starts from a copy of one good run (16 small sample exports, ingested,
validated and merged once per module), breaks the raw input, then runs the three stages
in order, in-process, stopping at the first non-zero exit as DVC does. It checks:

- the message names the file, the line and/or column where there is one, and the reason;
- the exit status: 0 when an exogenous file is only left out, 3 when the run cannot go
  on; never a Python traceback;
- the raw files are only ever read (their bytes are unchanged);
- a fatal case leaves the previous merged dataset as it was (same MD5); a non-fatal one
  writes a quarantine record for the file and a new dataset without that index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from markupsafe import escape
from typer.testing import CliRunner, Result

from pipelines.core.fileio import file_md5
from tests.conftest import copy_exports
from tsepipe.cli import app

ROOT = Path(__file__).resolve().parents[2]
TARGET = "IRX6XTPI0009"
EXO = "IRX6XSNT0009"  # an exogenous index (Industry): leaving it out is not fatal
EXO_FILE = f"{EXO}.csv"
TARGET_FILE = f"{TARGET}.csv"
STAGES = ("ingest", "validate", "merge")
DATA_ERROR_EXIT = 3  # the CLI's contract for expected failures (pipelines/core/errors.py)
N_FILES = 16
N_ROWS = 300  # trading days in each small sample file: lines 2 .. 301

BOM = b"\xff\xfe"
CRLF = "\r\n"
N_FIELDS = 13  # layout A
FIELD = {"ticker": 0, "date": 1, "open": 2, "high": 3, "low": 4, "close": 5, "volume": 6,
         "last": 12}

runner = CliRunner()


# --- export files: decode, edit lines, re-encode -------------------------------------


def decode(raw: bytes) -> list[str]:
    """A sample export's lines (UTF-16 LE with BOM, CRLF); the last one is '' (final CRLF)."""
    assert raw.startswith(BOM), "sample exports are UTF-16 LE with a BOM"
    return raw[len(BOM):].decode("utf-16-le").split(CRLF)


def encode(lines: list[str]) -> bytes:
    return BOM + CRLF.join(lines).encode("utf-16-le")


def cell(lines: list[str], line_no: int, column: str) -> str:
    return lines[line_no - 1].split(",")[FIELD[column]]


def set_cell(lines: list[str], line_no: int, column: str, value: str) -> None:
    """Set one cell; ``line_no`` counts from 1 like the messages (line 1 is the header)."""
    fields = lines[line_no - 1].split(",")
    assert len(fields) == N_FIELDS, lines[line_no - 1]
    fields[FIELD[column]] = value
    lines[line_no - 1] = ",".join(fields)


Breaker = Callable[[Path], None]  # breaks the input in the raw folder it is given


def edit(file: str, change: Callable[[list[str]], None]) -> Breaker:
    """A breaker that edits ``file``'s lines and writes it back in the same encoding."""

    def breaker(raw_dir: Path) -> None:
        path = raw_dir / file
        lines = decode(path.read_bytes())
        change(lines)
        path.write_bytes(encode(lines))

    return breaker


def rewrite(file: str, make: Callable[[bytes], bytes]) -> Breaker:
    """A breaker that replaces ``file``'s bytes by ``make(old bytes)``."""

    def breaker(raw_dir: Path) -> None:
        path = raw_dir / file
        path.write_bytes(make(path.read_bytes()) if path.exists() else make(b""))

    return breaker


def cells_edit(file: str, line_numbers: Iterable[int], column: str, value: str) -> Breaker:
    def change(lines: list[str]) -> None:
        for line_no in line_numbers:
            set_cell(lines, line_no, column, value)

    return edit(file, change)


def cell_edit(file: str, line_no: int, column: str, value: str | Callable[[str], str]) -> Breaker:
    def change(lines: list[str]) -> None:
        new = value(cell(lines, line_no, column)) if callable(value) else value
        set_cell(lines, line_no, column, new)

    return edit(file, change)


def truncated(raw: bytes) -> bytes:
    """Cut inside line 151, leaving half a UTF-16 character (an odd number of bytes)."""
    lines = decode(raw)
    text = CRLF.join(lines[:150]) + CRLF + lines[150][:7]
    return BOM + text.encode("utf-16-le") + b"1"


def as_cp1256(raw: bytes) -> bytes:
    """The same text in the Windows Arabic code page, without a BOM."""
    return CRLF.join(decode(raw)).encode("cp1256")


def no_header(lines: list[str]) -> None:
    del lines[0]


def without_close(lines: list[str]) -> None:
    for number, line in enumerate(lines):
        if line:
            fields = line.split(",")
            del fields[FIELD["close"]]
            lines[number] = ",".join(fields)


def duplicate_date(lines: list[str]) -> None:
    set_cell(lines, 8, "date", cell(lines, 7, "date"))


def swap_rows(lines: list[str]) -> None:
    lines[9], lines[10] = lines[10], lines[9]  # lines 10 and 11


def high_below_low(lines: list[str]) -> None:
    high, low = cell(lines, 13, "high"), cell(lines, 13, "low")
    set_cell(lines, 13, "high", low)
    set_cell(lines, 13, "low", high)


def ragged(lines: list[str]) -> None:
    lines[19] = ",".join(lines[19].split(",")[:10])  # line 20: 10 of 13 fields


def negative_closes(*line_numbers: int) -> Callable[[list[str]], None]:
    def change(lines: list[str]) -> None:
        for number in line_numbers:
            set_cell(lines, number, "close", "-" + cell(lines, number, "close"))

    return change


def symlink_outside(raw_dir: Path) -> None:
    """A link in raw/ to a file outside it, holding a secret that must never be read."""
    secret = raw_dir.parent / "outside" / "secret.csv"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(f"<DTYYYYMMDD>,<CLOSE>\n20240101,{SECRET}\n", encoding="utf-8")
    (raw_dir / "IRX6XZZZ0001.csv").symlink_to(secret)


def copy_as(name: str) -> Breaker:
    return lambda raw_dir: shutil.copy2(raw_dir / EXO_FILE, raw_dir / name)


def long_export(_: bytes) -> bytes:
    """A small export of more rows than ingest.max_rows (set to 400 in these tests)."""
    rows = "".join(f"X,{20200101 + n},1,1,1,1,1,1,1,1,D,x,1\n" for n in range(500))
    return ("<TICKER>,<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>,<OPENINT>,"
            "<OPENINT>,<PER>,<NAME>,<LAST>\n" + rows).encode()


def huge_export(_: bytes) -> bytes:
    """A valid-looking export just over ingest.max_file_mb (set to 1 MB in these tests)."""
    row = "X,20240101,1,1,1,1,1,1,1,1,D,x,1\n"
    return ("<TICKER>,<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>,<OPENINT>,"
            "<OPENINT>,<PER>,<NAME>,<LAST>\n" + row * (1_100_000 // len(row))).encode()


SECRET = "31415926535"  # the content of a file outside raw/: it must never show anywhere


def header_only(raw: bytes) -> bytes:
    return encode(decode(raw)[:1] + [""])


def first_rows(count: int) -> Callable[[bytes], bytes]:
    return lambda raw: encode(decode(raw)[: 1 + count] + [""])


def dashed_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


# --- working folders -----------------------------------------------------------------


@dataclass
class Work:
    """A throw-away project: raw/ with the exports, params.yaml, outputs under data/."""

    root: Path
    params_file: Path
    paths: dict[str, Path]

    @property
    def raw(self) -> Path:
        return self.paths["raw_dir"]

    @property
    def dataset(self) -> Path:
        return self.paths["dataset"]

    def raw_md5(self) -> dict[str, str]:
        return {p.name: file_md5(p) for p in sorted(self.raw.iterdir()) if p.is_file()}


def write_params(root: Path, **validate_settings: int) -> Work:
    """params.yaml from the project's, with every path made absolute under ``root``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    rewritten = {}
    for name, value in params["paths"].items():
        assert not Path(value).is_absolute(), f"paths.{name} is expected relative: {value}"
        rewritten[name] = str(root / ("raw" if name == "raw_dir" else value))
    params["paths"] = rewritten
    params["validate"] |= validate_settings
    params["ingest"]["max_file_mb"] = 1  # the too-large case needs only 1.1 MB
    params["ingest"]["max_rows"] = 400  # and the too-long one 500 rows (the samples: 300)
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return Work(root, params_file, {name: Path(value) for name, value in rewritten.items()})


@contextlib.contextmanager
def without_stale_foreign_log_handlers() -> Iterator[None]:
    """Detach, for one run, other libraries' log handlers bound to a closed stream.

    An earlier in-process ``tsepipe run`` (tests/cli/test_cli.py) imports Prefect, which puts
    a console handler on the root logger bound to that run's stderr, long closed: any
    warning logged later would print '--- Logging error ---' and a traceback into our run's
    output. A real run is a fresh process. The "pipelines" loggers are left alone: their
    lines must follow each run's stderr (test_ingest_left_out_line_on_stderr_...).
    """
    loggers = [logging.getLogger()] + [
        logger for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.split(".")[0] != "pipelines"
    ]
    stale = [
        (logger, handler) for logger in loggers for handler in logger.handlers
        if getattr(getattr(handler, "stream", None), "closed", False)
    ]
    for logger, handler in stale:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for logger, handler in stale:
            logger.addHandler(handler)


def invoke(work: Work, stage: str) -> Result:
    """One stage, in-process (many runs in one process: ingest's log lines must follow)."""
    with without_stale_foreign_log_handlers():
        result = runner.invoke(app, [stage, "--params", str(work.params_file)])
    assert "Traceback" not in result.output, f"{stage} printed a traceback:\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{stage} raised {result.exception!r}:\n{result.output}"
    )
    return result


def run_stages(work: Work, stages: tuple[str, ...] = STAGES) -> dict[str, Result]:
    """Run the stages in order; stop after the first non-zero exit (as ``dvc repro``)."""
    results = {}
    for stage in stages:
        results[stage] = invoke(work, stage)
        if results[stage].exit_code != 0:
            break
    return results


def exit_codes(results: dict[str, Result]) -> dict[str, int]:
    return {stage: result.exit_code for stage, result in results.items()}


def prefixed(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Baseline:
    root: Path
    dataset_md5: str
    merge_summary_md5: str
    ingest_report_md5: str
    tables: dict[str, str]  # table file name -> md5


@pytest.fixture(scope="module")
def baseline(small_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """One good run of the three stages on the 16 small sample exports."""
    root = tmp_path_factory.mktemp("bad-inputs-baseline")
    work = write_params(root)
    copy_exports(small_sample_dir, work.raw)
    assert len(work.raw_md5()) == N_FILES
    results = run_stages(work)
    assert exit_codes(results) == dict.fromkeys(STAGES, 0), {
        stage: result.output for stage, result in results.items()
    }
    assert f"{N_FILES} of {N_FILES} files usable" in results["validate"].stdout
    assert read_json(work.paths["quarantine_dir"] / "quarantine.json") == {"files": [],
                                                                           "rows_dropped": []}
    columns = pd.read_parquet(work.dataset).columns
    # The good dataset has the indices the cases break, so "left out" can be seen.
    assert any(c.startswith(f"{EXO}__") for c in columns)
    assert any(c.startswith(f"{TARGET}__") for c in columns)
    dataset_md5 = file_md5(work.dataset)
    assert read_json(work.paths["merge_summary"])["md5"] == dataset_md5
    tables = {p.name: file_md5(p) for p in work.paths["tables_dir"].glob("*.parquet")}
    assert len(tables) == N_FILES
    return Baseline(root, dataset_md5, file_md5(work.paths["merge_summary"]),
                    file_md5(work.paths["ingest_report"]), tables)


@pytest.fixture
def work(baseline: Baseline, tmp_path: Path) -> Work:
    """A copy of the good run's whole folder, its params pointing into the copy."""
    root = tmp_path / "work"
    shutil.copytree(baseline.root, root)
    return write_params(root)


# --- non-fatal: one exogenous file is broken and left out ----------------------------


@dataclass(frozen=True)
class LeftOut:
    """A broken file that validation leaves out; the run goes on (exit 0)."""

    id: str
    breaker: Breaker
    status: str  # the quarantine status: invalid | unreadable | empty
    expect: tuple[str, ...]  # substrings of the message about the file
    lines: list[int] | None = None  # for a failed expectation: its lines and column
    column: str | None = None
    file: str = EXO_FILE
    added: bool = False  # a new file in raw/ rather than a sample file replaced

    @property
    def index_id(self) -> str:
        return Path(self.file).stem


LEFT_OUT = [
    LeftOut("truncated-utf16", rewrite(EXO_FILE, truncated), "unreadable",
            ("line 151", "truncated UTF-16-LE data", "not a whole number of 2-byte characters")),
    LeftOut("wrong-encoding-cp1256", rewrite(EXO_FILE, as_cp1256), "unreadable",
            ("line 2", "not valid UTF-8", "wrong encoding")),
    LeftOut("binary-garbage", rewrite(EXO_FILE, lambda _: random.Random(0).randbytes(5000)),
            "unreadable", ("line 1", "not valid UTF-8", "wrong encoding or not a text export")),
    LeftOut("empty-0-bytes", rewrite(EXO_FILE, lambda _: b""), "empty",
            ("empty file (0 bytes)", "no header and no rows")),
    LeftOut("header-only", rewrite(EXO_FILE, header_only), "empty",
            ("header only", "no data rows")),
    LeftOut("no-header-line", edit(EXO_FILE, no_header), "unreadable",
            ("line 1", "not an export header", "no <DTYYYYMMDD> or <CLOSE> column")),
    LeftOut("header-without-close", edit(EXO_FILE, without_close), "unreadable",
            ("line 1", "not an export header", "no <CLOSE> column")),
    LeftOut("non-numeric-cell", cell_edit(EXO_FILE, 7, "high", "12a4.5"), "unreadable",
            ("line 7, column high", "not a number: '12a4.5'")),
    LeftOut("ragged-row", edit(EXO_FILE, ragged), "unreadable",
            ("line 20", "expected 13 fields as in the header, found 10")),
    LeftOut("impossible-date", cell_edit(EXO_FILE, 25, "date", "20230231"), "unreadable",
            ("line 25, column date", "not a valid Gregorian date: 20230231")),
    LeftOut("stray-text-file", rewrite("notes.txt", lambda _: b"prices to check later\n"),
            "unreadable", ("line 1", "not an export header"), file="notes.txt", added=True),
    # more bad rows than a file may lose (4 of 300 > 1 %): the whole file is left out
    LeftOut("too-many-bad-rows", edit(EXO_FILE, negative_closes(12, 20, 30, 40)), "invalid",
            ("4 bad rows of 300 (1.3%): more than a file may lose",
             "validate.max_bad_row_share 0.01")),
    LeftOut("stray-quote", edit(EXO_FILE, lambda lines: set_cell(
        lines, 6, "close", '"' + cell(lines, 6, "close"))), "unreadable",
            ("line 6, column close", "quote")),
    LeftOut("symlink-to-outside-file", symlink_outside, "refused",
            ("a symbolic link: refused, never read",), file="IRX6XZZZ0001.csv", added=True),
    LeftOut("name-with-column-separator", copy_as("IRX6X__EVIL.csv"), "refused",
            ("a file name holding '__'",), file="IRX6X__EVIL.csv", added=True),
    LeftOut("name-not-an-index-id", copy_as("q' onmouseover='alert(4)' x='.csv"), "refused",
            ("a file name that is not an index id", "no space, quote or markup): refused"),
            file="q' onmouseover='alert(4)' x='.csv", added=True),
    LeftOut("more-rows-than-max-rows", rewrite("IRX6XLONG001.csv", long_export), "too large",
            ("0.0 MB, more lines than ingest.max_rows (400): not read",),
            file="IRX6XLONG001.csv", added=True),
    LeftOut("file-larger-than-max-file-mb", rewrite("IRX6XHUGE001.csv", huge_export),
            "too large", ("larger than ingest.max_file_mb (1 MB): not read",),
            file="IRX6XHUGE001.csv", added=True),
]


@pytest.mark.parametrize("case", LEFT_OUT, ids=lambda case: case.id)
def test_broken_exogenous_file_is_left_out(case: LeftOut, work: Work, baseline: Baseline) -> None:
    original = work.raw / case.file
    assert original.exists() != case.added
    case.breaker(work.raw)
    before = work.raw_md5()
    assert len(before) == N_FILES + case.added

    results = run_stages(work)

    # Exit 0 throughout: a broken exogenous file is left out, the run goes on.
    assert exit_codes(results) == dict.fromkeys(STAGES, 0), {
        stage: result.output for stage, result in results.items()
    }
    assert work.raw_md5() == before, "a raw file was changed"

    # Ingest says which file it leaves out and why, and records it in its report.
    report = {entry["file"]: entry for entry in read_json(work.paths["ingest_report"])["files"]}
    ingested = report[case.file]
    told = [line for line in results["ingest"].stderr.splitlines() if "left out" in line]
    if case.status != "invalid":  # left out by ingest, before validation
        assert ingested["status"] == case.status
        assert ingested["reason"].startswith(f"{case.file}: ")
        assert all(part in ingested["reason"] for part in case.expect), ingested["reason"]
        level = "error" if case.status == "unreadable" else "warning"
        assert told == [f"{level}: {ingested['reason']}; left out"], results["ingest"].stderr
    else:
        assert ingested["status"] == "ok"
        assert not told, results["ingest"].stderr

    # Validate warns about the file only, naming it, where, and why; no error lines.
    validated = results["validate"]
    total = N_FILES + case.added
    assert f"{total - 1} of {total} files usable" in validated.stdout
    assert not prefixed(validated.stderr, "error:"), validated.stderr
    warnings = prefixed(validated.stderr, "warning:")
    assert warnings, validated.stderr
    assert all(w.startswith(f"warning: {case.file}: ") for w in warnings), warnings
    assert all(w.endswith(" (left out)") for w in warnings), warnings
    assert any(all(part in w for part in case.expect) for w in warnings), warnings

    summary = read_json(work.paths["validation_summary"])
    assert summary["passed"] is True
    assert case.index_id not in summary["usable_index_ids"]
    assert TARGET in summary["usable_index_ids"]
    verdict = next(f for f in summary["files"] if f["file"] == case.file)
    assert verdict["status"] == case.status
    assert verdict["usable"] is False
    if case.lines is not None:
        matching = [p for p in verdict["problems"] if all(s in p["message"] for s in case.expect)]
        assert matching, verdict["problems"]
        assert matching[0]["lines"] == case.lines
        assert matching[0]["column"] == case.column

    # A quarantine record for the file, the raw file itself left where it was.
    record = read_json(work.paths["quarantine_dir"] / f"{case.file}.json")
    assert set(record) == {"file", "index_id", "status", "md5", "reasons", "rows"}
    assert Path(record["file"]) == work.raw / case.file
    assert record["index_id"] == case.index_id
    assert record["status"] == case.status
    # a refused file is never read: not even hashed (one of too many rows is, not parsed)
    assert record["md5"] == (None if case.status == "refused" or "max-file-mb" in case.id
                             else before[case.file])
    assert record["reasons"] and all("\n" not in reason for reason in record["reasons"])
    assert any(all(part in r for part in case.expect) for r in record["reasons"]), record
    listed = read_json(work.paths["quarantine_dir"] / "quarantine.json")
    assert listed == {"files": [{"file": case.file, "status": case.status}], "rows_dropped": []}

    # A new dataset without the left-out index.
    assert work.dataset.exists()
    merge_summary = read_json(work.paths["merge_summary"])
    assert merge_summary["md5"] == file_md5(work.dataset)
    if not case.added:  # one index fewer than the good run
        assert merge_summary["md5"] != baseline.dataset_md5
    assert case.index_id not in {entry["index_id"] for entry in merge_summary["indices"]}
    columns = pd.read_parquet(work.dataset).columns
    assert not [c for c in columns if c.startswith(case.index_id)]
    assert any(c.startswith(f"{TARGET}__") for c in columns)

    # What a refused link points to is never read: its content shows in no output.
    outputs = [p for p in work.root.rglob("*") if p.is_file() and not p.is_symlink()
               and "outside" not in p.parts]
    for path in outputs:
        assert SECRET.encode() not in path.read_bytes(), path
    for result in results.values():
        assert SECRET not in result.output


# --- row-level quality: a few bad rows are dropped, the file is used ---------------


def close_outside_range(lines: list[str]) -> None:
    """Line 14's close 0.4 % below its low (as TEDPIX's real 2014-01-14 row)."""
    set_cell(lines, 14, "close", f"{float(cell(lines, 14, 'low')) * 0.996:.1f}")


@dataclass(frozen=True)
class RowsDropped:
    """Bad rows within validate.max_bad_row_share / max_bad_rows: dropped, file kept."""

    id: str
    breaker: Breaker
    dropped: list[tuple[int, str, str]]  # (line, column, rule) of each dropped row
    file: str = EXO_FILE


OUT_OF_ORDER = "date not after the previous row's (out of order)"
FAR_FROM_CLOSE = "more than 25% from the day's close (validate.max_daily_move)"


def big(_: str) -> str:
    return "1e308"


def ten_times(value: str) -> str:
    return f"{float(value) * 10:.1f}"


def cells_of(file: str, line_no: int, columns: Iterable[str], value: Callable[[str], str]
             ) -> Breaker:
    """Set several cells of one line, each from its old value."""
    def change(lines: list[str]) -> None:
        for column in columns:
            set_cell(lines, line_no, column, value(cell(lines, line_no, column)))

    return edit(file, change)
OUTSIDE = "outside [low, high] by more than 0.0005 (relative)"

ROWS_DROPPED = [  # a row that breaks several rules is recorded once per rule
    RowsDropped("duplicate-dates", edit(EXO_FILE, duplicate_date),
                [(7, "date", "duplicate date"), (8, "date", "duplicate date"),
                 (8, "date", OUT_OF_ORDER)]),
    RowsDropped("dates-out-of-order", edit(EXO_FILE, swap_rows), [(11, "date", OUT_OF_ORDER)]),
    RowsDropped("negative-price", cell_edit(EXO_FILE, 12, "close", lambda v: f"-{v}"),
                [(12, "close", "price is not > 0"), (12, "close", f"close {OUTSIDE}")]),
    RowsDropped("high-below-low", edit(EXO_FILE, high_below_low),
                [(13, "close", f"close {OUTSIDE}"), (13, "high", "high < low"),
                 (13, "open", f"open {OUTSIDE}")]),
    RowsDropped("date-in-future", cell_edit(EXO_FILE, N_ROWS + 1, "date", "20991231"),
                [(N_ROWS + 1, "date", "date in the future (after ")]),
    RowsDropped("close-outside-low-high", edit(EXO_FILE, close_outside_range),
                [(14, "close", f"close {OUTSIDE}")]),
    RowsDropped("empty-volume-cell", cell_edit(EXO_FILE, 15, "volume", ""),
                [(15, "volume", "empty cell")]),
    # levels no index can take, in an exogenous index (issue 31): the row alone is dropped
    RowsDropped("levels-of-1e308", cells_of(EXO_FILE, 50, ("close", "high", "last"), big),
                [(50, "close", "not finite, or above validate.max_price (1e+09)"),
                 (50, "high", f"not finite, or {FAR_FROM_CLOSE}"),
                 (50, "last", f"not finite, or {FAR_FROM_CLOSE}")]),
    RowsDropped("levels-ten-times-their-neighbours",
                cells_of(EXO_FILE, 50, ("close", "high", "last"), ten_times),
                [(50, "close", "more than 25% from the median close of the 2 days either"),
                 (50, "high", f"not finite, or {FAR_FROM_CLOSE}"),
                 (50, "last", f"not finite, or {FAR_FROM_CLOSE}")]),
    RowsDropped("infinite-high", cell_edit(EXO_FILE, 7, "high", "inf"),
                [(7, "high", f"not finite, or {FAR_FROM_CLOSE}")]),
    RowsDropped("target-dirty-row", edit(TARGET_FILE, close_outside_range),
                [(14, "close", f"close {OUTSIDE}")], file=TARGET_FILE),
]


@pytest.mark.parametrize("case", ROWS_DROPPED, ids=lambda case: case.id)
def test_a_few_bad_rows_are_dropped_and_recorded(case: RowsDropped, work: Work) -> None:
    case.breaker(work.raw)
    before = work.raw_md5()

    results = run_stages(work)

    assert exit_codes(results) == dict.fromkeys(STAGES, 0), {
        stage: result.output for stage, result in results.items()}
    assert work.raw_md5() == before, "a raw file was changed"

    def triples(rows: list[dict]) -> list[tuple[int, str, str]]:
        """(line, column, rule) of each recorded row, the rule cut to the case's prefix."""
        return [(r["line"], r["column"], r["rule"][:len(rule)])
                for r, (_, _, rule) in zip(rows, case.dropped, strict=True)]

    validated = results["validate"]
    assert f"{N_FILES} of {N_FILES} files usable; {len({d[0] for d in case.dropped})} bad rows"\
        f" dropped" in validated.stdout
    # one warning per dropped row: file, line, column, rule, value
    warnings = prefixed(validated.stderr, "warning: ")
    for line, column, rule in case.dropped:
        assert any(w.startswith(f"warning: {case.file}: line {line}, column {column}: {rule}")
                   and ", value " in w and w.endswith("; row dropped") for w in warnings), \
            (line, warnings)
    assert not prefixed(validated.stderr, "error:")

    summary = read_json(work.paths["validation_summary"])
    verdict = next(f for f in summary["files"] if f["file"] == case.file)
    assert verdict["status"] == "valid" and verdict["usable"]
    assert triples(verdict["dropped_rows"]) == case.dropped
    assert all(r["value"] for r in verdict["dropped_rows"])
    assert verdict["dropped_lines"] == sorted({d[0] for d in case.dropped})

    # the quarantine record and the list: file, line, column, value, rule of each row
    record = read_json(work.paths["quarantine_dir"] / f"{case.file}.json")
    assert record["status"] == "rows dropped" and record["md5"] == before[case.file]
    assert triples(record["rows"]) == case.dropped
    listed = read_json(work.paths["quarantine_dir"] / "quarantine.json")
    assert listed["files"] == []
    assert [(r["file"], r["line"], r["column"]) for r in listed["rows_dropped"]] == [
        (case.file, line, column) for line, column, _ in case.dropped]
    page = (work.paths["validation_report_dir"] / "index.html").read_text(encoding="utf-8")
    assert "Rows dropped (" in page
    # the page: the project's header and the way back to the front page; the file's
    # expectations by GX's name and column with their results, the rows it dropped with
    # their reasons; its problems are never "none"
    assert 'id="tsepipe-header"' in page and '<span class="model">none' in page
    home = page.split('<a class="home" href="', 1)[1].split('"', 1)[0]
    assert (work.paths["validation_report_dir"] / home).resolve() == \
        work.paths["front_page"].resolve()
    files_table = page[page.index("<h2>Files</h2>"):page.index('<h2 id="expectations">')]
    row = files_table[files_table.index(f">{case.file}</a>"):]
    row = row[:row.index("</tr>")]
    assert ">none</td>" not in row and "bad row" in row and "dropped" in row
    section = page[page.index(f"<strong>{case.file}</strong>"):]
    section = section[:section.index("</details>")].replace("<wbr>", "")
    assert "<code>expect_table_row_count_to_be_between</code>" in section
    assert '<code>expect_column_values_to_not_be_null</code> <span class="muted">(date)' \
        in section
    rules = {rule for _, _, rule in case.dropped}
    failed = section.count('<span class="badge rows-dropped">')
    assert failed >= len(rules) and f" of {section.count('<code>expect_')} expectations passed" \
        in section
    for line, column, rule in case.dropped:
        assert f"<td>{escape(rule)}" in section  # the expectation's row and the row's
        assert f'<td class="num">{line}</td><td class="date">' in section
        assert f"</td><td>{column}</td>" in section

    # the dataset: the dropped day of the target is no trading day; another index's
    # dropped day takes its last known value (the day before's), never the bad one
    frame = pd.read_parquet(work.dataset)
    broken = decode((work.raw / case.file).read_bytes())
    index_id = Path(case.file).stem
    for line, _, _ in case.dropped:
        day = pd.Timestamp(broken[line - 1].split(",")[FIELD["date"]])
        if index_id == TARGET:
            assert day not in set(frame["date"])
        elif day in set(frame["date"]):
            position = int(frame.index[frame["date"] == day][0])
            closes = frame[f"{index_id}__close"]
            assert closes.iloc[position] == closes.iloc[position - 1], day
    summary = read_json(work.paths["merge_summary"])
    assert summary["last_date"] == summary["target_last_date"]


# --- files a spreadsheet or a client saved: read like the originals -----------------


def as_tab_separated(raw: bytes) -> bytes:
    """Excel's / LibreOffice's "Unicode text": UTF-16 LE with BOM, TABs, CRLF."""
    return encode([line.replace(",", "\t") for line in decode(raw)])


def newest_first(lines: list[str]) -> None:
    lines[1:N_ROWS + 1] = lines[N_ROWS:0:-1]


def only_date_and_close(lines: list[str]) -> None:
    for number, line in enumerate(lines):
        if line:
            fields = line.split(",")
            lines[number] = ",".join([fields[FIELD["date"]], fields[FIELD["close"]]])


def upper_case_extension(raw_dir: Path) -> None:
    (raw_dir / EXO_FILE).rename(raw_dir / f"{EXO}.CSV")


@dataclass(frozen=True)
class Readable:
    id: str
    breaker: Breaker
    fields: tuple[str, ...]  # the dataset's fields of the index
    file: str = EXO_FILE


READABLE = [
    Readable("tab-separated-unicode-text", rewrite(EXO_FILE, as_tab_separated),
             ("open", "high", "low", "close", "volume", "value", "trades", "openint", "last")),
    Readable("newest-first", edit(EXO_FILE, newest_first),
             ("open", "high", "low", "close", "volume", "value", "trades", "openint", "last")),
    Readable("only-date-and-close", edit(EXO_FILE, only_date_and_close), ("close",)),
    Readable("upper-case-extension", upper_case_extension,
             ("open", "high", "low", "close", "volume", "value", "trades", "openint", "last"),
             file=f"{EXO}.CSV"),
]


@pytest.mark.parametrize("case", READABLE, ids=lambda case: case.id)
def test_files_as_they_come_are_read(case: Readable, work: Work, baseline: Baseline) -> None:
    case.breaker(work.raw)
    before = work.raw_md5()

    results = run_stages(work)

    assert exit_codes(results) == dict.fromkeys(STAGES, 0), {
        stage: result.output for stage, result in results.items()}
    assert work.raw_md5() == before
    assert f"{N_FILES} of {N_FILES} files usable" in results["validate"].stdout
    frame = pd.read_parquet(work.dataset)
    fields = tuple(c.split("__")[1] for c in frame.columns if c.startswith(f"{EXO}__"))
    assert fields == case.fields
    baseline_frame = pd.read_parquet(baseline.root / "data" / "processed" / "merged.parquet")
    for field_name in case.fields:
        column = f"{EXO}__{field_name}"
        assert frame[column].tolist() == baseline_frame[column].tolist(), column


# --- fatal: the run stops with exit 3 and the previous dataset stays -----------------


def remove(file: str) -> Breaker:
    return lambda raw_dir: (raw_dir / file).unlink()


def no_exports(raw_dir: Path) -> None:
    for path in raw_dir.iterdir():
        path.unlink()
    (raw_dir / "README.md").write_text("exports go here\n", encoding="utf-8")


def same_bytes_under_another_id(raw_dir: Path) -> None:
    shutil.copy2(raw_dir / EXO_FILE, raw_dir / f"{EXO}B.csv")


# 11 of 16 usable, below validate.min_usable_files = 12. Five more kinds of broken file,
# each of whose messages the case checks (one run of validate instead of five).
FIVE_BROKEN = {
    "IRX6XSNT0009.csv": cells_edit("IRX6XSNT0009.csv", range(30, 35), "close", ""),
    "IRX6XS300003.csv": cells_edit("IRX6XS300003.csv", range(40, 45), "volume", "-5"),
    "IRX6XSLC0000.csv": rewrite("IRX6XSLC0000.csv", first_rows(50)),
    "IRX6XWAI0001.csv": cell_edit("IRX6XWAI0001.csv", 35, "date", dashed_date),
    "IRX6X27T0007.csv": cell_edit("IRX6X27T0007.csv", 30, "close",
                                  lambda v: v[:3] + "\x00" + v[3:]),
}


def five_broken(raw_dir: Path) -> None:
    for breaker in FIVE_BROKEN.values():
        breaker(raw_dir)


STALE = ["IRX6XSNT0009.csv", "IRX6XS300003.csv", "IRX6XSLC0000.csv", "IRX6XWAI0001.csv",
         "IRX6X27T0007.csv"]


def five_stale(raw_dir: Path) -> None:
    """Five exports not refreshed for 40 trading days: 10 indices left (one starts late)."""
    def last_40_days_missing(lines: list[str]) -> None:
        del lines[N_ROWS + 1 - 40: N_ROWS + 1]  # the rows are lines 2 .. N_ROWS + 1

    for file in STALE:
        edit(file, last_40_days_missing)(raw_dir)


@dataclass(frozen=True)
class Fatal:
    """Input the run cannot go on with: ``stage`` exits 3, nothing after it runs."""

    id: str
    breaker: Breaker
    stage: str
    expect: list[tuple[str, ...]]  # each tuple: substrings of one error line
    quarantined: list[str] = field(default_factory=list)  # files recorded by validate


FATAL = [
    Fatal("target-missing", remove(TARGET_FILE), "validate",
          [(f"{TARGET}: the target index file is missing", "among 15 export files")]),
    Fatal("target-too-many-bad-rows", edit(TARGET_FILE, negative_closes(50, 51, 60, 70, 80)),
          "validate",
          [(f"{TARGET_FILE}: the target index {TARGET} is invalid",),
           (f"{TARGET_FILE}: lines 50, 51, 60, 70, 80, column close: price is not > 0 "
            "(5 rows)",),
           (f"{TARGET_FILE}: 5 bad rows of 300 (1.7%): more than a file may lose",)],
          [TARGET_FILE]),
    Fatal("target-unreadable-non-numeric", cell_edit(TARGET_FILE, 9, "close", "n/a"), "validate",
          [(f"{TARGET_FILE}: the target index {TARGET} is unreadable",),
           (f"{TARGET_FILE}: line 9, column close: not a number: 'n/a'",)],
          [TARGET_FILE]),
    Fatal("fewer-usable-files-than-threshold", five_broken, "validate",
          [("11 of 16 export files usable, at least 12 needed", "validate.min_usable_files"),
           ("IRX6XSNT0009.csv: lines 30, 31, 32, 33, 34, column close: empty cell (5 rows)",),
           ("IRX6XS300003.csv: lines 40, 41, 42, 43, 44, column volume: volume < 0 (5 rows)",),
           ("IRX6XSLC0000.csv: fewer than 100 rows (found 50)",),
           ("IRX6XWAI0001.csv: line 35, column date: not an 8-digit YYYYMMDD date",),
           ("IRX6X27T0007.csv: line 30: ", "control character '\\x00'", "binary file")],
          list(FIVE_BROKEN)),
    Fatal("stale-indices-leave-too-few", five_stale, "merge",
          [("merge: only 10 of 16 indices can be merged, at least 12 needed",
            "validate.min_usable_files")]
          + [(f"{Path(f).stem} (", "left out: stale: its last day", "40 trading days before")
             for f in STALE]),
    Fatal("no-export-files", no_exports, "ingest",
          [("raw: no export files matching *.csv, *.txt",)]),
    Fatal("same-export-under-two-names", same_bytes_under_another_id, "ingest",
          [(f"{EXO_FILE} and {EXO}B.csv: the same bytes", "count twice", "keep one")]),
]


@pytest.mark.parametrize("case", FATAL, ids=lambda case: case.id)
def test_fatal_input_stops_the_run(case: Fatal, work: Work, baseline: Baseline) -> None:
    case.breaker(work.raw)
    before = work.raw_md5()

    results = run_stages(work)

    stopped_at = STAGES.index(case.stage)
    assert exit_codes(results) == {
        stage: 0 if number < stopped_at else DATA_ERROR_EXIT
        for number, stage in enumerate(STAGES[: stopped_at + 1])
    }, {stage: result.output for stage, result in results.items()}
    assert work.raw_md5() == before, "a raw file was changed"

    failed = results[case.stage]
    errors = prefixed(failed.stderr, "error: ")
    assert errors, failed.stderr
    for parts in case.expect:
        assert any(all(part in line for part in parts) for line in errors), (parts, errors)
    assert not failed.stdout.strip(), "a failing stage reports nothing as done"

    # The previous dataset and its summary stay, byte for byte.
    assert file_md5(work.dataset) == baseline.dataset_md5
    assert file_md5(work.paths["merge_summary"]) == baseline.merge_summary_md5

    if case.stage == "ingest":  # the previous tables and report stay too
        tables = {p.name: file_md5(p) for p in work.paths["tables_dir"].glob("*.parquet")}
        assert tables == baseline.tables
        assert file_md5(work.paths["ingest_report"]) == baseline.ingest_report_md5
    elif case.stage == "merge":  # validation passed: the merge policy left too few
        assert read_json(work.paths["validation_summary"])["passed"] is True
    else:  # validation says why, for the merge to refuse, and records each left-out file
        summary = read_json(work.paths["validation_summary"])
        assert summary["passed"] is False
        failed_checks = [c["message"] for c in summary["set_checks"] if not c["passed"]]
        assert failed_checks and all(f"error: {m}" in errors for m in failed_checks)
        quarantine = work.paths["quarantine_dir"]
        for file in case.quarantined:
            record = read_json(quarantine / f"{file}.json")
            assert record["md5"] == before[file]
            assert record["reasons"]
        listed = read_json(quarantine / "quarantine.json")["files"]
        assert sorted(entry["file"] for entry in listed) == sorted(case.quarantined)


def test_merge_refuses_when_validation_did_not_pass(work: Work, baseline: Baseline) -> None:
    summary_path = work.paths["validation_summary"]
    summary = read_json(summary_path)
    assert summary["passed"] is True
    summary["passed"] = False
    summary_path.write_text(json.dumps(summary), encoding="utf-8")
    before = work.raw_md5()

    result = invoke(work, "merge")

    assert result.exit_code == DATA_ERROR_EXIT, result.output
    assert prefixed(result.stderr, "error: ") == [
        f"error: {summary_path}: validation did not pass; nothing merged"
    ]
    assert file_md5(work.dataset) == baseline.dataset_md5
    assert file_md5(work.paths["merge_summary"]) == baseline.merge_summary_md5
    assert work.raw_md5() == before


# --- regressions: bugs this suite found, fixed ------------------------------------


def test_ragged_row_error_names_its_line(work: Work) -> None:
    edit(EXO_FILE, ragged)(work.raw)

    assert invoke(work, "ingest").exit_code == 0

    # The reason ingest records is the line validate prints and quarantines.
    report = read_json(work.paths["ingest_report"])
    reason = next(entry["reason"] for entry in report["files"] if entry["file"] == EXO_FILE)
    assert reason == f"{EXO_FILE}: line 20: expected 13 fields as in the header, found 10"


def test_infinite_volume_is_left_out(work: Work) -> None:
    """An infinite level is a bad row (ROWS_DROPPED); an infinite volume is no number."""
    cell_edit(EXO_FILE, 7, "volume", "inf")(work.raw)

    results = run_stages(work, ("ingest", "validate"))

    assert exit_codes(results) == {"ingest": 0, "validate": 0}
    assert EXO not in read_json(work.paths["validation_summary"])["usable_index_ids"]
    warnings = prefixed(results["validate"].stderr, f"warning: {EXO_FILE}: ")
    assert any("line 7, column volume: not a number: 'inf'" in w for w in warnings), (
        results["validate"].stderr
    )


def test_merge_without_validation_summary_is_a_data_error(work: Work, baseline: Baseline) -> None:
    summary_path = work.paths["validation_summary"]
    summary_path.unlink()

    result = invoke(work, "merge")

    assert file_md5(work.dataset) == baseline.dataset_md5
    assert result.exit_code == DATA_ERROR_EXIT, result.output
    assert prefixed(result.stderr, "error: ") == [
        f"error: {summary_path}: no validation summary; run tsepipe validate first"
    ]


def test_ingest_left_out_line_on_stderr_of_every_invocation(work: Work) -> None:
    rewrite(EXO_FILE, lambda _: b"")(work.raw)
    # A fresh interpreter, so that no test harness has configured logging first.
    script = textwrap.dedent(f"""
        import json
        from typer.testing import CliRunner
        from tsepipe.cli import app
        runner = CliRunner()
        results = [runner.invoke(app, ["ingest", "--params", {str(work.params_file)!r}])
                   for _ in range(2)]
        print(json.dumps([[r.exit_code, r.stderr] for r in results]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    results = json.loads(done.stdout.splitlines()[-1])

    for exit_code, stderr in results:
        assert exit_code == 0
        assert "Traceback" not in stderr, stderr
        assert f"warning: {EXO_FILE}: empty file (0 bytes)" in stderr, stderr


# --- hostile file names and what a killed run left behind ---------------------------


@pytest.mark.parametrize("name", [
    "IRX6XEVIL001\nerror: IRX6XTPI0009: forged.csv",  # a newline forging an error line
    os.fsdecode(b"IRX6X\xff\xfeBAD.csv"),  # bytes that are not UTF-8
    "IRX6X\x1b[31mRED.csv",  # a terminal escape
], ids=["newline", "invalid-utf8", "escape-sequence"])
def test_hostile_file_names_are_refused_on_one_line(name: str, work: Work) -> None:
    shutil.copy2(work.raw / EXO_FILE, work.raw / name)

    results = run_stages(work)

    assert exit_codes(results) == dict.fromkeys(STAGES, 0), {
        stage: result.output for stage, result in results.items()}
    for result in results.values():
        assert not prefixed(result.stderr, "error:"), result.stderr  # nothing forged
        assert "\x1b" not in result.output
    told = [line for line in results["ingest"].stderr.splitlines() if "refused" in line]
    assert len(told) == 1 and told[0].startswith("warning: IRX6X")
    assert "control characters or bytes that are not UTF-8: refused" in told[0]
    report = read_json(work.paths["ingest_report"])  # valid JSON, the name escaped
    entry = next(e for e in report["files"] if e["status"] == "refused")
    assert "\n" not in entry["file"] and "\x1b" not in entry["file"]
    assert entry["md5"] is None  # never read
    assert f"{N_FILES} of {N_FILES + 1} files usable" in results["validate"].stdout
    quarantine = {p.name for p in work.paths["quarantine_dir"].iterdir()}
    assert all("\n" not in n and "/" not in n for n in quarantine)


@pytest.mark.parametrize(("copy", "used"), [(f"{EXO} (1).csv", True), (f"{EXO}.json", False)],
                         ids=["browser-second-download", "one-stem-two-formats"])
def test_two_files_of_one_index_are_not_two_indices(copy: str, used: bool, work: Work,
                                                     baseline: Baseline) -> None:
    shutil.copy2(work.raw / EXO_FILE, work.raw / copy)

    results = run_stages(work)

    assert exit_codes(results) == dict.fromkeys(STAGES, 0), {
        stage: result.output for stage, result in results.items()}
    told = prefixed(results["ingest"].stderr, "warning: ")
    frame = pd.read_parquet(work.dataset)
    if used:  # the copy is refused, the index read once from its own file
        assert told == [f"warning: {copy}: a second download of {EXO_FILE} (a browser's copy): "
                        f"refused, {EXO_FILE} is read (delete the copy); left out"]
        pd.testing.assert_frame_equal(frame, pd.read_parquet(baseline.root / "data" /
                                                             "processed" / "merged.parquet"))
    else:  # which of the two is right is not guessed: both refused, each naming the other
        assert told == [f"warning: {first}: the same index id as {second}: both refused (keep "
                        "one; which is right is not guessed); left out"
                        for first, second in ((EXO_FILE, copy), (copy, EXO_FILE))]
        assert not [c for c in frame.columns if c.startswith(EXO)]
    assert not [c for c in frame.columns if "(" in c or c.startswith(f"{EXO}.")]
    usable = N_FILES - (not used)
    assert f"{usable} of {N_FILES + 1} files usable" in results["validate"].stdout


def test_staging_folders_of_a_killed_ingest_are_cleaned(work: Work, baseline: Baseline) -> None:
    tables = work.paths["tables_dir"]
    left = [tables.with_name(f".{tables.name}.{suffix}") for suffix in ("k1ll3d", "previous")]
    for folder in left:
        folder.mkdir()
        (folder / "half.parquet").write_bytes(b"half a table")

    result = invoke(work, "ingest")

    assert result.exit_code == 0
    assert not any(folder.exists() for folder in left)
    assert sum("left by an ingest that did not finish" in line
               for line in result.stderr.splitlines()) == 2
    assert {p.name: file_md5(p) for p in tables.glob("*.parquet")} == baseline.tables
