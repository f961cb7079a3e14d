"""``features:``: what the networks (and logistic_window) read, per index and day.

The feature names are declared here (``FEATURE_NAMES``); ``pipelines.modelling.features``
computes each, and a test checks that the two lists agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import Field, model_validator

from pipelines.core.params.base import Positive, Section

# per index: log return, (high - low) / close, (close - low) / (high - low), change of
# log(1 + volume)
FEATURE_NAMES = ("logret", "range", "close_place", "logvol_change")
LEVELS = "levels"  # the pseudo-feature of the study's set: every raw column, as it is
# the sets params.yaml names by default (it may define others)
DEFAULT_SETS: dict[str, list[str]] = {
    "returns": ["logret"],
    "stationary": ["logret", "logvol_change", "range"],
    "price_action": ["logret", "range", "close_place", "logvol_change"],
    LEVELS: [LEVELS],
}


def check_feature_sets(sets: Mapping[str, Sequence[str]]) -> None:
    """A ValueError naming the first unknown feature of a set."""
    known = (*FEATURE_NAMES, LEVELS)
    for name, features in sets.items():
        for feature in features:
            if feature not in known:
                raise ValueError(f"{name}: unknown feature {feature!r} (expected some of "
                                 f"{', '.join(known)})")
        if LEVELS in features and len(features) > 1:
            raise ValueError(f"{name}: {LEVELS} stands alone (the raw columns)")


class FeaturesSection(Section):
    set: str = Field("price_action", description=(
        "the feature set the networks read (unless a model names its own, "
        "train.models.NAME.features) and logistic_window too"))
    window: Positive = Field(10, description="trading days per sample (the study used 4 and 10)")
    sets: Annotated[dict[str, Annotated[list[str], Field(min_length=1)]],
                    Field(min_length=1)] = Field(
        default_factory=lambda: {name: list(chosen) for name, chosen in DEFAULT_SETS.items()},
        description=("named sets of per-index features: logret, range, close_place, "
                     "logvol_change; levels: the raw columns, as the study (not stationary)"))

    @model_validator(mode="after")
    def _known(self) -> FeaturesSection:
        check_feature_sets(self.sets)
        if self.set not in self.sets:
            raise ValueError(f"set: {self.set!r} is not one of features.sets "
                             f"({', '.join(self.sets)})")
        return self
