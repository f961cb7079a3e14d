"""The leaderboard: every model's walk-forward metrics on the same days, and the champion.

``select`` makes it (``select.leaderboard``) and writes it as
``<evaluation_dir>/leaderboard.json``; ``train`` copies each network's row into its model
card and the champion, its calibration and its record into ``models/champion.json`` (what
``predict`` forecasts with), ``accuracy`` draws the accuracy pages and ``report`` the front
page from it (with the model cards, ``model_cards``), the CLI and the flows' artifacts
print it. They read it through
``Leaderboard.read``, so a damaged or foreign file fails with one line naming it, and the
shape is written down once, here. (``tsepipe history`` reads only the champion and its
test MCC from each past version's file, whatever shape that version wrote.)

The metric mappings (``validation``, ``test``: accuracy, balanced_accuracy, mcc, f1,
roc_auc, brier, log_loss, confusion, n, intervals) are those of
``metrics.classification_metrics``; they stay mappings so that a metric added there needs
no change here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import write_json
from pipelines.core.params.paths import MODEL_CARD

Metrics = dict[str, Any]


class _Shape(BaseModel):
    # extra keys are kept (an older or newer writer), not an error
    model_config = ConfigDict(extra="allow")


class ModelRow(_Shape):
    """One model's (or baseline's) line."""

    model: str
    kind: Literal["network", "baseline", "combination"]
    validation: Metrics  # empty when the split has no validation days
    test: Metrics
    feature_set: str | None = None
    features: list[str] = []
    reads: str = ""  # what it reads, in words
    test_by_seed: dict[str, Any] | None = None  # networks: metric -> mean, std; n_seeds
    config: dict[str, Any] | None = None  # networks: their ModelConfig
    training: dict[str, Any] | None = None  # networks: fits, epochs, seconds
    vs_best_baseline: dict[str, Any] = {}  # McNemar's test against the best baseline
    pesaran_timmermann: dict[str, Any] = {}  # directional accuracy against chance
    members: list[str] = []  # a combination's: the models whose probabilities it averages
    # Brier score and expected calibration error on the test days: raw ("none") and through
    # each map fitted on the validation days ("platt", "isotonic")
    calibration: dict[str, dict[str, float]] = {}


class Days(_Shape):
    validation: int
    test: int
    validation_first: str | None = None
    validation_last: str | None = None
    test_first: str | None = None
    test_last: str | None = None


class Leaderboard(_Shape):
    champion: str
    champion_reason: str
    device: dict[str, Any] | None = None  # where the networks were evaluated
    champion_metric: str
    promotion_margin: float
    best_baseline_on_validation: str
    best_baseline_on_test: str
    notes: list[str] = []
    walk_forward: dict[str, Any] = {}
    days: Days
    models: dict[str, ModelRow]
    backtest: dict[str, Any] | None = None  # the champion's backtest (pipelines.modelling.backtest)
    # the champion's: method, the check that chose it, its map, the published probability's
    # reliability by band on the validation and test days (select.champion_calibration)
    calibration: dict[str, Any] = {}
    baselines_by_validation: list[str] = []  # best first: the stand-ins, in order

    @classmethod
    def read(cls, path: Path | str) -> Leaderboard:
        """The leaderboard in ``path``; a missing or malformed file is a ``DataError``."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{printable(path)}: no leaderboard; run tsepipe select first (or "
                            "dvc repro)")
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as exc:
            raise DataError(f"{printable(path)}: not a leaderboard tsepipe can read "
                            f"({_first_problem(exc)}); run tsepipe select again") from None

    def write(self, path: Path | str) -> Path:
        return write_json(path, self.as_json())

    def as_json(self) -> dict[str, Any]:
        """Plain JSON values; a key left unset (a baseline's ``training``) stays absent."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def champion_row(self) -> ModelRow:
        return self.models[self.champion]

    @property
    def networks(self) -> list[str]:
        return [name for name, row in self.models.items() if row.kind == "network"]

    def is_network(self, name: str) -> bool:
        return self.models[name].kind == "network"

    @property
    def stand_in(self) -> str:
        """The baseline that forecasts when the champion network cannot read today's data."""
        return self.best_baseline_on_validation or self.best_baseline_on_test

    def headline(self) -> dict[str, Any]:
        """What ``dvc metrics show`` and ``dvc exp show`` print (``paths.headline_metrics``),
        six short flat keys so that the table fits a terminal: the champion, its test MCC
        and the bounds of its 95 % moving-block bootstrap interval, the best baseline on the
        test days and its test MCC. Every other score stays in this leaderboard."""
        test = self.models[self.champion].test
        low, high = (list(test.get("mcc_ci") or []) + [None, None])[:2]
        baseline = self.best_baseline_on_test
        return {"champion": self.champion, "test_mcc": test.get("mcc"),
                "mcc_lo": low, "mcc_hi": high, "baseline": baseline,
                "baseline_mcc": self.models[baseline].test.get("mcc")
                if baseline in self.models else None}


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "top level"
        return f"{where}: {error['msg']}"
    return str(exc).splitlines()[0]


def score(value: Any) -> float:
    """A metric (an MCC, say) for ranking rows: a missing or NaN value ranks lowest."""
    return float(value) if value is not None and np.isfinite(value) else float("-inf")


def model_cards(models_dir: Path | str) -> dict[str, dict[str, Any]]:
    """Each trained network's model card (``<models_dir>/<name>/card.json``) by name: what
    ``train`` adds to a network's row (device, parameters, training time)."""
    return {card.parent.name: json.loads(card.read_text(encoding="utf-8"))
            for card in sorted(Path(models_dir).glob(f"*/{MODEL_CARD}"))}
