"""tsepipe fetch against a real HTTP server on loopback (tests/support/tsetmc_server.py).

The recorded TEDPIX answer (2,679 days) is served; faults are injected per request. Every
failure must be one FetchError line naming the index and the cause, with the raw folder
byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.core.errors import DataError, FetchError
from pipelines.core.params.fetch import FetchSection
from pipelines.core.params.load import load_params
from pipelines.data.fetch import fetch as fetch_stage
from tests.conftest import ROOT, env
from tests.support.tsetmc_server import (
    CLOSE,
    HIGH,
    LOW,
    TEDPIX_CODE,
    TEDPIX_DAYS,
    TEDPIX_ISIN,
    Fault,
    TsetmcServer,
    cut,
    dead_base_url,
    encode,
    recorded_rows,
    rows_for,
)

OTHER_ISIN, OTHER_CODE = "IRX6XTPI0025", 67130298613737946
THIRD_ISIN, THIRD_CODE = "IRXYXTPI0009", 5798407779416661
MID_2019 = 20190630
FAST = {"timeout_seconds": 5.0, "retries": 0, "backoff_seconds": 0.0, "pace_seconds": 0.0}


def fetch(raw: Path, indices: dict[str, int], base_url: str, *, client: Any = None,
          sleep: Any = time.sleep, **settings: Any) -> dict[str, Any]:
    """The fetch stage with its ``fetch:`` section made of these indices and settings."""
    section = FetchSection(indices=indices, base_url=base_url, **settings)
    return fetch_stage(raw, section, client=client, sleep=sleep)


class Sleeps(list):
    """A fake ``sleep`` that only records how long it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server() -> Iterator[TsetmcServer]:
    with TsetmcServer() as running:
        yield running


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """The messages pipelines.data.fetch logs at WARNING or above (whatever the CLI set up)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("pipelines.data.fetch")
    handler = Collect(level=logging.WARNING)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def snapshot(folder: Path) -> dict[str, str] | None:
    """Every entry of ``folder`` (hidden ones too) -> md5 of its bytes, or a link's target."""
    if not os.path.lexists(folder):
        return None
    out = {}
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if path.is_symlink():
            out[name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            out[name] = "<dir>"
        else:
            out[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return out


def held_rows(path: Path) -> list[dict[str, Any]]:
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert list(payload) == ["indexB2"]
    return payload["indexB2"]


def failure(raw: Path, base_url: str, indices: dict[str, int] | None = None,
            **settings: Any) -> str:
    """Run a fetch that must fail; check it left ``raw`` untouched; return the one line."""
    before = snapshot(raw)
    with pytest.raises(FetchError) as caught:
        fetch(raw, indices or {TEDPIX_ISIN: TEDPIX_CODE}, base_url,
              **(FAST | {"sleep": Sleeps()} | settings))
    assert snapshot(raw) == before
    assert len(caught.value.lines) == 1
    line = caught.value.lines[0]
    assert "\n" not in line and "Traceback" not in line
    return line


def seeded(tmp_path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    """A raw folder already holding a fetched TEDPIX file (default: up to mid-2019)."""
    raw = tmp_path / "raw"
    with TsetmcServer({TEDPIX_CODE: encode(rows or cut(recorded_rows(), MID_2019))}) as s:
        fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, s.base_url, **FAST)
    return raw


# -- success ----------------------------------------------------------------------------------

def test_first_fetch_writes_the_whole_history(server, tmp_path, warnings):
    raw = tmp_path / "data" / "raw"  # missing: created
    report = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)

    target = raw / f"{TEDPIX_ISIN}.json"
    assert sorted(os.listdir(raw)) == [target.name]  # no temporary file left
    assert held_rows(target) == recorded_rows()
    assert len(held_rows(target)) == TEDPIX_DAYS
    assert [(r.path, r.status) for r in server.requests] == [
        (f"/api/Index/GetIndexB2History/{TEDPIX_CODE}", 200)]
    [entry] = report["indices"]
    assert entry | {"file": None} == {
        "index_id": TEDPIX_ISIN, "ins_code": TEDPIX_CODE, "file": None,
        "url": server.url(TEDPIX_CODE), "days_held": 0, "days_fetched": TEDPIX_DAYS,
        "days_new": TEDPIX_DAYS, "days_changed": [], "days_kept_not_upstream": 0,
        "kept_not_upstream": None, "days_total": TEDPIX_DAYS, "first_date": "2008-12-04",
        "last_date": "2019-12-31", "written": True,
    }
    assert Path(entry["file"]) == target
    assert report["summary"] == (f"fetched 1 index into {raw}: 2679 new days, 0 changed, "
                                 "0 kept that upstream no longer has; last day 2019-12-31")
    assert report["fetched_at"].endswith("+00:00")
    assert warnings == []

    # The same answer again: nothing new, the file not even rewritten.
    mtime = target.stat().st_mtime_ns
    again = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    assert again["indices"][0]["days_new"] == 0
    assert again["indices"][0]["written"] is False
    assert target.stat().st_mtime_ns == mtime
    assert held_rows(target) == recorded_rows()


def test_the_project_reads_the_fetched_file_as_layout_d(server, tmp_path):
    from pipelines.data.formats import read_export

    fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    export = read_export(tmp_path / "raw" / f"{TEDPIX_ISIN}.json")
    assert (export.layout, export.index_id, len(export.frame)) == ("D", TEDPIX_ISIN, TEDPIX_DAYS)
    assert export.frame["close"].tolist() == [row[CLOSE] for row in recorded_rows()]
    assert f"{export.frame['date'].iloc[-1]:%Y-%m-%d}" == "2019-12-31"


def test_incremental_fetch_adds_only_new_days(tmp_path, warnings):
    raw = tmp_path / "raw"
    first_half = cut(recorded_rows(), MID_2019)
    with TsetmcServer({TEDPIX_CODE: encode(first_half)}) as server:
        first = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
        assert held_rows(raw / f"{TEDPIX_ISIN}.json") == first_half
        assert first["indices"][0]["last_date"] == "2019-06-30"

        server.answers[TEDPIX_CODE] = encode(recorded_rows())
        second = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)

    entry = second["indices"][0]
    assert entry["days_held"] == len(first_half)
    assert entry["days_new"] == TEDPIX_DAYS - len(first_half) > 100
    assert entry["days_changed"] == [] and entry["days_kept_not_upstream"] == 0
    assert held_rows(raw / f"{TEDPIX_ISIN}.json") == recorded_rows()
    assert f"{TEDPIX_DAYS - len(first_half)} new days" in second["summary"]
    assert warnings == []


