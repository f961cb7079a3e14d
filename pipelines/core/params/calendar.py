"""``calendar:``: the days the exchange is closed besides Thursdays and Fridays."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

from pipelines.core.params.base import Section


def _a_date(value: Any) -> Any:
    """``value`` if YAML read it as a date (``2024-03-19`` unquoted), else a clear error."""
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise PydanticCustomError("not_a_date", "is not a date: write it as YYYY-MM-DD, "
                                  "unquoted (e.g. 2024-03-19)")
    return value


Day = Annotated[dt.date, BeforeValidator(_a_date)]


class CalendarSection(Section):
    closures: list[Day] = Field(default_factory=list, description=(
        "days the TSE is closed beyond the public holidays, as Gregorian dates "
        "(YYYY-MM-DD, unquoted)"))
    public_holidays: bool = Field(True, description=(
        "skip Iran's public holidays (Nowruz, the Islamic holidays, ...) as the holidays "
        "package lists them"))
