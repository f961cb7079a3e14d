"""Readers for TSETMC index exports (layouts A-D: docs/input-formats.md).

``read_export(path)`` turns one file into a typed tidy table: ``date`` (datetime64),
``index_id`` (the file name's stem, e.g. the ISIN), ``index_name`` and the canonical numeric
fields present in the file, in ``NUMERIC_FIELDS`` order. Only ``date`` and ``close`` are
required; ``open``, ``high``, ``low``, ``volume`` and the rest are used when present. The
frame's index, named ``line`` in every layout, holds 1-based row numbers: the line in the
file for text exports, the record in the ``indexB2`` list for JSON answers
(``Export.row_unit`` says which, and errors use the same word).

Text exports (layouts A, B and C): columns are mapped by header name, never by position.
The delimiter is sniffed from the header line: comma, TAB (what a spreadsheet writes when
it saves an export as "Unicode text": UTF-16 LE with BOM, TAB separators, CRLF) or
semicolon, whichever splits the header into the most fields that look like export columns.
In a semicolon-separated file (European locales) a decimal comma in a number,
``58671,00``, is read as a decimal point; in comma- and TAB-separated files a comma in a
number is an error. Fields may be quoted (``"Index Group 27"``, a name holding the
delimiter, ``""`` for a quote inside); a quoted field must end on its own line, and a
quote left open or text after a closing quote is an error naming the line and column.

JSON answers (layout D, TSETMC's ``GetIndexB2History``) are recognised by content, not by
file name: the first non-blank character is ``{`` or ``[``.

Encodings are detected from the byte-order mark, or from NUL bytes for UTF-16 without one,
and decoded strictly: a file that does not decode, or decodes to something that is not an
export, raises ``ExportReadError`` naming the file, and the line (or record) and column
where known.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jdatetime
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from pipelines.core.errors import ExportReadError

# Canonical numeric fields, in the order they appear in every tidy table.
NUMERIC_FIELDS = (
    "open", "high", "low", "close", "volume", "value", "trades", "openint", "prev_close", "last",
)
PRICE_FIELDS = ("open", "high", "low", "close")
# Every field that is an index level: an infinite one (``inf``, ``1e309``) is read as it is
# and validation drops its row (not finite); an infinite volume or count, or a ``nan``
# anywhere, makes the file unreadable.
LEVEL_FIELDS = (*PRICE_FIELDS, "prev_close", "last")
# What every export must have; the other fields are used when present.
REQUIRED_FIELDS = ("date", "close")

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

_KNOWN_TOKENS = frozenset(_HEADER_NAMES) | {"first"}
_BRACKETED = re.compile(r"<[^<>]*>")
# Delimiters tried on the header line, in order of preference on a tie.
_DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon"}
_LINE_END = re.compile(r"\r\n|\r|\n")  # the line ends pyarrow knows (not U+2028 etc.)
_UNBALANCED_QUOTE = "unbalanced quote '\"' (a field that starts with a quote must end with one)"

# Layout D: the TSETMC API's index history, {"indexB2": [{record}, ...]} (pipelines.data.fetch
# writes it too, from these names).
LAYOUT_D_LIST = "indexB2"
LAYOUT_D_DATE = "dEven"
LAYOUT_D_CODE = "insCode"  # the index's TSETMC code: metadata, the same in every record
LAYOUT_D_VALUES = {  # record key -> canonical field
    "xNivInuClMresIbs": "close",
    "xNivInuPbMresIbs": "low",
    "xNivInuPhMresIbs": "high",
}
_JSON_FIELDS = {LAYOUT_D_DATE: "date"} | LAYOUT_D_VALUES  # record key -> canonical field
_JSON_GAP = re.compile(r"[\s,]*")

# The most columns (or a layout D record's keys) any export has: layout A's 12 and a few
# extra. A wider header is refused before it is read (a 100,000-column header took minutes
# and a gigabyte to read and leave out).
MAX_COLUMNS = 64

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_JSON_START = re.compile(r"\s*[{\[]")  # layout D: recognised by content, not by name
# Bytes read at a time to count an export's rows against ``ingest.max_rows``.
_COUNT_CHUNK = 1 << 20


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
    delimiter: str | None = "comma"  # "comma", "tab" or "semicolon"; None for JSON
    row_unit: str = "line"  # what the frame's index counts: "line", or "record" (JSON)


class EmptyExportError(ExportReadError):
    """A file with no data rows (zero bytes, or a header only): a warning, not a failure."""


class TooManyRowsError(ExportReadError):
    """A file of more rows than may be read (``ingest.max_rows``), refused before parsing."""


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
    tokens = [_token(name) for name in header]
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


def sniff_delimiter(header: str) -> str:
    """The delimiter of an export's header line: ``","``, ``"\t"`` or ``";"``.

    The one that splits the line into the most fields that look like export columns: known
    names (``<DTYYYYMMDD>``, ``<CLOSE>``, ``date``, ``close``, ...), then any name in angle
    brackets. Comma wins a tie (also when no candidate finds a column: the header check
    that follows then names the line).
    """

    def score(delimiter: str) -> tuple[int, int]:
        fields = _split_header(header, delimiter)
        known = sum(_token(name) in _KNOWN_TOKENS for name in fields)
        bracketed = sum(_BRACKETED.fullmatch(name.strip()) is not None for name in fields)
        return known, bracketed

    return max(_DELIMITERS, key=score)  # max keeps the first of equal scores


def read_export(path: Path | str, max_rows: int | None = None) -> Export:
    """Read one export file into a tidy table (see the module docstring).

    ``max_rows``: a file that may hold more rows is refused (``TooManyRowsError``) before
    it is read whole (``refuse_long_export``): parsing takes memory a few times the file's
    size per row.
    """
    path = Path(path)
    try:
        if max_rows is not None:
            refuse_long_export(path, max_rows)
        raw = path.read_bytes()
    except OSError as exc:
        raise ExportReadError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not raw.strip(b"\x00\r\n\t \xff\xfe\xef\xbb\xbf"):
        raise EmptyExportError(path, f"empty file ({len(raw)} bytes): no header and no rows")
    text, encoding = decode_export(path, raw)
    if _JSON_START.match(text):
        return _read_json(path, text, encoding)
    return _read_text(path, text, encoding)


def refuse_long_export(path: Path, max_rows: int) -> None:
    """Raise ``TooManyRowsError`` if ``path`` may hold more than ``max_rows`` rows.

    An upper bound, counted without decoding or parsing: a row per line break (CR, LF or
    CRLF) in a text export, a record per ``{`` but the answer's own in a JSON one (judged
    from the first 4 KB, as the encoding is). The file is read ``_COUNT_CHUNK`` bytes at a
    time and counting stops once the bound is passed, so the memory used does not grow
    with the file: a 2.5 GB export of 10 M rows is refused after its first 25 MB, in 4 MB.
    """
    with open(path, "rb") as handle:
        head = handle.read(4096)  # what detect_encoding looks at
        encoding, bom = detect_encoding(head)
        width = 2 if encoding.startswith("utf-16") else 1
        units = np.dtype({"utf-16-le": "<u2", "utf-16-be": ">u2"}.get(encoding, "u1"))
        is_json = _JSON_START.match(head[bom:].decode(encoding, errors="replace")) is not None
        rows = -1 if is_json else 0  # the JSON answer's own "{" is no record
        handle.seek(bom)
        pending, last = b"", 0  # half a code unit left from the previous chunk; its last unit
        while more := handle.read(_COUNT_CHUNK):
            chunk = pending + more
            whole = len(chunk) - len(chunk) % width
            codes, pending = np.frombuffer(memoryview(chunk)[:whole], dtype=units), chunk[whole:]
            if is_json:
                rows += int(np.count_nonzero(codes == ord("{")))
            elif len(codes):
                cr, lf = codes == ord("\r"), codes == ord("\n")
                crlf = np.count_nonzero(cr[:-1] & lf[1:]) + int(last == ord("\r") and lf[0])
                rows += int(np.count_nonzero(cr) + np.count_nonzero(lf) - crlf)
                last = int(codes[-1])
            if rows > max_rows:
                unit = "records" if is_json else "lines"
                raise TooManyRowsError(path, f"{path.stat().st_size / 1e6:.1f} MB, more {unit} "
                                       f"than ingest.max_rows ({max_rows:,}): not read")


def _read_text(path: Path, text: str, encoding: str) -> Export:
    """Layouts A, B and C: a header line, then one row per line."""
    lines = _LINE_END.split(text)
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise EmptyExportError(path, "blank lines only: no header and no rows")
    header_line_no, header_text = numbered[0]
    _check_width(path, header_text, header_line_no)
    delimiter = sniff_delimiter(header_text)
    header = _split_header(header_text, delimiter)
    names, layout, dropped = canonical_columns(header)
    missing = [name for name in REQUIRED_FIELDS if name not in names]
    if missing:
        raise ExportReadError(
            path,
            "first line is not an export header: no "
            + " or ".join(f"<{'DTYYYYMMDD' if m == 'date' else m.upper()}>" for m in missing)
            + f" column (it reads {header_text[:60]!r})",
            line=header_line_no,
        )
    problem = _quote_problem(header_text, delimiter)
    if problem:
        raise ExportReadError(path, f"header: {problem[1]}", line=header_line_no,
                              column=str(problem[0] + 1))
    body = numbered[1:]
    if not body:
        raise EmptyExportError(path, "header only: the file has no data rows")
    line_numbers = np.array([number for number, _ in body], dtype="int64")
    table = _parse_body(path, names, body, line_numbers, delimiter)
    frame = _typed_frame(path, table, names, line_numbers, delimiter)

    index_id = path.stem
    index_name = _first_text(table, "index_name") or _first_text(table, "ticker") or index_id
    frame.insert(1, "index_id", index_id)
    frame.insert(2, "index_name", index_name)
    calendar = frame.attrs.pop("calendar")
    return Export(path, frame, index_id, index_name, encoding, layout, calendar, dropped,
                  delimiter=_DELIMITERS[delimiter])


def _check_width(path: Path, header_text: str, line: int) -> None:
    """A header with more fields than ``MAX_COLUMNS`` by any delimiter is not an export."""
    widest = max(header_text.count(delimiter) + 1 for delimiter in _DELIMITERS)
    if widest > MAX_COLUMNS:
        raise ExportReadError(path, f"header: {widest:,} columns, more than any export has "
                              f"({MAX_COLUMNS}): not an index export", line=line)


def _token(name: str) -> str:
    """A header name as looked up: lower case, without angle brackets and spaces."""
    return re.sub(r"[<>\s]", "", name).lower()


def _split_header(text: str, delimiter: str = ",") -> list[str]:
    """The header line's fields (quotes honoured)."""
    try:
        return next(csv.reader([text], delimiter=delimiter))
    except csv.Error:  # e.g. a field over csv's size limit: not a header anyway
        return [text]