def test_http_500_is_retried_with_backoff(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.http_error(500, times=2)]
    sleeps = Sleeps()
    report = fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url,
                   **(FAST | {"retries": 3, "backoff_seconds": 0.5}), sleep=sleeps)
    assert [r.status for r in server.requests] == [500, 500, 200]
    assert sleeps == [0.5, 1.0]  # backoff * 2 ** (k - 1) before retry k
    assert report["indices"][0]["days_new"] == TEDPIX_DAYS


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_other_5xx_are_retried_with_real_waits(server, tmp_path, status):
    server.faults[TEDPIX_CODE] = [Fault.http_error(status)]
    fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url,
          **(FAST | {"retries": 1, "backoff_seconds": 0.2}))
    first, second = server.requests
    assert (first.status, second.status) == (status, 200)
    assert second.time - first.time >= 0.2


def test_other_4xx_is_not_retried(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.http_error(403, times=None)]
    line = failure(tmp_path / "raw", server.base_url, retries=3)
    assert len(server.requests) == 1
    assert line.startswith(f"{TEDPIX_ISIN} ({TEDPIX_CODE}): HTTP 403 Forbidden from "
                           f"{server.url(TEDPIX_CODE)} (not retried")
    line = failure(tmp_path / "raw", server.base_url, {TEDPIX_ISIN: 12345}, retries=3)
    assert "HTTP 404 Not Found" in line and "wrong insCode" in line
    assert len(server.requests) == 2


