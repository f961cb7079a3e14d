"""``data:``: which index is forecast."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import Section

# An index id (an export file's stem) names a table, its columns (``ID__close``) and rows on
# every page: an ISIN (IRX6XTPI0009) or up to 40 letters, digits, '_', '-' and '.'; never a
# space, a quote or markup.
INDEX_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
IndexId = Annotated[str, Field(pattern=INDEX_ID_PATTERN)]


class DataSection(Section):
    target_index: IndexId = Field(
        "IRX6XTPI0009", description="ISIN of the index to forecast (TEDPIX, the overall index)")
