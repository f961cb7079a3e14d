"""``split:``: chronological train | validation | test."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import Section


class SplitSection(Section):
    validation_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(0.15, description=(
        "the share of labelled days that picks the champion"))
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.3, description=(
        "the last share of labelled days, walked forward"))
