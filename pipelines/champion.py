"""The champion as the daily stages use it: its model (or baseline), and what it reads.

``load_champion`` is shared by ``predict`` and ``drift``. For a network it loads the model
file and its training-rows-only scaler and checks that today's dataset gives the very
features the network was trained on. The merge may leave an index out from one day to the
next (a stale export), and a network cannot read a different set of columns: then the
best baseline on the validation days stands in, with a note that says why, until the next
training run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import MODEL_CARD, MODEL_FILE, SCALER
from pipelines.errors import DataError
from pipelines.features import FeatureTable, TrainOnlyScaler
from pipelines.fileio import file_md5
from pipelines.leaderboard import Leaderboard
from pipelines.models import load_model


@dataclass
class Champion:
    """The model that forecasts: a network (model, scaler) or a baseline (name only)."""

    name: str
    kind: str  # network | baseline
    table: FeatureTable  # the features it reads
    model: Any = None
    scaler: TrainOnlyScaler | None = None
    card: dict[str, Any] | None = None
    version: str = ""
    note: str = ""  # why the board's champion is not the one forecasting, if so


def load_champion(board: Leaderboard, models_dir: Path | str, table: FeatureTable
                  ) -> Champion:
    """The leaderboard's champion, ready to predict on ``table`` (the default feature set).

    A network whose features are not today's is replaced by the best baseline on
    validation (``note`` says so); a missing model card is a ``DataError``; a damaged
    model file a ``StageCrash`` (``models.load_model``).
    """
    name = board.champion
    if not board.is_network(name):
        return Champion(name, "baseline", table, version=f"baseline:{name}")
    folder = Path(models_dir) / name
    card_path = folder / MODEL_CARD
    if not card_path.exists():
        raise DataError(f"{card_path}: the champion {name} has no model card; run tsepipe "
                        "train first")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    scaler = TrainOnlyScaler.load(folder / SCALER)
    trained_on = scaler.names
    view = table.view(card.get("feature_set") or None)
    if view.names != trained_on:
        missing = [f for f in trained_on if f not in view.names]
        new = [f for f in view.names if f not in trained_on]
        stand_in = board.stand_in
        note = (f"today's dataset does not give the features {name} was trained on "
                f"(missing: {', '.join(missing[:6]) or 'none'}"
                f"{' ...' if len(missing) > 6 else ''}; new: {', '.join(new[:6]) or 'none'}"
                f"{' ...' if len(new) > 6 else ''}): the best baseline {stand_in} forecasts "
                "until the next training run (tsepipe train)")
        return Champion(stand_in, "baseline", table, version=f"baseline:{stand_in}",
                        note=note)
    model_file = folder / MODEL_FILE
    return Champion(name, "network", view, load_model(model_file), scaler, card,
                    file_md5(model_file))