def test_5xx_on_every_try_fails_after_all_tries(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.http_error(502, times=None)]
    line = failure(tmp_path / "raw", server.base_url, retries=2, backoff_seconds=0.01)
    assert len(server.requests) == 3
    assert line == (f"{TEDPIX_ISIN} ({TEDPIX_CODE}): no good answer from "
                    f"{server.url(TEDPIX_CODE)} after 3 tries (HTTP 502 Bad Gateway); TSETMC "
                    f"is failing, try again later; nothing written, {tmp_path / 'raw'} left "
                    "untouched")


def test_timeout_on_every_try(server, tmp_path):
    raw = seeded(tmp_path)
    (raw / f"{OTHER_ISIN}.csv").write_bytes(b"a hand export\n")
    server.faults[TEDPIX_CODE] = [Fault.slow(5, times=None)]
    started = time.monotonic()
    line = failure(raw, server.base_url, timeout_seconds=0.3, retries=2, backoff_seconds=0.05,
                   sleep=time.sleep)
    assert time.monotonic() - started < 3
    assert len(server.requests) == 3
    assert line == (f"{TEDPIX_ISIN} ({TEDPIX_CODE}): no answer from {server.url(TEDPIX_CODE)} "
                    "after 3 tries (timed out after 0.3 s); offline, or TSETMC unreachable?; "
                    f"nothing written, {raw} left untouched")


def test_a_slow_answer_then_a_good_one(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.slow(2)]
    fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url,
          **(FAST | {"timeout_seconds": 0.3, "retries": 1}))
    assert len(held_rows(tmp_path / "raw" / f"{TEDPIX_ISIN}.json")) == TEDPIX_DAYS


def test_a_dropped_connection_is_retried(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.dropped()]
    fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url,
          **(FAST | {"retries": 1}))
    assert len(server.requests) == 2


@pytest.mark.parametrize("how", ["stopped server", "unused port"])
def test_connection_refused_says_offline(tmp_path, how):
    raw = seeded(tmp_path)
    if how == "stopped server":
        server = TsetmcServer().start()
        server.stop()
        base_url = server.base_url
    else:
        base_url = dead_base_url()
    line = failure(raw, base_url, retries=1, backoff_seconds=0.01)
    assert line == (f"{TEDPIX_ISIN} ({TEDPIX_CODE}): no answer from "
                    f"{base_url}/Index/GetIndexB2History/{TEDPIX_CODE} after 2 tries "
                    "(connection refused); offline, or TSETMC unreachable?; nothing written, "
                    f"{raw} left untouched")


# -- malformed answers ------------------------------------------------------------------------

def test_truncated_json(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.truncated(at=1234)]
    line = failure(seeded(tmp_path), server.base_url)
    assert line.startswith(f"{TEDPIX_ISIN} ({TEDPIX_CODE}): malformed answer: not valid JSON "
                           f"(truncated at byte 1234) ({server.url(TEDPIX_CODE)}); ")
    assert len(server.requests) == 1  # a malformed answer is not retried


def test_empty_history(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.empty_history()]
    line = failure(tmp_path / "raw", server.base_url)
    assert line == (f"{TEDPIX_ISIN} ({TEDPIX_CODE}): empty history (0 rows) from "
                    f"{server.url(TEDPIX_CODE)} (wrong insCode?); nothing written, "
                    f"{tmp_path / 'raw'} left untouched")
    assert not (tmp_path / "raw").exists()  # not even created


def test_renamed_field(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.renamed_field(CLOSE, "xNivInuClMresIbsNew")]
    line = failure(seeded(tmp_path), server.base_url)
    assert (f"{TEDPIX_ISIN} ({TEDPIX_CODE}): malformed answer: row 1 has no field "
            f"{CLOSE} (renamed upstream?)") in line


def _row(**changes: Any) -> dict[str, Any]:
    return recorded_rows()[0] | changes