def _quote_problem(line: str, delimiter: str) -> tuple[int, str] | None:
    """The first quoting error of one line, as (0-based field, reason); None if none.

    pyarrow's rules: a quote opens a quoted field only as the field's first character;
    inside one, ``""`` is a literal quote; the closing quote must be followed by the
    delimiter or the end of the line. A quoted field that does not close on its line
    would swallow the following lines, so it is an error here.
    """
    if '"' not in line:
        return None
    field_no, at, end = 0, 0, len(line)
    while True:
        if line.startswith('"', at):
            at += 1
            while True:
                close = line.find('"', at)
                if close < 0:
                    return field_no, _UNBALANCED_QUOTE
                if not line.startswith('"', close + 1):
                    at = close + 1
                    break
                at = close + 2  # "" inside a quoted field
            if at < end and line[at] != delimiter:
                return field_no, (
                    f"text after a closing quote '\"': {line[at:at + 20]!r} (a quoted field "
                    f"ends at a {_DELIMITERS[delimiter]} or the line's end; a quote inside it "
                    "is doubled: \"\")"
                )
        else:
            found = line.find(delimiter, at)
            at = end if found < 0 else found
        if at >= end:
            return None
        at += 1
        field_no += 1


def _parse_body(
    path: Path, names: list[str], body: list[tuple[int, str]], line_numbers: np.ndarray,
    delimiter: str,
) -> pa.Table:
    for number, line in body:
        problem = _quote_problem(line, delimiter)
        if problem:
            field_no, reason = problem
            column = names[field_no] if field_no < len(names) else str(field_no + 1)
            raise ExportReadError(path, reason, line=number, column=column)

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
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid
            ),
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
    if table.num_rows != len(body):  # never hand pandas columns of the wrong length
        raise ExportReadError(
            path,
            f"parsed {table.num_rows} rows from {len(body)} data lines: broken quoting or "
            "line ends",
        )
    return table


