"""``sample:``: the synthetic sample exports (``tsepipe sample-data``)."""

from __future__ import annotations

from pydantic import Field

from pipelines.core.params.base import Positive, Section


class SampleSection(Section):
    days: Positive = Field(1200, description="trading days per file (about 5 years)")
    seed: int = Field(1397, description="the same seed gives the same bytes")
