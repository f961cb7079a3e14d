"""Readers: layouts A, B and C in every listed encoding, calendars, odd headers."""

from __future__ import annotations

import codecs
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import ExportReadError
from pipelines.formats import EmptyExportError, canonical_columns, detect_encoding, read_export
from pipelines.ingest import ingest

LAYOUT_A = (
    "<TICKER>,<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>,<OPENINT>,<OPENINT>,"
    "<PER>,<NAME>,<LAST>\n"
    "Overall Index,20210501,1208560.0,1208560.0,1194303.5,1194303.5,3701769749,1.63e13,215895,"
    "4.778e10,D,شاخص کل,1194303.5\n"
    "Overall Index,20210502,1194303.5,1201000.0,1190000.0,1200000.0,3000000000,1.5e13,200000,"
    "4.1e10,D,شاخص کل,1200000.0\n"
)
LAYOUT_B = (
    "<TICKER>,<DTYYYYMMDD>,<FIRST>,<HIGH>,<LOW>,<CLOSE>,<VALUE>,<VOL>,<OPENINT>,<PER>,<OPEN>,"
    "<LAST>\n"
    "Overall Index,20210501,1208560.0,1208560.0,1194303.5,1194303.5,1.63e13,3701769749,215895,"
    "D,1210000.0,1194303.5\n"
    "Overall Index,20210502,1194303.5,1201000.0,1190000.0,1200000.0,1.5e13,3000000000,200000,"
    "D,1194303.5,1200000.0\n"
)
LAYOUT_C = (
    "<DTYYYYMMDD>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<Last P>,<Name>\n"
    "14000211,1208560.0,1208560.0,1194303.5,1194303.5,3701769749,1194303.5,Overall Index\n"
    "14000212,1194303.5,1201000.0,1190000.0,1200000.0,3000000000,1200000.0,Overall Index\n"
)
ENCODINGS = {
    "utf-16-le-bom": lambda text: codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
    "utf-16-be-bom": lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    "utf-16-le": lambda text: text.encode("utf-16-le"),
    "utf-16-be": lambda text: text.encode("utf-16-be"),
    "utf-8-bom": lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
    "utf-8": lambda text: text.encode("utf-8"),
}


