"""``data:``: which index is forecast."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import Section


class DataSection(Section):
    target_index: Annotated[str, Field(min_length=1, pattern=r"^[^/\\\s]+$")] = Field(
        "IRX6XTPI0009", description="ISIN of the index to forecast (TEDPIX, the overall index)")