def _typed_frame(
    path: Path, table: pa.Table, names: list[str], line_numbers: np.ndarray, delimiter: str
) -> pd.DataFrame:
    columns = {name: table.column(name).to_pandas() for name in names}
    dates, calendar = _parse_dates(path, columns["date"], line_numbers)
    frame = pd.DataFrame({"date": dates}, index=pd.Index(line_numbers, name="line"))
    for name in NUMERIC_FIELDS:
        if name in columns:
            frame[name] = _parse_numbers(path, name, columns[name], line_numbers,
                                         delimiter=delimiter)
    frame.attrs["calendar"] = calendar
    return frame


def _json_keys(path: Path, records: list[object]) -> tuple[list[str], list[str]]:
    """(the known keys present, the unknown ones) of layout D's records, in order of first
    appearance; a record that is not an object, lacks a required field or names another
    index than the first is an ``ExportReadError`` naming it."""
    present: list[str] = []
    dropped: list[str] = []
    first_code: tuple[object, int] | None = None
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise ExportReadError(path, "expected an object (one day), found "
                                  f"{_json_kind(record)}", line=number, unit="record")
        if len(record) > MAX_COLUMNS:
            raise ExportReadError(path, f"{len(record):,} keys in one record, more than any "
                                  f"answer has ({MAX_COLUMNS}): not an index history",
                                  line=number, unit="record")
        for key, name in _JSON_FIELDS.items():
            if name in REQUIRED_FIELDS and key not in record:
                keys = ", ".join(json.dumps(k, ensure_ascii=False) for k in list(record)[:12])
                raise ExportReadError(
                    path,
                    f'no "{key}" field (the {name}; renamed upstream?); the record has: '
                    + (keys or "no fields"),
                    line=number, unit="record",
                )
        for key in record:
            if key in _JSON_FIELDS:
                if key not in present:
                    present.append(key)
            elif key != LAYOUT_D_CODE and key not in dropped:
                dropped.append(key)
        if LAYOUT_D_CODE in record:
            code = record[LAYOUT_D_CODE]
            if first_code is None:
                first_code = (code, number)
            elif code != first_code[0]:
                raise ExportReadError(
                    path,
                    f"records of more than one index: {LAYOUT_D_CODE} {_json_text(code)} here, "
                    f"{_json_text(first_code[0])} in record {first_code[1]}",
                    line=number, column=LAYOUT_D_CODE, unit="record",
                )
    return present, dropped