@pytest.mark.parametrize(("payload", "reason"), [
    (b"<html>busy</html>", "not valid JSON at byte 0: Expecting value"),
    (b"", "not valid JSON (empty)"),
    (b"\xff\xfe{}", "not UTF-8 (byte 0)"),
    (b"[]", "not an object with indexB2 (a JSON list)"),
    (b'{"indexB3": []}', "no field indexB2 (keys: indexB3)"),
    (b'{"indexB2": {}}', "indexB2 is not a list (a JSON dict)"),
    (encode([1]), "row 1 is not an object"),
    (encode([_row(insCode=1)]), f"row 1 has insCode 1, not the requested {TEDPIX_CODE}"),
    (encode([_row(dEven=20190230)]), "row 1: dEven 20190230 is not a date (YYYYMMDD)"),
    (encode([_row(dEven="20190101")]), "row 1: dEven '20190101' is not a date (YYYYMMDD)"),
    (encode([_row(dEven=2019010)]), "row 1: dEven 2019010 is not a date (YYYYMMDD)"),
    (encode([_row(), _row(dEven=20190101, **{LOW: "9"})]),
     f"row 2 (2019-01-01): {LOW} is '9', not a finite number"),
    (encode([_row(**{HIGH: True})]), f"row 1 (2008-12-04): {HIGH} is True, not a finite number"),
    (encode([_row(**{HIGH: None})]), f"row 1 (2008-12-04): {HIGH} is None, not a finite number"),
    (b'{"indexB2":[{"insCode":32097828799138957,"dEven":20081204,"xNivInuClMresIbs":NaN,'
     b'"xNivInuPbMresIbs":1,"xNivInuPhMresIbs":1}]}', "NaN where a number belongs"),
    (encode([_row(), _row(), _row(dEven=20081205)]),
     "day 2008-12-04 appears twice (rows 1 and 2)"),
])
def test_malformed_answers(server, tmp_path, payload, reason):
    server.faults[TEDPIX_CODE] = [Fault.answer(payload)]
    line = failure(tmp_path / "raw", server.base_url)
    assert line.startswith(f"{TEDPIX_ISIN} ({TEDPIX_CODE}): malformed answer: {reason} (")


def test_unsorted_answer_is_sorted(server, tmp_path):
    server.answers[TEDPIX_CODE] = encode(recorded_rows()[::-1])
    fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    assert held_rows(tmp_path / "raw" / f"{TEDPIX_ISIN}.json") == recorded_rows()


def test_a_held_file_that_is_not_layout_d_stops_the_fetch(server, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / f"{TEDPIX_ISIN}.json").write_text('{"indexB2": [{"dEven": 1}]}', encoding="utf-8")
    line = failure(raw, server.base_url)
    assert f"{TEDPIX_ISIN}.json is not a layout D history held by fetch (row 1 has no " in line
    assert "fix or remove it" in line
    assert server.requests == []  # checked before any request


# -- held days --------------------------------------------------------------------------------

def test_a_shorter_history_keeps_the_held_days(tmp_path, warnings):
    raw = seeded(tmp_path, recorded_rows())
    before = snapshot(raw)
    with TsetmcServer() as server:
        server.faults[TEDPIX_CODE] = [Fault.shortened(MID_2019)]
        report = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    kept = TEDPIX_DAYS - len(cut(recorded_rows(), MID_2019))
    entry = report["indices"][0]
    assert entry["days_kept_not_upstream"] == kept
    assert entry["kept_not_upstream"] == ["2019-07-01", "2019-12-31"]
    assert entry["days_new"] == 0 and entry["written"] is False
    assert snapshot(raw) == before  # the union is what was held: the same bytes
    assert held_rows(raw / f"{TEDPIX_ISIN}.json") == recorded_rows()
    assert warnings == [f"warning: {TEDPIX_ISIN} ({TEDPIX_CODE}): upstream no longer has "
                        f"{kept} held days (2019-07-01 .. 2019-12-31); kept them"]
    assert f"{kept} kept that upstream no longer has" in report["summary"]


