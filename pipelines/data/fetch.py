"""Fetch: the daily feed of index histories from TSETMC's public JSON API (layout D).

For each index of ``fetch.indices`` (ISIN -> TSETMC ``insCode``) it asks
``GET {base_url}/Index/GetIndexB2History/{insCode}``, whose answer is
``{"indexB2": [{"insCode", "dEven", "xNivInuClMresIbs" (close), "xNivInuPbMresIbs" (low),
"xNivInuPhMresIbs" (high)}, ...]}``, and keeps ``<raw_dir>/<ISIN>.json`` in that same layout:
the union of the days already held there and the days fetched, sorted by date, one row a day.

Safety, in this order:

- incremental: a held day is never lost. A held day that the answer no longer has is kept
  (one warning per index); a held day whose values changed upstream takes the new values
  (one warning per index, every change in the report);
- plausible: a day whose close, low or high no index can take (validation's bounds,
  ``validate.max_price`` and ``validate.max_daily_move``: above the price bound, a close
  far from its neighbours' or moved too far in a day, a low or high far from the close)
  is refused with the index and the day, as a value that is not a number above 0 is;
- all or nothing: every index is fetched and checked in memory first; only when all of
  them succeeded are the files written, each atomically (temporary file, then rename). Any
  failure raises ``FetchError`` with one line naming the index and the cause, and leaves
  ``raw_dir`` byte for byte as it was (not even created when it was missing);
- a hand export of an index (``<ISIN>.csv``, ``.txt``, ... : a file with the same index id
  and any name other than ``<ISIN>.json``) is left alone: that index is not fetched;
- symbolic links are never followed: ``<ISIN>.json`` being one is refused;
- networking: a timeout per request (the whole answer, not only each read), up to
  ``retries`` more tries after a timeout, a connection error, HTTP 5xx or 429, waiting
  ``backoff_seconds * 2 ** (k - 1)`` before retry k; any other HTTP error is not retried;
  ``pace_seconds`` between consecutive requests (a retry waits at least that long too).

Why httpx and not the ``tsetmc`` package (5j9/tsetmc): we need one endpoint and one
answer shape, which is a few lines over an HTTP client we already have (httpx comes with
Prefect), whereas ``tsetmc`` would add a dependency tree of its own (polars among others)
and is GPL-3.0, a licence this project does not want to take on for one URL.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipelines.core.errors import FetchError, printable
from pipelines.core.fileio import atomic_path
from pipelines.core.params.fetch import FetchSection
from pipelines.core.params.validate import ValidateSection
from pipelines.data.formats import LAYOUT_D_CODE, LAYOUT_D_DATE, LAYOUT_D_LIST, LAYOUT_D_VALUES

log = logging.getLogger(__name__)

ENDPOINT = "Index/GetIndexB2History/{code}"
ROW_FIELDS = (LAYOUT_D_CODE, LAYOUT_D_DATE, *LAYOUT_D_VALUES)
MAX_ANSWER_BYTES = 64 * 2**20  # a whole history is about 0.5 MB; more is not an answer
SHOWN_CHANGES = 3  # changed values quoted in the warning line (the report has them all)
HEADERS = {
    # TSETMC's CDN is known to turn away clients without a browser-like agent.
    "User-Agent": "Mozilla/5.0 (compatible; tsepipe/0.1; daily index history)",
    "Accept": "application/json",
}

Sleep = Callable[[float], object]
Row = dict[str, float]  # canonical field -> value, for one day


class _Failure(Exception):
    """One index failed; the message is the cause (the index and the suffix are added)."""


class _Timeout(Exception):
    """The whole answer did not arrive within the per-request timeout."""


@dataclass
class _Index:
    index_id: str
    ins_code: int
    path: Path
    url: str
    held: dict[int, Row] = field(default_factory=dict)
    fetched: dict[int, Row] = field(default_factory=dict)
    held_bytes: bytes | None = None  # the held file as read (None: there is none)

    @property
    def who(self) -> str:
        return f"{self.index_id} ({self.ins_code})"


def fetch(
    raw_dir: Path | str,
    settings: FetchSection,
    *,
    plausible: ValidateSection | None = None,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
) -> dict[str, Any]:
    """Fetch every index of ``settings.indices`` into ``raw_dir/<ISIN>.json``; the report.

    ``settings`` is params.yaml's ``fetch:``: ``indices`` maps the index id (the ISIN, the
    file's stem) to TSETMC's ``insCode``; ``base_url`` is the API root
    (``https://cdn.tsetmc.com/api``); the timeout, retries and pace. ``plausible``:
    params.yaml's ``validate:``, whose price bounds a fetched day must meet (the schema's
    defaults when not given). ``client`` (an
    ``httpx.Client``, left open) and ``sleep`` can be injected; by default a client is made
    and closed here, and waits use ``time.sleep``.

    Returns ``{"summary": one line, "raw_dir", "fetched_at": ISO UTC, "indices": [...]}``,
    one entry per index: ``index_id``, ``ins_code``, ``file``, ``url``, ``days_held``,
    ``days_fetched``, ``days_new``, ``days_changed`` (``[{"date", "field", "old", "new"}]``),
    ``days_kept_not_upstream``, ``kept_not_upstream`` (first and last such date, or None),
    ``days_total``, ``first_date``, ``last_date``, ``written`` (False when the file's bytes
    would not change); or ``index_id``, ``ins_code``, ``skipped`` (the reason) for an index
    left alone. Raises ``FetchError`` (one line; ``raw_dir`` untouched) on any failure.
    """
    raw_dir = Path(raw_dir)
    untouched = f"nothing written, {printable(raw_dir)} left untouched"
    plan, skipped = _plan(raw_dir, settings.indices, settings.base_url.rstrip("/"), untouched)
    own_client = client is None
    if client is None:
        client = httpx.Client(headers=HEADERS, follow_redirects=True,
                              timeout=settings.timeout_seconds)
    try:
        _download(plan, client, settings, plausible or ValidateSection(), sleep, untouched)
    finally:
        if own_client:
            client.close()

    entries = [_merge(index) for index in plan]
    _write(plan, entries, untouched)
    for index, entry in zip(plan, entries, strict=True):
        _warn_about(index, entry)
    report_entries = [_public(entry) for entry in entries] + skipped
    order = {index_id: n for n, index_id in enumerate(settings.indices)}
    report_entries.sort(key=lambda e: order[e["index_id"]])
    return {
        "summary": _summary(raw_dir, entries, skipped),
        "raw_dir": str(raw_dir),
        "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "indices": report_entries,
    }


def _download(plan: list[_Index], client: httpx.Client, settings: FetchSection,
              plausible: ValidateSection, sleep: Sleep, untouched: str) -> None:
    """Each planned index's answer, parsed into its ``fetched`` days (each plausible);
    paced, retried."""
    for n, index in enumerate(plan):
        if n and settings.pace_seconds > 0:
            sleep(settings.pace_seconds)
        try:
            body = _get(client, index.url, settings.timeout_seconds, settings.retries,
                        settings.backoff_seconds, settings.pace_seconds, sleep, index.who)
            index.fetched = _parse_answer(body, index)
            _check_plausible(index.fetched, plausible)
        except _Failure as exc:
            raise FetchError(f"{index.who}: {exc}; {untouched}") from None
        first, last = min(index.fetched), max(index.fetched)
        log.info("downloaded %s: %d days, %s .. %s", index.who, len(index.fetched),
                 _iso(first), _iso(last))


# -- before any request: the raw folder, the held files ------------------------------------

def _as_code(code: object) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code if code > 0 else None
    if isinstance(code, str) and code.isascii() and code.isdigit():
        return int(code)
    return None


def _plan(
    raw_dir: Path, indices: Mapping[str, int | str], base: str, untouched: str,
) -> tuple[list[_Index], list[dict[str, Any]]]:
    """The indices to fetch (their held days read) and the report entries of those skipped."""
    if raw_dir.is_symlink() and not raw_dir.exists():
        raise FetchError(f"{printable(raw_dir)}: a dangling symbolic link; {untouched}")
    if raw_dir.exists() and not raw_dir.is_dir():
        raise FetchError(f"{printable(raw_dir)}: not a folder; {untouched}")
    try:
        names = sorted(os.listdir(raw_dir)) if raw_dir.exists() else []
    except OSError as exc:
        raise FetchError(f"{printable(raw_dir)}: cannot list it ({exc.strerror}); "
                         f"{untouched}") from None
    plan: list[_Index] = []
    skipped: list[dict[str, Any]] = []
    for index_id, raw_code in indices.items():
        code = _as_code(raw_code)
        assert code is not None  # the schema (FetchSection) holds insCodes > 0
        own = f"{index_id}.json"
        others = [name for name in names if name != own and _same_index(raw_dir, name, index_id)]
        if others:
            shown = ", ".join(printable(name) for name in others)
            if len(others) == 1:
                reason = (f"{shown} is a hand export; fetch leaves it alone: "
                          "remove it to let fetch manage this index")
            else:
                reason = (f"{shown} are hand exports; fetch leaves them alone: "
                          "remove them to let fetch manage this index")
            log.warning("warning: %s: %s", printable(index_id), reason)
            skipped.append({"index_id": index_id, "ins_code": code, "skipped": reason})
            continue
        index = _Index(index_id, code, raw_dir / own, f"{base}/{ENDPOINT.format(code=code)}")
        index.held = _read_held(index, untouched)
        plan.append(index)
    return plan, skipped


def _same_index(raw_dir: Path, name: str, index_id: str) -> bool:
    """Whether ``name`` in ``raw_dir`` is an export of ``index_id`` (its stem, any case)."""
    path = Path(name)
    if name.startswith(".") or not path.suffix or path.stem.casefold() != index_id.casefold():
        return False
    full = raw_dir / name
    return full.is_symlink() or not full.is_dir()


def _read_held(index: _Index, untouched: str) -> dict[int, Row]:
    """The days held in ``<raw_dir>/<ISIN>.json`` ({} when there is none); never via a link."""
    path = index.path
    where = f"{index.who}: {printable(path)}"
    if path.is_symlink():
        raise FetchError(f"{where} is a symbolic link: refused; {untouched}")
    if not path.exists():
        return {}
    if not path.is_file():
        raise FetchError(f"{where} is not a regular file: refused; {untouched}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_ANSWER_BYTES + 1)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FetchError(f"{where} is a symbolic link: refused; {untouched}") from None
        raise FetchError(f"{where}: cannot read it ({exc.strerror}); {untouched}") from None
    index.held_bytes = data
    try:
        if len(data) > MAX_ANSWER_BYTES:
            raise _Failure(f"larger than {MAX_ANSWER_BYTES // 2**20} MiB")
        return _rows(_decode_json(data), index.ins_code, empty_ok=True)
    except _Failure as exc:
        raise FetchError(f"{where} is not a layout D history held by fetch ({exc}); fix or "
                         f"remove it; {untouched}") from None


# -- the request ----------------------------------------------------------------------------

def _get(
    client: httpx.Client, url: str, timeout: float, retries: int, backoff: float,
    pace: float, sleep: Sleep, who: str,
) -> bytes:
    """The body of a 2xx answer to ``GET url``, retrying what may pass; else ``_Failure``."""
    tries = retries + 1
    cause = ""
    offline = True
    for k in range(tries):
        if k:
            wait = max(backoff * 2 ** (k - 1), pace)
            log.info("%s: %s; retry %d of %d in %g s", who, cause, k, retries, wait)
            if wait > 0:
                sleep(wait)
        try:
            status, reason, body = _request(client, url, timeout)
        except _Timeout:
            cause, offline = f"timed out after {timeout:g} s", True
            continue
        except httpx.TimeoutException:
            cause, offline = f"timed out after {timeout:g} s", True
            continue
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            raise _Failure(f"cannot ask {printable(url)}: {_describe(exc)}") from None
        except httpx.TransportError as exc:
            cause, offline = _describe(exc), True
            continue
        except httpx.HTTPError as exc:  # a bad content encoding, too many redirects
            raise _Failure(f"bad answer from {printable(url)}: {_describe(exc)}") from None
        if 200 <= status < 300:
            return body
        what = f"HTTP {status} {printable(reason)}".rstrip()
        if status == 429 or 500 <= status < 600:
            cause, offline = what, False
            continue
        hint = {404: "wrong insCode or base_url?", 403: "refused by TSETMC"}.get(status, "")
        hint = f"not retried; {hint}" if hint else "not retried"
        raise _Failure(f"{what} from {printable(url)} ({hint})")
    if offline:
        raise _Failure(f"no answer from {printable(url)} after {tries} "
                       f"{'try' if tries == 1 else 'tries'} ({cause}); offline, or TSETMC "
                       "unreachable?")
    raise _Failure(f"no good answer from {printable(url)} after {tries} "
                   f"{'try' if tries == 1 else 'tries'} ({cause}); TSETMC is failing, try "
                   "again later")


def _request(client: httpx.Client, url: str, timeout: float) -> tuple[int, str, bytes]:
    """One GET: (status, reason, body); the whole answer must arrive within ``timeout``."""
    deadline = time.monotonic() + timeout
    with client.stream("GET", url, timeout=timeout) as response:
        _check_redirects(url, [*(hop.url for hop in response.history), response.url])
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise _Failure(f"malformed answer from {printable(url)}: larger than "
                               f"{MAX_ANSWER_BYTES // 2**20} MiB")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _Timeout
        return response.status_code, response.reason_phrase, b"".join(chunks)


def _check_redirects(url: str, visited: list[httpx.URL]) -> None:
    """A redirect may stay on the host asked, never leave it or go from https to http: an
    answer from elsewhere must not end up in data/raw."""
    asked = httpx.URL(url)
    for hop in visited:
        if (hop.host, hop.port) != (asked.host, asked.port):
            raise _Failure(f"redirected from {printable(url)} to another host, "
                           f"{printable(str(hop))}: refused (check fetch.base_url)")
        if asked.scheme == "https" and hop.scheme != "https":
            raise _Failure(f"redirected from https to {printable(str(hop))}: refused")


def _describe(exc: httpx.HTTPError) -> str:
    """A short cause for a transport error: connection refused, host not found, ..."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, httpx.ConnectError):
        if "refused" in lowered:
            return "connection refused"
        if any(s in lowered for s in ("name or service", "name resolution", "nodename",
                                      "no address", "getaddrinfo")):
            return "host name not found"
        if "unreachable" in lowered:
            return "network unreachable"
        return f"cannot connect: {printable(text) or type(exc).__name__}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"connection dropped: {printable(text) or type(exc).__name__}"
    return printable(text) or type(exc).__name__


