"""The TSE's trading days: Saturday to Wednesday, less Iran's public holidays (the
``holidays`` package) and the closures in params.yaml (``calendar:``).

The expected days are worked out by hand in the comments, from the ``holidays`` package's
list (0.108) and the Persian calendar (jdatetime), not by the function under test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jdatetime
import pytest
import yaml

from pipelines.core.calendar import is_trading_day, next_trading_day, public_holidays_of
from pipelines.core.errors import DataError
from pipelines.core.params.load import load_params

ROOT = Path(__file__).resolve().parents[2]


def persian(year: int, month: int, day: int) -> dt.date:
    return jdatetime.date(year, month, day).togregorian()


def params_with(tmp_path: Path, **calendar: object) -> Path:
    """The shipped params.yaml with ``calendar:`` set to ``calendar``, in ``tmp_path``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["calendar"] = calendar
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def test_the_holidays_package_lists_nowruz_1403_and_1404():
    assert persian(1403, 1, 1) == dt.date(2024, 3, 20)  # a Wednesday
    assert persian(1404, 1, 1) == dt.date(2025, 3, 21)  # a Friday
    assert {persian(1402, 12, 29), persian(1403, 1, 1), persian(1403, 1, 4),
            persian(1403, 12, 29), persian(1403, 12, 30), persian(1404, 1, 4)
            } <= public_holidays_of(2024) | public_holidays_of(2025)


def test_after_the_last_day_before_nowruz_1403_comes_the_first_day_after_it():
    # Nowruz 1403 is Wednesday 2024-03-20, and Esfand 29 1402 (Tuesday 03-19, oil
    # nationalization day) is a holiday too: the last trading day before it is Monday
    # 2024-03-18. Then: Tue 19 holiday, Wed 20 Nowruz, Thu 21 and Fri 22 weekend (and
    # Nowruz), Sat 23 Farvardin 4 (Nowruz holiday), so Sunday 2024-03-24.
    last = dt.date(2024, 3, 18)
    assert is_trading_day(last, public_holidays=True)
    assert next_trading_day(last, public_holidays=True) == dt.date(2024, 3, 24)


def test_after_the_last_day_before_nowruz_1404_comes_the_first_day_after_it():
    # Nowruz 1404 is Friday 2025-03-21. Wednesday 03-19 (Esfand 29, oil nationalization
    # day) and Thursday 03-20 (Esfand 30, last day of the year) are holidays, so the last
    # trading day is Tuesday 2025-03-18. Then: Wed 19 and Thu 20 holidays, Fri 21 Nowruz,
    # Sat 22 - Mon 24 Farvardin 2-4 (Nowruz holidays), so Tuesday 2025-03-25.
    last = dt.date(2025, 3, 18)
    assert is_trading_day(last, public_holidays=True)
    assert next_trading_day(last, public_holidays=True) == dt.date(2025, 3, 25)


def test_a_closure_in_params_is_skipped(tmp_path):
    # Monday 2024-05-13 to Wednesday 05-15: no public holiday; the Tuesday is closed.
    calendar = load_params(params_with(tmp_path, closures=[dt.date(2024, 5, 14)])).calendar
    assert calendar.closures == [dt.date(2024, 5, 14)] and calendar.public_holidays
    monday = dt.date(2024, 5, 13)
    assert next_trading_day(monday, public_holidays=True) == dt.date(2024, 5, 14)
    assert next_trading_day(monday, calendar.closures,
                            public_holidays=calendar.public_holidays) == dt.date(2024, 5, 15)


def test_without_public_holidays_only_weekends_and_closures_are_skipped(tmp_path):
    calendar = load_params(params_with(tmp_path, closures=[dt.date(2024, 3, 19)],
                                       public_holidays=False)).calendar
    assert not calendar.public_holidays
    # Tuesday 2024-03-19 is a closure; Wednesday 03-20 (Nowruz) is a trading day now
    assert next_trading_day(dt.date(2024, 3, 18), calendar.closures,
                            public_holidays=False) == dt.date(2024, 3, 20)
    # Wednesday 03-20 -> Thursday and Friday are the weekend -> Saturday 03-23 (Farvardin 4)
    assert next_trading_day(dt.date(2024, 3, 20), public_holidays=False) == dt.date(2024, 3, 23)


def test_the_shipped_calendar_has_no_closures_and_skips_public_holidays():
    calendar = load_params(ROOT / "params.yaml").calendar
    assert calendar.closures == [] and calendar.public_holidays


@pytest.mark.parametrize("closure", ["soon", "2024-03-19", 20240319])
def test_a_closure_that_is_not_a_date_is_refused(tmp_path, closure):
    path = params_with(tmp_path, closures=[dt.date(2024, 5, 14), closure])
    with pytest.raises(DataError) as caught:
        load_params(path)
    assert caught.value.lines == [
        f"{path}: calendar.closures.1: is not a date: write it as YYYY-MM-DD, unquoted "
        f"(e.g. 2024-03-19) (got {closure!r})"]