def write(tmp_path: Path, text: str, encoding: str = "utf-16-le-bom",
          name: str = "IRX6XTPI0009.csv", crlf: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes(ENCODINGS[encoding](text.replace("\n", "\r\n") if crlf else text))
    return path


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("layout, text", [("A", LAYOUT_A), ("B", LAYOUT_B), ("C", LAYOUT_C)])
def test_every_layout_in_every_encoding(tmp_path, layout, text, encoding):
    export = read_export(write(tmp_path, text, encoding, crlf=encoding.endswith("bom")))
    frame = export.frame
    assert export.layout == layout
    assert export.encoding == encoding
    assert export.index_id == "IRX6XTPI0009"
    assert list(frame["date"]) == [pd.Timestamp("2021-05-01"), pd.Timestamp("2021-05-02")]
    assert frame["date"].dtype == "datetime64[ns]"
    assert frame.loc[2, "open"] == 1208560.0
    assert frame.loc[2, "low"] == 1194303.5
    assert frame.loc[3, "close"] == 1200000.0
    assert frame.loc[2, "volume"] == 3701769749
    assert list(frame.index) == [2, 3]  # source line numbers
    assert export.calendar == ("jalali" if layout == "C" else "gregorian")


def test_layout_a_duplicate_openint_become_distinct_fields(tmp_path):
    export = read_export(write(tmp_path, LAYOUT_A))
    row = export.frame.loc[2]
    assert (row["value"], row["trades"], row["openint"]) == (1.63e13, 215895, 4.778e10)
    assert export.index_name == "شاخص کل"
    assert "ticker" not in export.frame and "period" not in export.frame


def test_layout_b_maps_first_to_open_and_open_to_previous_close(tmp_path):
    frame = read_export(write(tmp_path, LAYOUT_B)).frame
    assert frame.loc[2, "open"] == 1208560.0
    assert frame.loc[2, "prev_close"] == 1210000.0
    assert frame.loc[2, "trades"] == 215895
    assert frame.loc[2, "value"] == 1.63e13


def test_repeated_unknown_layout_names_get_suffixes():
    names, layout, dropped = canonical_columns(
        ["<DTYYYYMMDD>", "<CLOSE>", "<OPENINT>", "<OPENINT>", "<FOO>", "<FOO>"])
    assert layout == "other"
    assert names == ["date", "close", "openint", "openint_2", "unknown_foo", "unknown_foo_2"]
    assert dropped == ["<FOO>", "<FOO>"]


def test_a_repeated_field_is_reported_not_silently_renamed():
    names, _, dropped = canonical_columns(["<DTYYYYMMDD>", "<CLOSE>", "<CLOSE>"])
    assert names == ["date", "close", "close_2"]
    assert dropped == ["<CLOSE> (repeated)"]


def test_header_names_are_matched_case_insensitively(tmp_path):
    text = LAYOUT_C.replace("<CLOSE>", "<close>").replace("<Last P>", "<LAST P>")
    frame = read_export(write(tmp_path, text)).frame
    assert frame.loc[3, "close"] == 1200000.0 and frame.loc[3, "last"] == 1200000.0


def test_header_only_file_is_left_out_with_a_warning(tmp_path, caplog):
    raw = tmp_path / "raw"
    raw.mkdir()
    write(raw, LAYOUT_A.splitlines()[0] + "\n", name="IRX6XSNT0009.csv")
    write(raw, LAYOUT_A)
    with pytest.raises(EmptyExportError, match="IRX6XSNT0009.csv: header only"):
        read_export(raw / "IRX6XSNT0009.csv")
    with caplog.at_level(logging.WARNING):
        report = ingest(raw, tmp_path / "tables", tmp_path / "ingest.json")
    statuses = {f["file"]: f["status"] for f in report["files"]}
    assert statuses == {"IRX6XSNT0009.csv": "empty", "IRX6XTPI0009.csv": "ok"}
    assert "warning: IRX6XSNT0009.csv: header only" in caplog.text
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["IRX6XTPI0009.parquet"]


@pytest.mark.parametrize("payload, message", [
    (b"", "empty file"),
    (codecs.BOM_UTF16_LE + "<DTYYYYMMDD>,<CLOSE>\n2021".encode("utf-16-le")[:-1], "truncated"),
    (codecs.BOM_UTF16_LE + b"\x00\xd8\x41\x00", "not valid UTF-16-LE"),
    ("<DTYYYYMMDD>,<CLOSE>,<NAME>\n20210501,12,شاخص کل\n".encode("cp1256"), "not valid UTF-8"),
    (bytes(range(256)) * 4, "wrong encoding or"),
    ("<DTYYYYMMDD>,<CLOSE>\n20210501,12\n".encode("utf-32"), "control character"),
])
def test_unreadable_files_raise_an_error_naming_the_file(tmp_path, payload, message):
    path = tmp_path / "IRX6XSNT0009.csv"
    path.write_bytes(payload)
    with pytest.raises(ExportReadError) as caught:
        read_export(path)
    assert str(caught.value).startswith("IRX6XSNT0009.csv: ")
    assert message in str(caught.value)


def test_bad_cell_names_line_and_column(tmp_path):
    text = LAYOUT_C.replace("1201000.0", "12O1000.0")
    with pytest.raises(ExportReadError, match=r"line 3, column high: not a number: '12O1000.0'"):
        read_export(write(tmp_path, text))


def test_blank_lines_do_not_shift_line_numbers(tmp_path):
    lines = LAYOUT_C.splitlines()
    text = "\n".join([lines[0], "", lines[1], "   ", lines[2].replace("1190000.0", "x")]) + "\n"
    with pytest.raises(ExportReadError, match=r"line 5, column low"):
        read_export(write(tmp_path, text))


def test_encoding_detection_without_bom():
    assert detect_encoding("<DTYYYYMMDD>".encode("utf-16-le")) == ("utf-16-le", 0)
    assert detect_encoding("<DTYYYYMMDD>".encode("utf-16-be")) == ("utf-16-be", 0)
    assert detect_encoding(b"<DTYYYYMMDD>") == ("utf-8", 0)


def test_real_study_file_reads_exactly(real_dir):
    """TEDPIX: Jalali 1397/01/05 .. 1398/09/27, closes equal to the file's digits."""
    path = real_dir / "IRX6XTPI0009.csv"
    export = read_export(path)
    frame = export.frame
    assert (export.encoding, export.layout, export.calendar) == ("utf-16-le-bom", "C", "jalali")
    assert len(frame) == 417
    assert frame["date"].iloc[0] == pd.Timestamp("2018-03-25")
    assert frame["date"].iloc[-1] == pd.Timestamp("2019-12-18")
    text_closes = [line.split(",")[4] for line in
                   path.read_bytes()[2:].decode("utf-16-le").splitlines()[1:]]
    assert [f"{value:.2f}" for value in frame["close"]] == text_closes
    assert frame["close"].iloc[0] == 96425.9 and frame["close"].iloc[-1] == 350322.6


def test_all_real_study_files_read(real_dir):
    exports = [read_export(p) for p in sorted(real_dir.glob("*.csv"))]
    assert len(exports) == 16
    for export in exports:
        assert len(export.frame) == 417
        assert export.frame["date"].is_monotonic_increasing
        assert not export.frame[["open", "high", "low", "close", "volume"]].isna().any().any()
        assert np.all(export.frame["date"].dt.year.isin([2018, 2019]))