# -- the answer -----------------------------------------------------------------------------

def _parse_answer(body: bytes, index: _Index) -> dict[int, Row]:
    try:
        rows = _rows(_decode_json(body), index.ins_code, empty_ok=False)
    except _Failure as exc:
        text = str(exc)
        if text.startswith("empty history"):
            raise _Failure(f"{text} from {printable(index.url)} (wrong insCode?)") from None
        raise _Failure(f"malformed answer: {text} ({printable(index.url)})") from None
    return rows


def _check_plausible(rows: dict[int, Row], bounds: ValidateSection) -> None:
    """``_Failure`` naming the first day whose levels validation would drop as implausible."""
    import pandas as pd

    from pipelines.data.validate import close_moves

    frame = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    limit, move = bounds.max_price, bounds.max_daily_move
    judged = close_moves(frame["close"], limit, move)
    off_close = (frame.div(judged["close_reference"], axis=0) - 1).abs() > move
    bad = ((frame > limit).any(axis=1) | (judged["close_off_neighbours"] > move)
           | (judged["close_move"] > move) | off_close.any(axis=1))
    if not bad.any():
        return
    day = int(bad.idxmax())
    values, at = rows[day], judged.loc[day]
    where = f"implausible answer: day {_iso(day)}"
    for name, value in values.items():
        if value > limit:
            raise _Failure(f"{where}: {name} {value:g} above validate.max_price ({limit:g})")
    close = values["close"]
    if at["close_off_neighbours"] > move:
        raise _Failure(f"{where}: close {close:g} is {close / at['close_neighbours']:.3g} "
                       f"times the median of its neighbours (validate.max_daily_move "
                       f"{move:.0%})")
    if at["close_move"] > move:
        raise _Failure(f"{where}: close {close:g} moved {close / at['close_previous'] - 1:+.1%} "
                       f"in a day (validate.max_daily_move {move:.0%})")
    name = str(off_close.loc[day].idxmax())
    raise _Failure(f"{where}: {name} {values[name]:g} is more than {move:.0%} from the close "
                   f"{at['close_reference']:g} (validate.max_daily_move)")


