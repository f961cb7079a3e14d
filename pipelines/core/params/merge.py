"""``merge:``: the calendar is the target's trading days; how other indices join it."""

from __future__ import annotations

from pydantic import Field

from pipelines.core.params.base import NonNegative, Section, Share


class MergeSection(Section):
    min_coverage: Share = Field(0.9, description=(
        "an index covering less of the target's days is left out (it started late); "
        "otherwise the days before it are dropped"))
    max_fill_days: NonNegative = Field(5, description=(
        "forward fill at most this many consecutive missing days; an index whose last day "
        "is more trading days than this before the target's is stale and left out"))
    max_target_days_lost: Share = Field(0.01, description=(
        "an index whose gaps (longer than max_fill_days) would cost the target more than "
        "this share of its days is left out"))
