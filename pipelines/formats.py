"""Readers for TSETMC index exports (layouts A, B and C of docs/input-formats.md).

``read_export(path)`` turns one file into a typed tidy table indexed by the file's line
numbers: ``date`` (datetime64), ``index_id`` (the file name's stem, e.g. the ISIN),
``index_name`` and the canonical numeric fields present in the file.

Columns are mapped by header name, never by position. Encodings are detected from the
byte-order mark, or from NUL bytes for UTF-16 without one, and decoded strictly: a file
that does not decode, or decodes to something that is not an export, raises
``ExportReadError`` naming the file, and the line and column where known.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import jdatetime
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipelines.errors import ExportReadError

# Canonical numeric fields, in the order they appear in every tidy table.
NUMERIC_FIELDS = (
    "open", "high", "low", "close", "volume", "value", "trades", "openint", "prev_close", "last",
)
TEXT_FIELDS = ("ticker", "period", "index_name")
PRICE_FIELDS = ("open", "high", "low", "close")
REQUIRED_FIELDS = ("date", "open", "high", "low", "close", "volume")

# Header token (lower case, without angle brackets and spaces) -> canonical field.
_HEADER_NAMES = {
    "ticker": "ticker",
    "dtyyyymmdd": "date",
    "date": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "vol": "volume",
    "volume": "volume",
    "value": "value",
    "openint": "openint",
    "per": "period",
    "last": "last",
    "lastp": "last",
    "name": "index_name",
}
# Layout A repeats <OPENINT> three times; the study's first row shows the first two are
# the traded value and the number of trades. The third keeps the name openint.
_LAYOUT_A_OPENINT = ("value", "trades", "openint")

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


@dataclass
class Export:
    """One export file read into a tidy table, with what was learned reading it."""

    path: Path
    frame: pd.DataFrame
    index_id: str
    index_name: str
    encoding: str
    layout: str
    calendar: str
    dropped_columns: list[str] = field(default_factory=list)


class EmptyExportError(ExportReadError):
    """A file with no data rows (zero bytes, or a header only): a warning, not a failure."""


def detect_encoding(raw: bytes) -> tuple[str, int]:
    """Return (codec name, BOM length) for an export's bytes.

    UTF-8 BOM, UTF-16 LE/BE BOM, or BOM-less UTF-16 recognised by NUL bytes in the
    high (LE: odd offsets) or low (BE: even offsets) half of ASCII characters.
    Anything else is read as UTF-8, strictly.
    """
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8", len(codecs.BOM_UTF8)
    if raw.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if raw.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    sample = raw[:4096]
    if b"\x00" in sample:
        odd_nuls = sample[1::2].count(0)
        even_nuls = sample[0::2].count(0)
        if odd_nuls > 0.3 * len(sample) / 2 and odd_nuls > even_nuls:
            return "utf-16-le", 0
        if even_nuls > 0.3 * len(sample) / 2:
            return "utf-16-be", 0
    return "utf-8", 0


def decode_export(path: Path, raw: bytes) -> tuple[str, str]:
    """Decode an export's bytes strictly; return (text, encoding label)."""
    encoding, bom = detect_encoding(raw)
    body = raw[bom:]
    label = encoding + ("-bom" if bom else "")
    if encoding.startswith("utf-16") and len(body) % 2:
        raise ExportReadError(
            path,
            f"truncated {encoding.upper()} data: {len(body)} bytes after the BOM is not a "
            "whole number of 2-byte characters (the file was cut short or is not UTF-16)",
            line=body[: len(body) - 1].decode(encoding, errors="replace").count("\n") + 1,
        )
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        raise ExportReadError(
            path,
            f"not valid {encoding.upper()} at byte {exc.start + bom} ({exc.reason}); expected "
            "UTF-16 (with or without BOM) or UTF-8: wrong encoding or not a text export",
            line=line,
        ) from None
    bad = _CONTROL_CHARS.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise ExportReadError(
            path,
            f"decoded as {label} but contains control character {bad.group()!r}: "
            "wrong encoding or a binary file",
            line=line,
        )
    return text, label


def canonical_columns(header: list[str]) -> tuple[list[str], str, list[str]]:
    """Map header names to canonical names; return (names, layout, dropped).

    Every column gets a distinct name. Unknown columns are named ``unknown_<header>``
    and reported as dropped; repeated names get ``_2``, ``_3`` suffixes.
    """
    tokens = [re.sub(r"[<>\s]", "", name).lower() for name in header]
    has_first = "first" in tokens
    openints = tokens.count("openint")
    if openints == 3 and "ticker" in tokens:
        layout = "A"
    elif has_first:
        layout = "B"
    elif "lastp" in tokens:
        layout = "C"
    else:
        layout = "other"

    names: list[str] = []
    dropped: list[str] = []
    seen_openint = 0
    for original, token in zip(header, tokens, strict=True):
        if token == "openint":
            seen_openint += 1
            if layout == "A":
                name = _LAYOUT_A_OPENINT[seen_openint - 1]
            elif layout == "B":
                name = "trades"  # canonical layout B: <OPENINT> is the number of trades
            else:
                name = "openint" if seen_openint == 1 else f"openint_{seen_openint}"
        elif has_first and token == "first":
            name = "open"
        elif has_first and token == "open":
            name = "prev_close"  # layout B: <OPEN> is the previous close
        else:
            name = _HEADER_NAMES.get(token, "")
        if not name:
            name = f"unknown_{token or 'blank'}"
            dropped.append(original.strip())
        if name in names:
            suffix = 2
            while f"{name}_{suffix}" in names:
                suffix += 1
            if not name.startswith(("openint", "unknown_")):
                dropped.append(f"{original.strip()} (repeated)")  # e.g. a second <CLOSE>
            name = f"{name}_{suffix}"
        names.append(name)
    return names, layout, dropped


