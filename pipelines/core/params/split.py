"""``split:``: chronological train | validation | test."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pipelines.core.params.base import Section

MIN_TRAINING_SHARE = 0.1  # the oldest tenth of the labelled days at least trains the models


class SplitSection(Section):
    validation_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(0.3, description=(
        "the share of labelled days before the test span, walked forward as the test is, "
        "whose pooled predictions pick the champion: every block from the first 40 % of "
        "the history on (0.15, the former default, rested the choice on half the days)"))
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.3, description=(
        "the last share of labelled days, walked forward"))

    @model_validator(mode="after")
    def _leaves_training_days(self) -> SplitSection:
        together = self.validation_fraction + self.test_fraction
        if together > 1 - MIN_TRAINING_SHARE:
            raise ValueError(
                f"test_fraction: with validation_fraction {self.validation_fraction:g} it "
                f"leaves {1 - together:.0%} of the labelled days for training; the two "
                f"together may take at most {1 - MIN_TRAINING_SHARE:.0%}")
        return self
