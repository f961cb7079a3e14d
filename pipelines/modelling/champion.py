"""The champion: the rule that chooses it, and the model (or baseline) the daily stages use.

``choose_champion`` is the rule (``tsepipe evaluate`` applies it to the leaderboard's rows):
the best baseline on the pooled validation days sets the bar; a network is promoted only
if its validation score beats that bar by ``evaluate.promotion_margin``, and the highest
promoted network wins; otherwise the best baseline is the champion. The reason it gives
says which case it was, with numbers.

``load_champion`` is shared by ``predict`` and ``drift``. For a network it loads the model
file and its training-rows-only scaler and checks that today's dataset gives the very
features the network was trained on. The merge may leave an index out from one day to the
next (a stale export), and a network cannot read a different set of columns: then the
best baseline on the validation days stands in, with a note that says why, until the next
training run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.errors import DataError
from pipelines.core.fileio import file_md5
from pipelines.core.params.paths import MODEL_CARD, MODEL_FILE, SCALER
from pipelines.modelling.features import FeatureTable, TrainOnlyScaler
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.modelling.models import load_model


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

    A network whose features are not today's, or whose scaler is missing or damaged, is
    replaced by the best baseline on validation (``note`` says so); a missing or damaged
    model card is a ``DataError``; a damaged model file a ``StageCrash``
    (``models.load_model``).
    """
    name = board.champion
    if not board.is_network(name):
        return Champion(name, "baseline", table, version=f"baseline:{name}")
    folder = Path(models_dir) / name
    card_path = folder / MODEL_CARD
    if not card_path.exists():
        raise DataError(f"{card_path}: the champion {name} has no model card; run tsepipe "
                        "train first")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{card_path}: the champion {name}'s model card is damaged "
                        f"({type(exc).__name__}); run tsepipe train, or dvc checkout "
                        f"{folder}") from None
    try:
        scaler = TrainOnlyScaler.load(folder / SCALER)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        stand_in = board.stand_in
        what = "missing" if isinstance(exc, FileNotFoundError) else \
            f"damaged ({type(exc).__name__})"
        note = (f"{folder / SCALER} is {what}, so {name} cannot read today's features: the "
                f"best baseline {stand_in} forecasts until tsepipe train (or dvc checkout "
                f"{folder}) brings it back")
        return Champion(stand_in, "baseline", table, version=f"baseline:{stand_in}",
                        note=note)
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


def score(metrics: dict[str, Any], metric: str) -> float:
    """``metric`` from a row's metrics; missing or NaN ranks last."""
    value = metrics.get(metric)
    return float("-inf") if value is None or math.isnan(value) else float(value)


def choose_champion(rows: dict[str, dict[str, Any]], baselines: list[str], metric: str,
                    margin: float) -> tuple[str, str, list[str]]:
    """(champion, why, notes) by the rule in the module's docstring."""
    bar_name = max(baselines, key=lambda n: score(rows[n]["validation"], metric))
    bar = score(rows[bar_name]["validation"], metric)
    networks = [n for n, row in rows.items() if row["kind"] == "network"]
    notes, promoted = [], []
    for name in networks:
        value = score(rows[name]["validation"], metric)
        if value >= bar + margin:
            promoted.append(name)
        else:
            notes.append(f"{name} not promoted: validation {metric} {value:.3f} does not beat "
                         f"the best baseline {bar_name} ({bar:.3f}) by the margin {margin:g}")
    if promoted:
        champion = max(promoted, key=lambda n: score(rows[n]["validation"], metric))
        value = score(rows[champion]["validation"], metric)
        reason = (f"{champion} beats the best baseline {bar_name} on the walk-forward "
                  f"validation days: {metric} {value:.3f} against {bar:.3f}, more than the "
                  f"margin {margin:g}")
        if len(promoted) > 1:
            reason += f"; the highest of the networks that do ({', '.join(promoted)})"
    elif networks:
        champion = bar_name
        reason = (f"no network beats the best baseline {bar_name} (validation {metric} "
                  f"{bar:.3f}) by the margin {margin:g}: "
                  + ", ".join(f"{n} {score(rows[n]['validation'], metric):.3f}"
                              for n in networks) + f"; {bar_name} is the champion")
    else:
        champion = bar_name
        reason = f"{bar_name}: the best baseline on validation ({metric} {bar:.3f}); no networks"
    return champion, reason, notes
