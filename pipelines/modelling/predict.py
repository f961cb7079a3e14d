"""Tomorrow's forecast from the champion: ``forecasts/latest.json`` and an appended log.

The forecast is for the trading day after the dataset's last day: the next Saturday to
Wednesday that is neither one of Iran's public holidays (the ``holidays`` package) nor in
``calendar.closures`` (``pipelines.core.calendar``). It names the champion and the data and
model versions it came from.

The stage also writes the champion's probability of up on every day of the dataset
(``champion_days``, see ``champion_days``): the drift stage compares it between the
champion's training days and the latest days, without loading a model itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.calendar import next_trading_day
from pipelines.core.fileio import atomic_path, write_json
from pipelines.core.params.calendar import CalendarSection
from pipelines.core.params.data import DataSection
from pipelines.core.params.evaluate import EvaluateSection
from pipelines.core.params.features import FeaturesSection
from pipelines.core.params.paths import Paths
from pipelines.modelling.baselines import baseline_walk_forward, run_baseline
from pipelines.modelling.champion import Champion, load_champion
from pipelines.modelling.features import FeatureTable, dataset_table, labelled_sample_days
from pipelines.modelling.fitting import predict_network
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.modelling.walkforward import walk_forward_blocks


def predict(paths: Paths, data: DataSection, features: FeaturesSection,
            calendar: CalendarSection, walk: EvaluateSection) -> tuple[dict[str, Any], Path]:
    """The predict stage: the champion's forecast for the next trading day, published to
    ``paths.forecast`` and appended to ``paths.forecast_log``, and its probability of up
    on every day, to ``paths.champion_days``; (the forecast, its file)."""
    table, data_version = dataset_table(paths, data, features)
    board = Leaderboard.read(paths.leaderboard)
    champion = load_champion(board, paths.models_dir, table)
    result = forecast(table, features.window, board, champion, data_version, calendar)
    days = champion_days(champion, table, features.window, walk)
    with atomic_path(paths.champion_days) as tmp:
        days.to_parquet(tmp, index=False)
    return result, publish(result, paths)


def champion_days(champion: Champion, table: FeatureTable, window: int,
                  walk: EvaluateSection) -> pd.DataFrame:
    """The champion's probability of up on each day of ``table``: columns ``date`` and
    ``probability_up`` (NaN where it has none), and in ``attrs`` the champion (``champion``,
    ``kind``, ``note``) and its training span as days of the table
    (``first_reference``: its first predicted day; ``train_last_day``).

    A network: the final model's, in-sample, from its first window; a baseline: walked
    forward as ``evaluate`` walks it (refitted every ``walk.refit_every`` days, ``walk.gap``
    days apart, so never on its own training days); a combination: the mean of its
    members', where they all have one.
    """
    by_day, first_reference, train_last_day = _probabilities(champion, table, window, walk)
    frame = pd.DataFrame({"date": pd.DatetimeIndex(table.dates), "probability_up": by_day})
    frame.attrs = {"champion": champion.name, "kind": champion.kind, "note": champion.note,
                   "first_reference": int(first_reference),
                   "train_last_day": int(train_last_day)}
    return frame


def _probabilities(champion: Champion, table: FeatureTable, window: int,
                   walk: EvaluateSection) -> tuple[np.ndarray, int, int]:
    """(P(up) by day, NaN where none; the first predicted day; the last training day)."""
    n = len(table.dates)
    labelled = labelled_sample_days(table, window)
    by_day = np.full(n, np.nan)
    if champion.kind == "combination":
        parts = [_probabilities(member, table, window, walk) for member in champion.members]
        return (np.mean([part[0] for part in parts], axis=0), max(p[1] for p in parts),
                min(p[2] for p in parts))
    if champion.kind == "network":
        trained_last = pd.Timestamp(champion.card["trained_on"]["last"])
        train_last_day = int(np.searchsorted(table.dates.values, trained_last.to_datetime64(),
                                             side="right")) - 1
        first_reference = window - 1
        days = np.arange(first_reference, n)
        by_day[days] = predict_network(champion.model, champion.scaler, champion.table,
                                       window, days)
        return by_day, first_reference, train_last_day
    first_reference = int(labelled[min(walk.refit_every, len(labelled) - 1)])
    days = np.arange(first_reference, n)
    proba, _ = baseline_walk_forward(champion.name, table, walk_forward_blocks(
        labelled, days, walk.refit_every, gap=walk.gap), window)
    by_day[days] = np.asarray(proba, dtype="float64")
    return by_day, first_reference, int(labelled[-1])


def probability_up(champion: Champion, table: FeatureTable, window: int, day: int
                   ) -> tuple[float, bool]:
    """(P(up) for the day after ``day``, whether up is forecast) by ``champion``: a
    network's output, a baseline refitted on every labelled day (its rule's class, not
    always P >= 0.5), or a combination's mean of its members' P (up when >= 0.5)."""
    if champion.kind == "combination":
        proba = float(np.mean([probability_up(member, table, window, day)[0]
                               for member in champion.members]))
        return proba, proba >= 0.5
    if champion.kind == "network":
        proba = float(predict_network(champion.model, champion.scaler, champion.table, window,
                                      np.array([day]))[0])
        return proba, proba >= 0.5
    values, classes = run_baseline(champion.name, table, window,
                                   labelled_sample_days(table, window), np.array([day]))
    return float(np.asarray(values)[0]), bool(np.asarray(classes)[0])


def forecast(table: FeatureTable, window: int, board: Leaderboard, champion: Champion,
             data_version: str, calendar: CalendarSection) -> dict[str, Any]:
    """Probability that the day after the last one closes higher, by ``champion``
    (``load_champion``: the board's, or the best baseline when the champion network cannot
    read today's features, with a ``note`` that says why).

    ``table``: the feature table of the default set. ``calendar``: the days the exchange
    is closed, for the forecast's date.
    """
    last_day = len(table.labels) - 1
    proba, up = probability_up(champion, table, window, last_day)
    as_of = table.dates[last_day].date()
    following = next_trading_day(as_of, calendar.closures,
                                 public_holidays=calendar.public_holidays)
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "next_trading_day": f"{following:%Y-%m-%d}",
        "probability_up": round(proba, 4),
        "direction": "up" if up else "down",
        "champion": champion.name,
        "champion_kind": champion.kind,
        "leaderboard_champion": board.champion,
        "note": champion.note,
        "data_version": data_version,
        "model_version": champion.version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def publish(result: dict[str, Any], paths: Paths) -> Path:
    """Write the latest forecast and append it to the log (one row per as_of and champion)."""
    write_json(paths.forecast, result)
    log_path = paths.forecast_log
    row = pd.DataFrame([result])
    if log_path.exists():
        log = pd.concat([pd.read_parquet(log_path), row], ignore_index=True)
        log = log.drop_duplicates(subset=["as_of", "champion", "data_version"], keep="last")
    else:
        log = row
    with atomic_path(log_path) as tmp:
        log.to_parquet(tmp, index=False)
    return paths.forecast
