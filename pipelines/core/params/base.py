"""What every section of the schema shares: its strictness and the common value types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A section of params.yaml: every key known, each value of its own type (no
    conversion of ``"12"`` into 12), read-only once checked."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Share = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]

