"""The evaluate and train stages' settings: four sections of params.yaml, as they are.

``EvaluationSettings`` holds the ``features``, ``split``, ``evaluate`` and ``train``
sections that both stages read (the window, the seeds, the walk-forward rule, the champion
rule), so that the final training (``pipelines.modelling.train``) and the walk-forward
evaluation (``pipelines.modelling.evaluate``) read them the same way without one importing
the other. It declares no setting of its own: each lives in its section's schema
(``pipelines.core.params``), with its default and help.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from pipelines.core.params.evaluate import EvaluateSection
from pipelines.core.params.features import FeaturesSection
from pipelines.core.params.split import SplitSection
from pipelines.core.params.train import TrainSection

if TYPE_CHECKING:
    from pipelines.core.params.load import Params


class EvaluationSettings(BaseModel):
    """The sections the modelling stages read; plain values to send to another process
    with ``to_dict`` and back with ``from_dict``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: FeaturesSection = FeaturesSection()
    split: SplitSection = SplitSection()
    evaluate: EvaluateSection = EvaluateSection()
    train: TrainSection = TrainSection()

    @classmethod
    def of(cls, params: Params) -> EvaluationSettings:
        return cls(features=params.features, split=params.split, evaluate=params.evaluate,
                   train=params.train)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EvaluationSettings:
        return cls.model_validate(values)

    def but(self, **sections: dict[str, Any]) -> EvaluationSettings:
        """A copy with some keys changed, checked: ``settings.but(train={"seeds": [1]})``."""
        return self.model_validate(self.to_dict() | {
            name: getattr(self, name).model_dump(mode="json") | changes
            for name, changes in sections.items()})