def _decode_json(data: bytes) -> Any:
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Failure(f"not UTF-8 (byte {exc.start + bom})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise _Failure("not valid JSON (empty)") from None
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise _Failure(f"not valid JSON (truncated at byte {len(data)})") from None
        at = len(text[: exc.pos].encode("utf-8")) + bom
        raise _Failure(f"not valid JSON at byte {at}: {exc.msg}") from None
    except RecursionError:
        raise _Failure("not valid JSON (nested too deeply)") from None


def _no_constant(name: str) -> Any:
    raise _Failure(f"{name} where a number belongs")


def _rows(payload: Any, code: int, *, empty_ok: bool) -> dict[int, Row]:
    """Check a layout D document; return its rows by date. Raises ``_Failure(reason)``."""
    if not isinstance(payload, dict):
        raise _Failure(f"not an object with {LAYOUT_D_LIST} (a JSON {type(payload).__name__})")
    if LAYOUT_D_LIST not in payload:
        keys = ", ".join(printable(k) for k in list(payload)[:5]) or "none"
        raise _Failure(f"no field {LAYOUT_D_LIST} (keys: {keys})")
    items = payload[LAYOUT_D_LIST]
    if items is None:
        items = []
    if not isinstance(items, list):
        raise _Failure(f"{LAYOUT_D_LIST} is not a list (a JSON {type(items).__name__})")
    if not items and not empty_ok:
        raise _Failure("empty history (0 rows)")
    rows: dict[int, Row] = {}
    seen_at: dict[int, int] = {}
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise _Failure(f"row {n} is not an object")
        for name in ROW_FIELDS:
            if name not in item:
                raise _Failure(f"row {n} has no field {name} (renamed upstream?)")
        got = _as_code(item[LAYOUT_D_CODE])
        if got != code:
            raise _Failure(f"row {n} has insCode {printable(repr(item[LAYOUT_D_CODE]))}, "
                           f"not the requested {code}")
        day = item[LAYOUT_D_DATE]
        if not _is_day(day):
            raise _Failure(f"row {n}: {LAYOUT_D_DATE} {printable(repr(day))} is not a date "
                           "(YYYYMMDD)")
        if day in seen_at:
            raise _Failure(f"day {_iso(day)} appears twice (rows {seen_at[day]} and {n})")
        seen_at[day] = n
        values: Row = {}
        for name, canonical in LAYOUT_D_VALUES.items():
            value = item[name]
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value)):
                raise _Failure(f"row {n} ({_iso(day)}): {name} is "
                               f"{printable(repr(value)[:40])}, not a finite number")
            if value <= 0:  # validation drops such a day: never write it into data/raw
                raise _Failure(f"row {n} ({_iso(day)}): {name} ({canonical}) is "
                               f"{printable(repr(value))}, not a price above 0")
            values[canonical] = float(value)
        rows[day] = values
    return rows


