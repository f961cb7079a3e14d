"""The published forecasts' track record: each call scored against the close that followed.

In: the forecast log (``forecasts/log.parquet``, one row per publication, written by
``pipelines.modelling.predict.publish``) and the dataset's trading days and the target's
closes. Out: ``score_forecasts``, one row per forecast day (``as_of``) with its call, the
dataset's next trading day and whether the index closed higher on it, and ``summarise``,
the counts, hit rate and MCC (with a block-bootstrap interval) of those rows plus the most
recent ones, as plain JSON values for a page.

Why this way:

- The last publication for an ``as_of`` counts (by ``created``, else by row order): it is
  what the front page showed last for that day. Earlier ones were replaced, not withdrawn,
  and scoring them all would count one day several times.
- The outcome is read from the dataset, not from the log: the day after ``as_of`` in
  ``dates`` and its close against ``as_of``'s ("up" only when strictly higher, as the
  labels are made). A forecast stays pending until that close is in the dataset, so a
  rerun after the next day's data scores it; nothing is stored.
- An ``as_of`` that is not a day of the dataset (a dataset rebuilt without it, a log from
  another index) has no close to compare with: it is shown as "unknown day", never scored.
- A "no call" (the forecast withheld, with ``reasons``) is not a hit or a miss; days with
  no call are counted apart so that withholding cannot raise or lower the hit rate unseen.
- Rows written before calls existed have only ``direction``: that was their call.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.core.errors import DataError, printable
from pipelines.modelling.metrics import block_bootstrap_ci, classification_metrics

COLUMNS = ("as_of", "next_trading_day", "call", "probability_up", "champion", "outcome_day",
           "outcome", "hit", "status")
CALLS = ("up", "down", "no call")
SCORED, NO_CALL, PENDING, UNKNOWN_DAY = "scored", "no call", "pending", "unknown day"


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA (a list, such as ``reasons``, is never missing)."""
    if value is None:
        return True
    if np.ndim(value) > 0:
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _day_text(value: Any) -> str:
    """A date, a timestamp or a date string as "YYYY-MM-DD"."""
    return f"{pd.Timestamp(value):%Y-%m-%d}"


def _text(value: Any) -> str:
    """A date or timestamp as "YYYY-MM-DD"; anything else as the text it is."""
    return _day_text(value) if isinstance(value, dt.date) else str(value)


def _last_publications(log: pd.DataFrame) -> pd.DataFrame:
    """The log's last publication for each ``as_of``: the latest ``created`` (rows without
    one count as published before any with one), ties and a log without ``created`` going
    by row order."""
    frame = log.assign(_as_of=[_day_text(v) for v in log["as_of"]], _order=np.arange(len(log)))
    keys = ["_order"]
    if "created" in frame.columns:
        frame["_created"] = pd.to_datetime(frame["created"], utc=True, errors="coerce",
                                           format="ISO8601")
        keys = ["_created", "_order"]
    frame = frame.sort_values(keys, na_position="first", kind="mergesort")
    return frame.drop_duplicates(subset="_as_of", keep="last")


def _call_of(record: dict[str, Any]) -> str:
    """The row's call: ``call``, or ``direction`` in rows written before calls existed."""
    value = record.get("call")
    if _missing(value):
        value = record.get("direction")
    call = "" if _missing(value) else str(value).strip().lower()
    if call not in CALLS:
        raise ValueError(f"forecast log, as_of {record['_as_of']}: expected a call of "
                         f"{', '.join(CALLS)}, got {value!r}")
    return call


def _outcome(as_of: str, days: pd.DatetimeIndex, closes: np.ndarray
             ) -> tuple[bool, str | None, str | None]:
    """(whether ``as_of`` is a day with a close, the next day, "up"/"down" or None)."""
    position = int(days.get_indexer([pd.Timestamp(as_of)])[0])
    if position < 0 or not math.isfinite(closes[position]):
        return False, None, None
    if position + 1 >= len(days):
        return True, None, None
    following = _day_text(days[position + 1])
    if not math.isfinite(closes[position + 1]):
        return True, following, None
    return True, following, "up" if closes[position + 1] > closes[position] else "down"


def _scored_row(record: dict[str, Any], days: pd.DatetimeIndex, closes: np.ndarray
                ) -> dict[str, Any]:
    """One forecast day of ``score_forecasts``."""
    as_of, call = record["_as_of"], _call_of(record)
    known_day, outcome_day, outcome = _outcome(as_of, days, closes)
    if not known_day:
        status = UNKNOWN_DAY
    elif outcome is None:
        status = PENDING
    else:
        status = NO_CALL if call == "no call" else SCORED
    following, proba = record.get("next_trading_day"), record.get("probability_up")
    champion = record.get("champion")
    return {"as_of": as_of,
            "next_trading_day": None if _missing(following) else _text(following),
            "call": call, "probability_up": None if _missing(proba) else float(proba),
            "champion": None if _missing(champion) else str(champion),
            "outcome_day": outcome_day, "outcome": outcome,
            "hit": call == outcome if status == SCORED else None, "status": status}


def read_forecast_log(path: Path | str) -> pd.DataFrame:
    """The forecast log's rows (empty where there is none yet); a DataError of one line,
    naming the file and the way back, when it is cut short, not Parquet, or another table
    (no ``as_of`` day or call on a row)."""
    name = printable(path)
    back = (f"restore it with dvc checkout --force {name} (DVC sees it changed), or move it "
            "aside to start a new log (tsepipe predict)")
    if not Path(path).exists():
        return pd.DataFrame(columns=["as_of", "call"])
    try:
        log = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # cut short, not Parquet
        reason = printable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 120)
        raise DataError(f"{name}: the forecast log is damaged ({reason}); {back}") from None
    missing = [column for column in ("as_of", "call") if column not in log.columns and not
               (column == "call" and "direction" in log.columns)]
    if missing:
        raise DataError(f"{name}: not tsepipe's forecast log (no column "
                        f"{', '.join(missing)}); {back}")
    frame = log.assign(_as_of="")
    for row, record in enumerate(frame.to_dict("records"), start=1):
        try:
            record["_as_of"] = _day_text(record["as_of"])
            _call_of(record)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{name}: row {row}: {printable(exc, 120)}; {back}") from None
    return log


