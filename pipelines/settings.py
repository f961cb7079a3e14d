"""The evaluate and train stages' tunables, read once from params.yaml.

``EvaluationSettings`` gathers the ``features``, ``split``, ``evaluate`` and ``train``
keys both stages use (the window, the seeds, the walk-forward rule, the champion rule),
so that the final training (``pipelines.train``) and the walk-forward evaluation
(``pipelines.evaluate``) read them the same way without one importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class EvaluationSettings:
    """The ``features``, ``split``, ``evaluate`` and ``train`` tunables of params.yaml."""

    window: int = 10
    validation_fraction: float = 0.15
    test_fraction: float = 0.3
    refit_every: int = 60
    gap: int = 1
    seeds: tuple[int, ...] = (1, 2, 3)
    champion_metric: str = "mcc"
    promotion_margin: float = 0.02
    baselines: tuple[str, ...] = ("majority", "always_up", "persistence", "logistic",
                                  "logistic_window")
    bootstrap_block: int = 10
    bootstrap_samples: int = 1000
    deterministic: bool = False
    mixed_precision: bool = False
    warm_start: bool = True
    warm_epochs: int = 8
    workers: int = 0
    feature_set: str = ""  # the default set (networks without their own, logistic_window)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EvaluationSettings:
        evaluate, train = params["evaluate"], params["train"]
        return cls(
            window=params["features"]["window"],
            validation_fraction=params["split"]["validation_fraction"],
            test_fraction=params["split"]["test_fraction"],
            refit_every=evaluate["refit_every"],
            gap=evaluate["gap"],
            seeds=tuple(train["seeds"]),
            champion_metric=evaluate["champion_metric"],
            promotion_margin=evaluate["promotion_margin"],
            baselines=tuple(evaluate["baselines"]),
            bootstrap_block=evaluate["bootstrap_block"],
            bootstrap_samples=evaluate["bootstrap_samples"],
            deterministic=train["deterministic"],
            mixed_precision=train["mixed_precision"],
            warm_start=evaluate["warm_start"],
            warm_epochs=evaluate["warm_epochs"],
            workers=evaluate["workers"],
            feature_set=params["features"]["set"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EvaluationSettings:
        """The inverse of ``to_dict`` (lists for tuples); an unknown key is a ValueError."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"evaluation settings: unknown key {unknown[0]!r}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