def _is_day(day: object) -> bool:
    if isinstance(day, bool) or not isinstance(day, int) or not 10000101 <= day <= 99991231:
        return False
    try:
        dt.date(day // 10000, day // 100 % 100, day % 100)
    except ValueError:
        return False
    return True


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


# -- merge, write, report -------------------------------------------------------------------

def _merge(index: _Index) -> dict[str, Any]:
    """The union of held and fetched days (fetched values win) and what changed."""
    held, fetched = index.held, index.fetched
    changes = []
    for day in sorted(held.keys() & fetched.keys()):
        for name in LAYOUT_D_VALUES.values():
            old, new = held[day][name], fetched[day][name]
            if old != new:
                changes.append({"date": _iso(day), "field": name, "old": old, "new": new})
    kept = sorted(held.keys() - fetched.keys())
    merged = held | fetched
    days = sorted(merged)
    return {
        "index_id": index.index_id,
        "ins_code": index.ins_code,
        "file": str(index.path),
        "url": index.url,
        "days_held": len(held),
        "days_fetched": len(fetched),
        "days_new": len(fetched.keys() - held.keys()),
        "days_changed": changes,
        "days_kept_not_upstream": len(kept),
        "kept_not_upstream": [_iso(kept[0]), _iso(kept[-1])] if kept else None,
        "days_total": len(days),
        "first_date": _iso(days[0]),
        "last_date": _iso(days[-1]),
        "written": False,
        "_bytes": encode_history(index.ins_code, [(day, merged[day]) for day in days]),
    }


def encode_history(code: int, days: list[tuple[int, Row]]) -> bytes:
    """Layout D as fetch writes it: ``{"indexB2": [...]}``, one compact row a line, UTF-8."""
    lines = []
    for day, values in days:
        row = {LAYOUT_D_CODE: code, LAYOUT_D_DATE: day}
        row.update({name: values[canonical] for name, canonical in LAYOUT_D_VALUES.items()})
        lines.append(json.dumps(row, separators=(",", ":"), allow_nan=False))
    return (f'{{"{LAYOUT_D_LIST}":[\n' + ",\n".join(lines) + "\n]}\n").encode("utf-8")


def _write(plan: list[_Index], entries: list[dict[str, Any]], untouched: str) -> None:
    """Write every file whose bytes change: all temporary files first, then the renames."""
    todo = [(index, entry) for index, entry in zip(plan, entries, strict=True)
            if entry["_bytes"] != index.held_bytes]
    current = None
    try:
        with ExitStack() as stack:
            for index, entry in todo:
                current = index
                tmp = stack.enter_context(atomic_path(index.path))
                tmp.write_bytes(entry["_bytes"])
    except OSError as exc:
        who = current.who if current else "?"
        where = printable(current.path if current else exc.filename)
        raise FetchError(f"{who}: cannot write {where} ({exc.strerror or exc}); "
                         f"{untouched}") from None
    for _, entry in todo:
        entry["written"] = True


def _warn_about(index: _Index, entry: dict[str, Any]) -> None:
    kept = entry["kept_not_upstream"]
    if kept:
        count = entry["days_kept_not_upstream"]
        log.warning("warning: %s: upstream no longer has %d held day%s (%s .. %s); kept them",
                    index.who, count, "" if count == 1 else "s", kept[0], kept[1])
    changes = entry["days_changed"]
    if changes:
        days = len({c["date"] for c in changes})
        shown = ", ".join(f"{c['date']} {c['field']} {c['old']:.15g} -> {c['new']:.15g}"
                          for c in changes[:SHOWN_CHANGES])
        more = f" and {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
        log.warning("warning: %s: %d held day%s changed upstream (%d value%s); took the new "
                    "values: %s%s", index.who, days, "" if days == 1 else "s", len(changes),
                    "" if len(changes) == 1 else "s", shown, more)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if not key.startswith("_")}


def _summary(raw_dir: Path, entries: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    n = len(entries)
    new = sum(e["days_new"] for e in entries)
    changed = sum(len({c["date"] for c in e["days_changed"]}) for e in entries)
    kept = sum(e["days_kept_not_upstream"] for e in entries)
    last = max((e["last_date"] for e in entries), default="none")
    line = (f"fetched {n} {'index' if n == 1 else 'indices'} into {printable(raw_dir)}: "
            f"{new} new day{'' if new == 1 else 's'}, {changed} changed, {kept} kept that "
            f"upstream no longer has; last day {last}")
    if skipped:
        line += f"; {len(skipped)} left alone (hand exports)"
    return line
