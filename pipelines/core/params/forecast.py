"""``forecast:``: the published call: calibration, when there is no call, stale data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from pipelines.core.params.base import NonNegative, Positive, Section

Calibration = Literal["auto", "none", "platt", "isotonic"]


class ForecastSection(Section):
    calibration: Calibration = Field("auto", description=(
        "the map from the champion's P(up) to the published one, fitted on the walk-forward's "
        "validation days only (never a test day): none, platt, isotonic, or auto: the one "
        "that scores the lowest Brier score on the second half of the validation days when "
        "fitted on the first half (none unless a map does strictly better)"))
    require_skill: bool = Field(True, description=(
        "no call while the champion's 95 % interval of its test MCC holds 0 (no "
        "demonstrated skill on the walk-forward test days)"))
    no_call_band: Annotated[float, Field(ge=0, le=0.5)] = Field(0.05, description=(
        "no call when the published P(up) is within this of the base rate (the share of up "
        "days in the champion's training span: it says no more than the usual odds) or of "
        "0.5 (a coin flip)"))
    base_rate_days: Positive = Field(60, description=(
        "the recent base rate beside the call: the share of up days in the last N labelled "
        "days"))
    max_data_age: NonNegative = Field(1, description=(
        "trading days (Tehran calendar) the dataset's last day may be before today; older, "
        "the front page, latest.json and the CLI say the data is stale and the forecast is "
        "for a past day"))
    record_recent: Positive = Field(60, description=(
        "published forecasts drawn in the track record's chart of calls against outcomes"))
