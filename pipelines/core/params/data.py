"""``data:``: which indices are forecast."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field

from pipelines.core.params.base import Section

# An index id (an export file's stem) names a table, its columns (``ID__close``) and rows on
# every page: an ISIN (IRX6XTPI0009) or up to 40 letters, digits, '_', '-' and '.'; never a
# space, a quote or markup.
INDEX_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
IndexId = Annotated[str, Field(pattern=INDEX_ID_PATTERN)]


class DataSection(Section):
    target_index: IndexId = Field(
        "IRX6XTPI0009", description=(
            "ISIN of the headline index (TEDPIX, the overall index): the merge's calendar, "
            "the DVC metrics, first on every page; always forecast"))
    targets: Literal["all"] | Annotated[list[IndexId], Field(max_length=64)] = Field(
        default_factory=list, description=(
            "more indices to forecast, each with its own walk-forward, champion, call and "
            "drift: ISINs, or all (every index that passes validation and the merge); "
            "[]: target_index alone"))

    def resolve(self, available: Sequence[str]) -> tuple[list[str], list[str]]:
        """(the indices forecast, target_index first, then in the order of ``available``
        (the merged dataset's indices); the listed ones the dataset does not have)."""
        if self.targets == "all":
            wanted = list(available)
        else:
            wanted = list(self.targets)
        missing = [t for t in dict.fromkeys(wanted) if t not in available]
        others = [t for t in available if t in wanted and t != self.target_index]
        return [self.target_index, *others], missing

    def of(self, target: str) -> DataSection:
        """This section with ``target`` as the index forecast (a target's own stages)."""
        return self.model_copy(update={"target_index": target})
