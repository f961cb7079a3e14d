"""A long export is refused (``ingest.max_rows``) in memory that does not grow with the file.

Its rows are counted in chunks, and counting stops at the bound: the file is never read
whole (reading and decoding a 10 M row export whole took gigabytes before its refusal).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from pipelines.data import formats
from pipelines.data.formats import TooManyRowsError, read_export
from pipelines.data.sample import LAYOUT_A_HEADER

ROOT = Path(__file__).resolve().parents[2]
MAX_ROWS = 100_000  # params.yaml's ingest.max_rows
LONG_ROWS = 300_000
ROW = ("TEDPIX,{date},2812345.6,2823456.7,2801234.5,2812345.6,12345678,5.43211e+10,678,"
       "1.543e+08,D,شاخص کل,2812345.6")
RECORD = ('{{"insCode":32097828799138957,"dEven":{date},"xNivInuClMresIbs":2812345.6,'
          '"xNivInuPbMresIbs":2801234.5,"xNivInuPhMresIbs":2823456.7}}')
BLOCK = 10_000  # rows written at a time
FIRST_DAY = dt.date(2000, 1, 1).toordinal()
FORMS = {  # name -> (encoding, BOM, line end, JSON)
    "utf-16-le-bom-crlf": ("utf-16-le", b"\xff\xfe", "\r\n", False),
    "utf-16-be-lf": ("utf-16-be", b"", "\n", False),
    "utf-8-lf": ("utf-8", b"", "\n", False),
    "json-records": ("utf-8", b"", "", True),
}
# A Python process that reads one file with a row bound and prints what the read cost: the
# growth of its peak resident memory. VmHWM is this process's own (ru_maxrss also counts
# the parent's memory at the fork, a pytest process's that may be larger than the read).
MEASURE = """
import json, re, resource, sys
from pipelines.data.formats import TooManyRowsError, read_export

def peak():  # in bytes
    try:
        with open("/proc/self/status") as status:
            return int(re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1)) * 1024
    except OSError:  # not Linux: ru_maxrss, in bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = peak()
try:
    read_export(sys.argv[1], max_rows=int(sys.argv[2]))
    message = None
except TooManyRowsError as exc:
    message = str(exc)
print(json.dumps({"message": message, "peak_growth_bytes": peak() - before}))
"""


def write_export(path: Path, rows: int, form: str) -> Path:
    """An export of ``rows`` rows (layout A, or a layout D answer), written block by block."""
    encoding, bom, line_end, is_json = FORMS[form]
    with open(path, "wb") as out:
        out.write(bom)
        out.write(('{"indexB2":[' if is_json else LAYOUT_A_HEADER + line_end).encode(encoding))
        for start in range(0, rows, BLOCK):
            days = range(start, min(start + BLOCK, rows))
            if is_json:
                text = "".join(("," if day else "") + RECORD.format(date=date(day))
                               for day in days)
            else:
                text = "".join(ROW.format(date=date(day)) + line_end for day in days)
            out.write(text.encode(encoding))
        if is_json:
            out.write(b"]}")
    return path


def date(day: int) -> str:
    """The ``day``-th calendar day from 2000-01-01 as YYYYMMDD."""
    return f"{dt.date.fromordinal(FIRST_DAY + day):%Y%m%d}"


def refused_message(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB, more {{}} than ingest.max_rows (100,000): not read"


@pytest.mark.parametrize("form", FORMS)
def test_a_long_export_is_refused_before_it_is_read_whole(form: str, tmp_path: Path) -> None:
    path = write_export(tmp_path / "IRX6XTPI0009.csv", LONG_ROWS, form)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with pytest.raises(TooManyRowsError) as refusal:
            read_export(path, max_rows=MAX_ROWS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    unit = "records" if FORMS[form][3] else "lines"
    assert str(refusal.value).endswith(refused_message(path).format(unit)), refusal.value
    # reading the file whole (the bytes, then the text) took more than twice its size
    assert peak < size / 4, f"{peak / 1e6:.1f} MB allocated to refuse {size / 1e6:.1f} MB"


def test_the_refusal_in_a_fresh_process_stays_far_below_the_file_size(tmp_path: Path) -> None:
    """The whole process's peak memory (ru_maxrss), not only Python's own allocations."""
    path = write_export(tmp_path / "IRX6XTPI0009.csv", LONG_ROWS, "utf-16-le-bom-crlf")
    size = path.stat().st_size
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(MAX_ROWS)],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    measured = json.loads(done.stdout.splitlines()[-1])
    assert measured["message"].endswith(refused_message(path).format("lines"))
    assert measured["peak_growth_bytes"] < size / 4, (measured, size)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize("form", FORMS)
def test_a_file_at_the_bound_is_read_and_one_row_more_is_refused(
    form: str, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted alike in any chunk size: a CRLF or a UTF-16 code unit split by a chunk's end
    counts once."""
    monkeypatch.setattr(formats, "_COUNT_CHUNK", chunk)
    rows = 40
    path = write_export(tmp_path / "IRX6XTPI0009.csv", rows, form)
    # a row per line break (the header's too) or per record: the bound that just admits it
    bound = rows if FORMS[form][3] else rows + 1
    assert len(read_export(path, max_rows=bound).frame) == rows
    with pytest.raises(TooManyRowsError, match="more (lines|records) than ingest.max_rows"):
        read_export(path, max_rows=bound - 1)
