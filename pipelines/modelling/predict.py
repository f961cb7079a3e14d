"""Tomorrow's forecast from the champion: ``forecasts/latest.json`` and an appended log.

The forecast is for the trading day after the dataset's last day: the next Saturday to
Wednesday that is neither one of Iran's public holidays (the ``holidays`` package) nor in
``calendar.closures`` (``pipelines.core.calendar``). It names the champion and the data and
model versions it came from.
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
from pipelines.core.params.features import FeaturesSection
from pipelines.core.params.paths import Paths
from pipelines.modelling.baselines import run_baseline
from pipelines.modelling.champion import Champion, load_champion
from pipelines.modelling.features import FeatureTable, dataset_table, labelled_sample_days
from pipelines.modelling.fitting import predict_network
from pipelines.modelling.leaderboard import Leaderboard


def predict(paths: Paths, data: DataSection, features: FeaturesSection,
            calendar: CalendarSection) -> tuple[dict[str, Any], Path]:
    """The predict stage: the champion's forecast for the next trading day, published to
    ``paths.forecast`` and appended to ``paths.forecast_log``; (the forecast, its file)."""
    table, data_version = dataset_table(paths, data, features)
    board = Leaderboard.read(paths.leaderboard)
    result = forecast(table, features.window, board, paths.models_dir, data_version, calendar)
    return result, publish(result, paths)


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


def forecast(table: FeatureTable, window: int, board: Leaderboard, models_dir: Path | str,
             data_version: str, calendar: CalendarSection) -> dict[str, Any]:
    """Probability that the day after the last one closes higher, by the champion.

    ``table``: the feature table of the default set. If the champion network cannot read
    today's features, the best baseline forecasts and ``note`` says why. ``calendar``: the
    days the exchange is closed, for the forecast's date.
    """
    last_day = len(table.labels) - 1
    champion = load_champion(board, models_dir, table)
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