def test_changed_values_upstream_are_taken_and_reported(tmp_path, warnings):
    raw = seeded(tmp_path, recorded_rows())
    changes = {20191230: {CLOSE: 375600.0}, 20191231: {HIGH: 380000.0, LOW: 376000.0},
               20081204: {CLOSE: 9249.0, LOW: 9233.0}}
    with TsetmcServer() as server:
        server.faults[TEDPIX_CODE] = [Fault.changed(changes)]
        report = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    entry = report["indices"][0]
    assert entry["days_changed"] == [
        {"date": "2008-12-04", "field": "close", "old": 9248.9, "new": 9249.0},
        {"date": "2008-12-04", "field": "low", "old": 9233.2, "new": 9233.0},
        {"date": "2019-12-30", "field": "close", "old": 375547.7, "new": 375600.0},
        {"date": "2019-12-31", "field": "low", "old": 376371.0, "new": 376000.0},
        {"date": "2019-12-31", "field": "high", "old": 379674.0, "new": 380000.0},
    ]
    assert entry["written"] is True and entry["days_new"] == 0
    assert held_rows(raw / f"{TEDPIX_ISIN}.json") == [
        row | changes.get(row["dEven"], {}) for row in recorded_rows()]
    assert warnings == [
        f"warning: {TEDPIX_ISIN} ({TEDPIX_CODE}): 3 held days changed upstream (5 values); "
        "took the new values: 2008-12-04 close 9248.9 -> 9249, 2008-12-04 low 9233.2 -> 9233, "
        "2019-12-30 close 375547.7 -> 375600 and 2 more"]
    assert ", 3 changed," in report["summary"]


# -- the raw folder ---------------------------------------------------------------------------

def test_a_hand_export_is_left_alone(tmp_path, warnings):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / f"{TEDPIX_ISIN}.csv").write_bytes(b"\xff\xfe<\x00T\x00>\x00")
    before = snapshot(raw)
    with TsetmcServer({TEDPIX_CODE: encode(recorded_rows()),
                       OTHER_CODE: encode(rows_for(OTHER_CODE))}) as server:
        report = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE, OTHER_ISIN: OTHER_CODE},
                       server.base_url, **FAST)
    assert [r.code for r in server.requests] == [OTHER_CODE]  # TEDPIX not even asked for
    assert sorted(os.listdir(raw)) == [f"{TEDPIX_ISIN}.csv", f"{OTHER_ISIN}.json"]
    assert snapshot(raw)[f"{TEDPIX_ISIN}.csv"] == before[f"{TEDPIX_ISIN}.csv"]
    reason = (f"{TEDPIX_ISIN}.csv is a hand export; fetch leaves it alone: remove it to let "
              "fetch manage this index")
    assert warnings == [f"warning: {TEDPIX_ISIN}: {reason}"]
    assert report["indices"][0] == {"index_id": TEDPIX_ISIN, "ins_code": TEDPIX_CODE,
                                    "skipped": reason}
    assert report["indices"][1]["index_id"] == OTHER_ISIN
    assert report["summary"].startswith(f"fetched 1 index into {raw}: 2679 new days")
    assert report["summary"].endswith("; 1 left alone (hand exports)")