def score_forecasts(log: pd.DataFrame, dates: pd.DatetimeIndex, close: np.ndarray
                    ) -> pd.DataFrame:
    """Each forecast day of the log scored against the dataset, sorted by ``as_of``.

    ``log``: the forecast log's rows (``as_of``, ``next_trading_day``, ``call`` or, in
    older rows, ``direction``, ``probability_up``, ``champion``, ``created``); the last
    publication for each ``as_of`` counts. ``dates``, ``close``: the dataset's trading
    days and the target's closes, oldest first, of one length.

    Columns: ``as_of``, ``next_trading_day`` (as the forecast named it), ``call``
    ("up", "down", "no call"), ``probability_up`` (the published one; NaN where none),
    ``champion``, ``outcome_day`` (the dataset's day after ``as_of``, "YYYY-MM-DD", None
    where there is none yet or ``as_of`` is not a day of ``dates``), ``outcome`` ("up"
    when that day's close is above ``as_of``'s, else "down"; None while not in the
    dataset), ``hit`` (True/False for a scored up/down call, else None) and ``status``:
    "scored", "no call" (outcome known, nothing called), "pending" (outcome not known yet,
    whatever the call) or "unknown day" (``as_of`` has no close in the dataset).
    """
    closes = np.asarray(close, dtype="float64").reshape(-1)
    days = pd.DatetimeIndex(dates).normalize()
    if len(days) != len(closes):
        raise ValueError(f"score_forecasts: {len(days)} dates but {len(closes)} closes")
    if log.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    latest = _last_publications(log)
    rows = [_scored_row(record, days, closes) for record in latest.to_dict("records")]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values("as_of", kind="mergesort").reset_index(drop=True)


def _plain(value: Any) -> Any:
    """A JSON value: None for missing or non-finite, Python scalars, dates as text."""
    if _missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return _day_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def recent_rows(scored: pd.DataFrame, recent: int) -> list[dict[str, Any]]:
    """The last ``recent`` rows of ``score_forecasts`` (any status), as JSON-safe dicts."""
    if recent < 0:
        raise ValueError(f"recent: expected 0 or more rows, got {recent}")
    tail = scored.iloc[len(scored) - min(recent, len(scored)):]
    return [{column: _plain(row[column]) for column in COLUMNS}
            for row in tail.to_dict("records")]


def _mcc(calls: pd.DataFrame, block: int, n_boot: int
         ) -> tuple[float | None, list[float] | None]:
    """MCC of the calls against the outcomes and its block-bootstrap interval."""
    if len(calls) < 2:
        return None, None
    y_true = (calls["outcome"] == "up").to_numpy(dtype="int64")
    y_pred = (calls["call"] == "up").to_numpy(dtype="int64")
    value = classification_metrics(y_true, y_pred, y_pred=y_pred)["mcc"]
    low, high = block_bootstrap_ci(y_true, y_pred, "mcc", block=block, n_boot=n_boot)
    return float(value), [low, high]


def summarise(scored: pd.DataFrame, block: int, n_boot: int, recent: int) -> dict[str, Any]:
    """The track record of ``score_forecasts``'s rows, as plain JSON values.

    ``calls``: up/down calls whose outcome is known ("scored"); ``hits``, ``hit_rate``
    (None without calls); ``up_calls`` and ``down_calls`` among those calls; ``mcc`` of
    the calls against the outcomes and ``mcc_interval`` [low, high], a 95 % circular
    moving-block bootstrap (``block`` days, ``n_boot`` resamples, seed 0) of the calls in
    ``as_of`` order; both None with fewer than 2 calls. When all calls, or all outcomes,
    are one class the correlation is undefined: ``mcc`` is then 0.0, as sklearn counts
    it, and so is every resample (the interval is [0.0, 0.0] when the calls are one
    class); read it with ``up_calls``/``down_calls``. ``no_calls``: days with no call whose
    outcome is known; ``pending``: forecasts (calls or not) whose outcome is not in the
    dataset yet; ``unknown_days``: ``as_of`` days not in the dataset; ``since``/``last``:
    the first/last ``as_of`` (None when empty); ``recent``: the last ``recent`` rows, any
    status, as dicts of ``score_forecasts``'s columns (``recent_rows``).
    """
    status = scored["status"]
    calls = scored[status == SCORED]
    hits = sum(bool(hit) for hit in calls["hit"])
    mcc, interval = _mcc(calls, block, n_boot)
    return {
        "calls": len(calls),
        "hits": hits,
        "hit_rate": hits / len(calls) if len(calls) else None,
        "up_calls": int((calls["call"] == "up").sum()),
        "down_calls": int((calls["call"] == "down").sum()),
        "mcc": mcc,
        "mcc_interval": interval,
        "no_calls": int((status == NO_CALL).sum()),
        "pending": int((status == PENDING).sum()),
        "unknown_days": int((status == UNKNOWN_DAY).sum()),
        "since": str(scored["as_of"].min()) if len(scored) else None,
        "last": str(scored["as_of"].max()) if len(scored) else None,
        "recent": recent_rows(scored, recent),
    }