def read_export(path: Path | str) -> Export:
    """Read one export file into a tidy table (see the module docstring)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExportReadError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not raw.strip(b"\x00\r\n\t \xff\xfe\xef\xbb\xbf"):
        raise EmptyExportError(path, f"empty file ({len(raw)} bytes): no header and no rows")
    text, encoding = decode_export(path, raw)

    lines = text.splitlines()
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    header_line_no, header_text = numbered[0]
    header = _split_header(header_text)
    names, layout, dropped = canonical_columns(header)
    missing = [name for name in ("date", "close") if name not in names]
    if missing:
        raise ExportReadError(
            path,
            "first line is not an export header: no "
            + " or ".join(f"<{'DTYYYYMMDD' if m == 'date' else m.upper()}>" for m in missing)
            + f" column (it reads {header_text[:60]!r})",
            line=header_line_no,
        )
    body = numbered[1:]
    if not body:
        raise EmptyExportError(path, "header only: the file has no data rows")
    line_numbers = np.array([number for number, _ in body])
    table = _parse_body(path, names, body, line_numbers)
    frame = _typed_frame(path, table, names, line_numbers)

    index_id = path.stem
    index_name = _first_text(table, "index_name") or _first_text(table, "ticker") or index_id
    frame.insert(1, "index_id", index_id)
    frame.insert(2, "index_name", index_name)
    calendar = frame.attrs.pop("calendar")
    return Export(path, frame, index_id, index_name, encoding, layout, calendar, dropped)


def _split_header(text: str) -> list[str]:
    """The header line's fields (quotes honoured)."""
    return next(csv.reader([text]))


def _parse_body(
    path: Path, names: list[str], body: list[tuple[int, str]], line_numbers: np.ndarray
) -> pa.Table:
    bad_rows: list[tuple[int, int]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        bad_rows.append((row.number or 0, row.actual_columns))
        return "skip"

    data = "\n".join(line for _, line in body).encode("utf-8")
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            # single-threaded: only then does pyarrow number the invalid rows
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ExportReadError(path, f"not parseable as CSV: {exc}") from None
    if bad_rows:
        row_number, got = bad_rows[0]
        line = int(line_numbers[row_number - 1]) if 0 < row_number <= len(line_numbers) else None
        more = f" ({len(bad_rows) - 1} more such rows)" if len(bad_rows) > 1 else ""
        raise ExportReadError(
            path, f"expected {len(names)} fields as in the header, found {got}{more}", line=line
        )
    return table


def _typed_frame(
    path: Path, table: pa.Table, names: list[str], line_numbers: np.ndarray
) -> pd.DataFrame:
    columns = {name: table.column(name).to_pandas() for name in names}
    dates, calendar = _parse_dates(path, columns["date"], line_numbers)
    frame = pd.DataFrame({"date": dates}, index=pd.Index(line_numbers, name="line"))
    for name in NUMERIC_FIELDS:
        if name in columns:
            frame[name] = _parse_numbers(path, name, columns[name], line_numbers)
    frame.attrs["calendar"] = calendar
    return frame


def _parse_numbers(
    path: Path, name: str, raw: pd.Series, line_numbers: np.ndarray
) -> np.ndarray:
    text = raw.str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = ~np.isfinite(values) & (text != "")  # "inf" and "nan" are not prices either
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise ExportReadError(
            path,
            f"not a number: {raw.iloc[position]!r}",
            line=int(line_numbers[position]),
            column=name,
        )
    return values.to_numpy(dtype="float64")


def _parse_dates(
    path: Path, raw: pd.Series, line_numbers: np.ndarray
) -> tuple[np.ndarray, str]:
    text = raw.str.strip()
    well_formed = text.str.fullmatch(r"\d{8}")
    if not well_formed.all():
        position = int(np.flatnonzero(~well_formed.to_numpy())[0])
        raise ExportReadError(
            path,
            f"not an 8-digit YYYYMMDD date: {raw.iloc[position]!r}",
            line=int(line_numbers[position]),
            column="date",
        )
    numbers = text.astype("int64").to_numpy()
    years = numbers // 10000
    jalali = (years >= 1300) & (years < 1500)
    if jalali.any() and not jalali.all():
        position = int(np.flatnonzero(jalali != jalali[0])[0])
        raise ExportReadError(
            path,
            f"calendar changes within the file: {numbers[position]} is "
            f"{'Jalali' if jalali[position] else 'Gregorian'}, line {line_numbers[0]} is not",
            line=int(line_numbers[position]),
            column="date",
        )
    if jalali.all():
        converted = {}
        for value in np.unique(numbers):
            year, month, day = value // 10000, value // 100 % 100, value % 100
            try:
                converted[value] = np.datetime64(
                    jdatetime.date(int(year), int(month), int(day)).togregorian(), "ns"
                )
            except ValueError:
                converted[value] = np.datetime64("NaT")
        dates = np.array([converted[value] for value in numbers], dtype="datetime64[ns]")
        calendar = "jalali"
    else:
        dates = pd.to_datetime(text, format="%Y%m%d", errors="coerce").to_numpy()
        calendar = "gregorian"
    invalid = np.isnat(dates)
    if invalid.any():
        position = int(np.flatnonzero(invalid)[0])
        raise ExportReadError(
            path,
            f"not a valid {calendar.capitalize()} date: {numbers[position]}",
            line=int(line_numbers[position]),
            column="date",
        )
    return dates, calendar


def _first_text(table: pa.Table, name: str) -> str:
    if name not in table.column_names:
        return ""
    for value in table.column(name).to_pylist():
        if value and value.strip():
            return value.strip()
    return ""