def _read_json(path: Path, text: str, encoding: str) -> Export:
    """Layout D: ``{"indexB2": [{"dEven": ..., "xNivInuClMresIbs": ...}, ...]}``.

    Dates (``dEven``) are Gregorian, as integers or 8-digit strings; values are JSON
    numbers or numeric strings, ``null`` or a missing optional key is a missing value.
    Keys other than the known ones are ignored and listed in ``dropped_columns``.
    """
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportReadError(
            path,
            f"not valid JSON: {exc} (the answer is cut short, or the file is not JSON)",
            line=_json_record_at(text, exc.pos),
            unit="record",
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer too long, nesting too deep
        raise ExportReadError(path, f"not a usable JSON answer: {exc}") from None
    records = answer.get(LAYOUT_D_LIST) if isinstance(answer, dict) else None
    if not isinstance(records, list):
        raise ExportReadError(
            path,
            f'not a TSETMC index history: expected a JSON object with an "{LAYOUT_D_LIST}" '
            f"list, found {_describe_json(answer)}",
        )
    if not records:
        raise EmptyExportError(path, f'no records: the "{LAYOUT_D_LIST}" list is empty')

    present, dropped = _json_keys(path, records)
    numbers = np.arange(1, len(records) + 1, dtype="int64")
    by_name = {name: key for key, name in _JSON_FIELDS.items() if key in present}

    def texts(key: str) -> pd.Series:
        return pd.Series([_json_text(record.get(key)) for record in records], dtype=object)

    dates, calendar = _parse_dates(path, texts(by_name["date"]), numbers, unit="record",
                                   column=f"{by_name['date']} (date)", jalali=False)
    frame = pd.DataFrame({"date": dates}, index=pd.Index(numbers, name="line"))
    for name in NUMERIC_FIELDS:
        if name in by_name:
            key = by_name[name]
            frame[name] = _parse_numbers(path, name, texts(key), numbers, unit="record",
                                         column=f"{key} ({name})", delimiter=None)
    index_id = path.stem
    frame.insert(1, "index_id", index_id)
    frame.insert(2, "index_name", index_id)
    return Export(path, frame, index_id, index_id, encoding, "D", calendar, dropped,
                  delimiter=None, row_unit="record")


def _json_text(value: object) -> str:
    """A JSON value as the text a CSV cell would hold: ``null`` is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)  # shortest round-trip text; nan is rejected later (inf as above)
    return json.dumps(value, ensure_ascii=False)[:60]


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{_json_text(value) or 'null'}"


def _describe_json(answer: object) -> str:
    if isinstance(answer, dict):
        if LAYOUT_D_LIST in answer:
            return f'"{LAYOUT_D_LIST}": {_json_kind(answer[LAYOUT_D_LIST])}'
        keys = ", ".join(json.dumps(k, ensure_ascii=False) for k in list(answer)[:8])
        return f"an object with {keys}" if keys else "an empty object"
    return _json_kind(answer)


def _json_record_at(text: str, position: int) -> int | None:
    """The 1-based number of the ``indexB2`` record a JSON syntax error lies in, if any."""
    start = re.search(rf'"{LAYOUT_D_LIST}"\s*:\s*\[', text)
    if start is None or start.end() > position:
        return None
    decoder = json.JSONDecoder()
    at, number = start.end(), 0
    while at <= position:
        at = _JSON_GAP.match(text, at).end()
        if at >= len(text) or text[at] == "]":
            return None
        number += 1
        try:
            _, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            return number
    return number


def _parse_numbers(
    path: Path, name: str, raw: pd.Series, line_numbers: np.ndarray, *,
    delimiter: str | None = ",", unit: str = "line", column: str | None = None,
) -> np.ndarray:
    """Numbers of one column; ``delimiter`` ``";"`` reads a decimal comma, None is JSON."""
    text = raw.str.strip()
    if delimiter == ";":
        text = text.str.replace(",", ".", regex=False)
    values = pd.to_numeric(text, errors="coerce")
    # "nan" is not a number; "inf" is one only where validation judges it, in a level
    unreadable = values.isna() | (~np.isfinite(values) & (name not in LEVEL_FIELDS))
    bad = unreadable & (text != "")
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        value = raw.iloc[position]
        hint = ""
        if delimiter in (",", "\t") and "," in value:
            hint = " (a comma in a number is read only in semicolon-separated files, as a " \
                   "decimal comma)"
        raise ExportReadError(
            path,
            f"not a number: {value!r}{hint}",
            line=int(line_numbers[position]),
            column=column or name,
            unit=unit,
        )
    return values.to_numpy(dtype="float64")


def _parse_dates(
    path: Path, raw: pd.Series, line_numbers: np.ndarray, *,
    unit: str = "line", column: str = "date", jalali: bool = True,
) -> tuple[np.ndarray, str]:
    """8-digit dates, Jalali when every year is 13xx/14xx (if ``jalali``), else Gregorian."""
    text = raw.str.strip()
    well_formed = text.str.fullmatch(r"\d{8}")
    if not well_formed.all():
        position = int(np.flatnonzero(~well_formed.to_numpy())[0])
        raise ExportReadError(
            path,
            f"not an 8-digit YYYYMMDD date: {raw.iloc[position]!r}",
            line=int(line_numbers[position]),
            column=column,
            unit=unit,
        )
    numbers = text.astype("int64").to_numpy()
    years = numbers // 10000
    is_jalali = (years >= 1300) & (years < 1500) & jalali
    if is_jalali.any() and not is_jalali.all():
        position = int(np.flatnonzero(is_jalali != is_jalali[0])[0])
        raise ExportReadError(
            path,
            f"calendar changes within the file: {numbers[position]} is "
            f"{'Jalali' if is_jalali[position] else 'Gregorian'}, {unit} {line_numbers[0]} "
            "is not",
            line=int(line_numbers[position]),
            column=column,
            unit=unit,
        )
    if is_jalali.all():
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
            column=column,
            unit=unit,
        )
    return dates, calendar


def _first_text(table: pa.Table, name: str) -> str:
    if name not in table.column_names:
        return ""
    for value in table.column(name).to_pylist():
        if value and value.strip():
            return value.strip()
    return ""
