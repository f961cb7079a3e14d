"""``ingest:``: which files are read, and the largest one read (in bytes and in rows)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import Positive, Section


class IngestSection(Section):
    file_patterns: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: ["*.csv", "*.txt", "*.json"],
        description="matched case-insensitively (.CSV too)")
    max_file_mb: Annotated[float, Field(gt=0)] = Field(50, description=(
        "a larger file is left out before it is parsed"))
    max_rows: Positive = Field(100_000, description=(
        "a file of more rows is left out before they are parsed (about 250 rows a year: "
        "four centuries); it bounds ingest's and validation's memory"))
