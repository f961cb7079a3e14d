"""``validate:``: which files are usable, which prices are plausible, and how many bad rows
a file may lose."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import NonNegative, Positive, Section, Share


class ValidateSection(Section):
    min_usable_files: Positive = Field(12, description=(
        "of the 16; fewer stops the run before the merge"))
    min_rows: Positive = Field(100, description="per file")
    price_tolerance: Share = Field(5.0e-4, description=(
        "open/close may exceed [low, high] by this relative amount (rounding in the real "
        "exports reaches 1.9e-4)"))
    max_price: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(1.0e9, description=(
        "an index level (open, high, low, close, last, prev_close) above this, or not "
        "finite, is a bad row (TEDPIX was 3.8e5 in 2019)"))
    max_daily_move: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(0.25, description=(
        "a close further than this (relative) from the median of its neighbours, or moved "
        "further than this from the previous day's, is a bad row (the largest real move: 6.9 %)"))
    max_bad_row_share: Share = Field(0.01, description=(
        "a file whose bad rows are at most this share of its rows and at most max_bad_rows "
        "keeps its good rows; more, and the file is left out"))
    max_bad_rows: NonNegative = Field(25, description="see max_bad_row_share")

    @property
    def mostly(self) -> float:
        """The share of rows an expectation must hold for (Great Expectations' ``mostly``)."""
        return 1.0 - self.max_bad_row_share

    def allows(self, bad: int, rows: int) -> bool:
        """Whether a file of ``rows`` rows with ``bad`` bad ones keeps its good rows."""
        return bad <= self.max_bad_rows and bad <= self.max_bad_row_share * rows