def test_a_hand_export_in_another_case_counts_too(server, tmp_path, warnings):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / f"{TEDPIX_ISIN.lower()}.TXT").write_bytes(b"x")
    report = fetch(raw, {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    assert "skipped" in report["indices"][0] and server.requests == []
    assert sorted(os.listdir(raw)) == [f"{TEDPIX_ISIN.lower()}.TXT"]
    assert report["summary"] == (f"fetched 0 indices into {raw}: 0 new days, 0 changed, 0 kept "
                                 "that upstream no longer has; last day none; 1 left alone "
                                 "(hand exports)")


def test_a_symlink_is_refused(server, tmp_path):
    raw = seeded(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    (raw / f"{TEDPIX_ISIN}.json").rename(elsewhere)
    (raw / f"{TEDPIX_ISIN}.json").symlink_to(elsewhere)
    outside = hashlib.md5(elsewhere.read_bytes()).hexdigest()
    line = failure(raw, server.base_url)
    assert line == (f"{TEDPIX_ISIN} ({TEDPIX_CODE}): {raw / TEDPIX_ISIN}.json is a symbolic "
                    f"link: refused; nothing written, {raw} left untouched")
    assert hashlib.md5(elsewhere.read_bytes()).hexdigest() == outside
    assert server.requests == []


def test_all_or_nothing_when_the_second_index_fails(tmp_path):
    raw = seeded(tmp_path)  # TEDPIX held up to mid-2019: the full answer would change it
    with TsetmcServer({TEDPIX_CODE: encode(recorded_rows()),
                       OTHER_CODE: encode(rows_for(OTHER_CODE))}) as server:
        server.faults[OTHER_CODE] = [Fault.http_error(500, times=None)]
        line = failure(raw, server.base_url, {TEDPIX_ISIN: TEDPIX_CODE, OTHER_ISIN: OTHER_CODE},
                       retries=1)
        assert [(r.code, r.status) for r in server.requests] == [
            (TEDPIX_CODE, 200), (OTHER_CODE, 500), (OTHER_CODE, 500)]
    assert line.startswith(f"{OTHER_ISIN} ({OTHER_CODE}): no good answer from ")
    assert not (raw / f"{OTHER_ISIN}.json").exists()
    assert held_rows(raw / f"{TEDPIX_ISIN}.json") == cut(recorded_rows(), MID_2019)


def test_pace_between_requests(tmp_path):
    indices = {TEDPIX_ISIN: TEDPIX_CODE, OTHER_ISIN: OTHER_CODE, THIRD_ISIN: THIRD_CODE}
    answers = {code: encode(rows_for(code)) for code in indices.values()}
    with TsetmcServer(answers) as server:
        server.faults[OTHER_CODE] = [Fault.http_error(500)]
        sleeps = Sleeps()
        fetch(tmp_path / "fake", indices, server.base_url,
              **(FAST | {"pace_seconds": 0.3, "retries": 1, "backoff_seconds": 0.1}),
              sleep=sleeps)
        assert sleeps == [0.3, 0.3, 0.3]  # a retry waits at least the pace too
        server.requests.clear()
        report = fetch(tmp_path / "real", indices, server.base_url,
                       **(FAST | {"pace_seconds": 0.25}))
        times = [r.time for r in server.requests]
    assert [r.code for r in server.requests] == list(indices.values())
    assert all(later - earlier >= 0.25 for earlier, later in pairwise(times))
    assert [e["index_id"] for e in report["indices"]] == list(indices)
    for isin, code in indices.items():
        assert held_rows(tmp_path / "real" / f"{isin}.json") == rows_for(code)


@pytest.mark.parametrize(("indices", "settings", "problem"), [
    ({}, {}, "fetch.indices: Dictionary should have at least 1 item"),
    ({"../evil": 1}, {}, "fetch.indices.../evil.[key]: String should match pattern"),
    ({TEDPIX_ISIN: "abc"}, {}, f"fetch.indices.{TEDPIX_ISIN}: Input should be a valid integer"),
    ({TEDPIX_ISIN: TEDPIX_CODE}, {"timeout_seconds": 0},
     "fetch.timeout_seconds: Input should be greater than 0 (got 0)"),
    ({TEDPIX_ISIN: TEDPIX_CODE}, {"retries": -1},
     "fetch.retries: Input should be greater than or equal to 0 (got -1)"),
    ({TEDPIX_ISIN: TEDPIX_CODE}, {"pace_seconds": float("inf")},
     "fetch.pace_seconds: Input should be a finite number"),
])
def test_bad_settings_are_refused_before_any_request(tmp_path, indices, settings, problem):
    """The schema (FetchSection) refuses them when params.yaml is read: one line each."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["fetch"] |= {"indices": indices, "base_url": "http://127.0.0.1:9/api"} | settings
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_params(path)
    assert [line for line in caught.value.lines if problem in line], caught.value.lines
    assert len(caught.value.lines) == 1


# -- the command line ---------------------------------------------------------------------------

def _params(tmp_path: Path, base_url: str) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["fetch"] |= {"base_url": base_url, "indices": {TEDPIX_ISIN: TEDPIX_CODE},
                        "timeout_seconds": 2, "retries": 1, "backoff_seconds": 0.05,
                        "pace_seconds": 0}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def _tsepipe(tmp_path: Path, base_url: str) -> subprocess.CompletedProcess:
    params = _params(tmp_path, base_url)
    return subprocess.run(["tsepipe", "fetch", "--params", str(params), "--raw-dir",
                           str(tmp_path / "raw")], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=60)


def test_cli_fetch(server, tmp_path):
    done = _tsepipe(tmp_path, server.base_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"fetched 1 index into {tmp_path / 'raw'}: 2679 new days, "
                           "0 changed, 0 kept that upstream no longer has; last day "
                           "2019-12-31\n")
    assert held_rows(tmp_path / "raw" / f"{TEDPIX_ISIN}.json") == recorded_rows()


def test_cli_fetch_offline(tmp_path):
    done = _tsepipe(tmp_path, dead_base_url())
    assert done.returncode == 5
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "connection refused" in errors[0] and "offline" in errors[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "raw").exists()


# -- what fetch refuses to write --------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [(CLOSE, -5), (CLOSE, 0), (LOW, 0.0)])
def test_a_price_validation_would_drop_is_refused_with_the_index_and_day(
        server, tmp_path, field, value):
    day = recorded_rows()[0]["dEven"]
    server.faults[TEDPIX_CODE] = [Fault.changed({day: {field: value}})]
    line = failure(tmp_path / "raw", server.base_url)
    iso = f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"
    assert f"{TEDPIX_ISIN}" in line and f"({iso}): {field}" in line
    assert f"is {value!r}, not a price above 0" in line


def _typo(value: float) -> float:
    return value * 10


@pytest.mark.parametrize(("fields", "how", "told"), [
    ((CLOSE, HIGH), lambda _: 1e308, "close 1e+308 above validate.max_price (1e+09)"),
    ((CLOSE, HIGH), _typo, "times the median of its neighbours (validate.max_daily_move 25%)"),
    ((HIGH,), _typo, "high 372571 is more than 25% from the close 37233.7"),
])
def test_a_level_no_index_can_take_is_refused_with_the_index_and_day(
        server, tmp_path, fields, how, told):
    row = recorded_rows()[1000]
    day = row["dEven"]
    server.faults[TEDPIX_CODE] = [Fault.changed({day: {f: how(row[f]) for f in fields}})]
    line = failure(tmp_path / "raw", server.base_url)
    iso = f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"
    assert line.startswith(f"{TEDPIX_ISIN} ({TEDPIX_CODE}): implausible answer: day {iso}: ")
    assert told in line, line


def test_cli_fetch_refuses_a_close_of_1e308(server, tmp_path):
    day = recorded_rows()[-1]["dEven"]
    server.faults[TEDPIX_CODE] = [Fault.changed({day: {CLOSE: 1e308, HIGH: 1e308}})]
    done = _tsepipe(tmp_path, server.base_url)
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {TEDPIX_ISIN} ({TEDPIX_CODE}): implausible answer: day "
                      f"2019-12-31: close 1e+308 above validate.max_price (1e+09); nothing "
                      f"written, {tmp_path / 'raw'} left untouched"], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "raw").exists()


def test_a_redirect_to_another_host_is_refused(server, tmp_path):
    with TsetmcServer() as elsewhere:
        # the same machine by another name: another host to fetch, as far as a URL goes
        location = elsewhere.url(TEDPIX_CODE).replace("127.0.0.1", "localhost")
        server.faults[TEDPIX_CODE] = [Fault.redirect(location)]
        line = failure(tmp_path / "raw", server.base_url)
    assert "redirected from http://127.0.0.1:" in line
    assert f"to another host, {location}: refused (check fetch.base_url)" in line


def test_a_redirect_on_the_same_host_is_followed(server, tmp_path):
    server.faults[TEDPIX_CODE] = [Fault.redirect(server.url(TEDPIX_CODE) + "/")]
    report = fetch(tmp_path / "raw", {TEDPIX_ISIN: TEDPIX_CODE}, server.base_url, **FAST)
    assert [r.status for r in server.requests] == [302, 200]
    assert report["indices"][0]["days_new"] == TEDPIX_DAYS
