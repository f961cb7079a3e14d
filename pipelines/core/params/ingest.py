"""``ingest:``: which files are read, and the largest one read."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import Section


class IngestSection(Section):
    file_patterns: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["*.csv", "*.txt", "*.json"],
        description="matched case-insensitively (.CSV too)")
    max_file_mb: Annotated[float, Field(gt=0)] = Field(50, description=(
        "a larger file is left out before it is parsed"))
