"""The Tehran Stock Exchange's trading days.

The market trades Saturday to Wednesday. It is closed on Iran's public holidays (Nowruz,
the Islamic holidays, ...), which the ``holidays`` package lists, and on the few other
days the exchange announces (``calendar.closures`` in params.yaml).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from functools import cache

import holidays

TRADING_WEEKDAYS = frozenset({5, 6, 0, 1, 2})  # Saturday .. Wednesday (Monday is 0)
TEHRAN = "Asia/Tehran"


@cache
def public_holidays_of(year: int) -> frozenset[dt.date]:
    """Iran's public holidays in the Gregorian ``year``, as the ``holidays`` package lists
    them (its Islamic dates are estimates for the years it has not confirmed)."""
    return frozenset(holidays.country_holidays("IR", years=year))


def is_trading_day(day: dt.date, closures: Collection[dt.date] = (), *,
                   public_holidays: bool) -> bool:
    """Whether the exchange trades on ``day``: a Saturday to Wednesday that is not in
    ``closures`` and, if ``public_holidays``, not one of Iran's public holidays."""
    if day.weekday() not in TRADING_WEEKDAYS or day in closures:
        return False
    return not (public_holidays and day in public_holidays_of(day.year))


def next_trading_day(day: dt.date, closures: Collection[dt.date] = (), *,
                     public_holidays: bool) -> dt.date:
    """The first trading day after ``day`` (see ``is_trading_day``).

    ``public_holidays`` has no default here: it is ``calendar.public_holidays`` of
    params.yaml, declared once, in its schema (``pipelines.core.params.calendar``).
    """
    following = day + dt.timedelta(days=1)
    while not is_trading_day(following, closures, public_holidays=public_holidays):
        following += dt.timedelta(days=1)
    return following


def trading_days_after(day: dt.date, until: dt.date, closures: Collection[dt.date] = (), *,
                       public_holidays: bool) -> int:
    """How many trading days there are after ``day`` up to and including ``until`` (0 when
    ``until`` is not after ``day``): how many trading days ``day`` lies before ``until``."""
    count, following = 0, day
    while True:
        following = next_trading_day(following, closures, public_holidays=public_holidays)
        if following > until:
            return count
        count += 1


def data_age(as_of: dt.date, today: dt.date, closures: Collection[dt.date], *,
             public_holidays: bool, max_age: int) -> dict[str, object]:
    """How old data ending ``as_of`` is on ``today``: ``trading_days`` (after ``as_of`` up
    to today), ``stale`` (more than ``max_age``: a forecast made from it is for a past day)
    and a ``message`` saying so ("" when fresh)."""
    behind = trading_days_after(as_of, today, closures, public_holidays=public_holidays)
    stale = behind > max_age
    following = next_trading_day(as_of, closures, public_holidays=public_holidays)
    message = (f"stale data: the dataset ends {as_of:%Y-%m-%d}, {behind:,} trading days before "
               f"today ({today:%Y-%m-%d}); the forecast for {following:%Y-%m-%d} is for a "
               "past day" if stale else "")
    return {"today": f"{today:%Y-%m-%d}", "trading_days": behind, "max_age": max_age,
            "stale": stale, "message": message}


def tehran_today() -> dt.date:
    """Today's date in Tehran, the exchange's own calendar day."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(TEHRAN)).date()
