"""The champion: the rule that chooses it, and the model (or baseline) the daily stages use.

``choose_champion`` is the rule (``tsepipe evaluate`` applies it to the leaderboard's rows).
Every candidate, baseline, network or combination (``evaluate.combinations``: the mean of
its members' forecasts), is scored on the pooled walk-forward validation days; those
within ``evaluate.promotion_margin`` of the best score are tied, since a validation span
of a few hundred days cannot tell them apart; a tie goes to a combination, else to the
best baseline, else to the best network. So a network must beat every baseline and
combination by the margin, and a combination need only be level with the best. The
reason it gives says which case it was, with numbers.

For a combination, ``load_champion`` loads each member (its networks as below) and the
forecast is the mean of their probabilities.

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
from dataclasses import dataclass, field
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
    """The model that forecasts: a network (model, scaler), a baseline (name only) or a
    combination (its members, each one of those)."""

    name: str
    kind: str  # network | baseline | combination
    table: FeatureTable  # the features it reads
    model: Any = None
    scaler: TrainOnlyScaler | None = None
    card: dict[str, Any] | None = None
    version: str = ""
    note: str = ""  # why the board's champion is not the one forecasting, if so
    members: list[Champion] = field(default_factory=list)


def load_champion(board: Leaderboard, models_dir: Path | str, table: FeatureTable
                  ) -> Champion:
    """The leaderboard's champion, ready to predict on ``table`` (the default feature set).

    A network whose features are not today's, or whose scaler is missing or damaged, is
    replaced by the best baseline on validation (``note`` says so); in a combination it is
    left out and the other members forecast. A missing or damaged model card is a
    ``DataError``; a damaged model file a ``StageCrash`` (``models.load_model``).
    """
    name = board.champion
    row = board.models[name]
    if row.kind == "combination":
        return _combination(board, name, row.members, models_dir, table)
    if row.kind != "network":
        return Champion(name, "baseline", table, version=f"baseline:{name}")
    loaded = _network(name, models_dir, table)
    if isinstance(loaded, Champion):
        return loaded
    cause, remedy = loaded
    stand_in = board.stand_in
    return Champion(stand_in, "baseline", table, version=f"baseline:{stand_in}",
                    note=f"{cause}: the best baseline {stand_in} forecasts {remedy}")


def _combination(board: Leaderboard, name: str, members: list[str], models_dir: Path | str,
                 table: FeatureTable) -> Champion:
    loaded, notes = [], []
    for member in members:
        if not board.is_network(member):
            loaded.append(Champion(member, "baseline", table, version=f"baseline:{member}"))
            continue
        network = _network(member, models_dir, table)
        if isinstance(network, Champion):
            loaded.append(network)
        else:
            notes.append(network)
    note = "; ".join(f"{cause}: {name} averages the other members {remedy}"
                     for cause, remedy in notes)
    version = "+".join(member.version[:12] for member in loaded)
    return Champion(name, "combination", table, version=f"combination:{version}", note=note,
                    members=loaded)


def _network(name: str, models_dir: Path | str, table: FeatureTable
             ) -> Champion | tuple[str, str]:
    """The network ``name`` ready to predict, or (why it cannot read today's data, until
    when): a missing or damaged scaler, or features that are not today's."""
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
        what = "missing" if isinstance(exc, FileNotFoundError) else \
            f"damaged ({type(exc).__name__})"
        return (f"{folder / SCALER} is {what}, so {name} cannot read today's features",
                f"until tsepipe train (or dvc checkout {folder}) brings it back")
    trained_on = scaler.names
    view = table.view(card.get("feature_set") or None)
    if view.names != trained_on:
        missing = [f for f in trained_on if f not in view.names]
        new = [f for f in view.names if f not in trained_on]
        return (f"today's dataset does not give the features {name} was trained on "
                f"(missing: {', '.join(missing[:6]) or 'none'}"
                f"{' ...' if len(missing) > 6 else ''}; new: {', '.join(new[:6]) or 'none'}"
                f"{' ...' if len(new) > 6 else ''})",
                "until the next training run (tsepipe train)")
    model_file = folder / MODEL_FILE
    return Champion(name, "network", view, load_model(model_file), scaler, card,
                    file_md5(model_file))


def score(metrics: dict[str, Any], metric: str) -> float:
    """``metric`` from a row's metrics; missing or NaN ranks last."""
    value = metrics.get(metric)
    return float("-inf") if value is None or math.isnan(value) else float(value)


# A tie (candidates within the margin of the best validation score) goes to the first kind
# here: a combination (an average of good forecasts is hard to beat: the "forecast
# combination puzzle"), then a baseline (the simpler model), then a network.
PREFERENCE = ("combination", "baseline", "network")


def choose_champion(rows: dict[str, dict[str, Any]], baselines: list[str], metric: str,
                    margin: float) -> tuple[str, str, list[str]]:
    """(champion, why, notes) by the rule in the module's docstring."""
    scores = {name: score(row["validation"], metric) for name, row in rows.items()}
    best = max(scores, key=lambda n: scores[n])
    tied = [name for name in rows if scores[name] >= scores[best] - margin]
    champion = min(tied, key=lambda n: (PREFERENCE.index(rows[n]["kind"]), -scores[n]))
    bar_name = max(baselines, key=lambda n: scores[n])
    bar = scores[bar_name]
    networks = [n for n, row in rows.items() if row["kind"] == "network"]
    notes = [f"{name} not promoted: validation {metric} {scores[name]:.3f} does not beat "
             f"the best baseline {bar_name} ({bar:.3f}) by the margin {margin:g}"
             for name in networks if scores[name] < bar + margin]
    kind = rows[champion]["kind"]
    if kind == "combination":
        mean = f"{champion} (the mean of {', '.join(rows[champion].get('members', []))})"
        others = [f"{n} {scores[n]:.3f}" for n in tied if n != champion]
        if champion == best:
            reason = (f"{mean}: the best validation {metric}, {scores[champion]:.3f}"
                      + (f"; within the margin {margin:g} of it: {', '.join(others)} (a tie "
                         "goes to the combination)" if others else ""))
        else:
            reason = (f"{mean}: validation {metric} {scores[champion]:.3f}, within the margin "
                      f"{margin:g} of the best ({best} {scores[best]:.3f}); a tie goes to "
                      "the combination")
    elif kind == "network":
        reason = (f"{champion} beats the best baseline {bar_name} on the walk-forward "
                  f"validation days: {metric} {scores[champion]:.3f} against {bar:.3f}, more "
                  f"than the margin {margin:g}")
        promoted = [n for n in networks if scores[n] >= bar + margin]
        if len(promoted) > 1:
            reason += f"; the highest of the networks that do ({', '.join(promoted)})"
    elif networks:
        reason = (f"no network beats the best baseline {bar_name} (validation {metric} "
                  f"{bar:.3f}) by the margin {margin:g}: "
                  + ", ".join(f"{n} {scores[n]:.3f}" for n in networks)
                  + f"; {bar_name} is the champion")
    else:
        reason = f"{bar_name}: the best baseline on validation ({metric} {bar:.3f}); no networks"
    return champion, reason, notes
