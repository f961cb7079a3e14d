"""``backtest:``: what the champion's test-day forecasts would have earned."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipelines.core.params.base import Section


class BacktestSection(Section):
    mode: Literal["long_flat", "long_short"] = Field("long_flat", description=(
        "long when up is forecast, flat otherwise | long_short"))
    cost_bps: Annotated[float, Field(ge=0)] = Field(50, description=(
        "per change of position (0.5 %): a round trip in TSE shares costs about 1-1.3 % "
        "(commissions and the 0.5 % sales tax)"))
    risk_free_rate: Annotated[float, Field(ge=0, lt=5)] = Field(0.0, description=(
        "a year, for the Sharpe ratio (compare strategies with each other, not with zero)"))
