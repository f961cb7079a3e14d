"""Tomorrow's forecast from the champion: ``forecasts/latest.json`` and an appended log.

The forecast is for the trading day after the dataset's last day (the next Saturday to
Wednesday; holidays are not known ahead). It names the champion and the data and model
versions it came from.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.baselines import run_baseline
from pipelines.champion import load_champion
from pipelines.config import FORECAST, FORECAST_LOG, TRADING_WEEKDAYS
from pipelines.features import FeatureTable, labelled_sample_days
from pipelines.fileio import atomic_path, write_json
from pipelines.fitting import predict_network
from pipelines.leaderboard import Leaderboard


def next_trading_day(day: dt.date) -> dt.date:
    following = day + dt.timedelta(days=1)
    while following.weekday() not in TRADING_WEEKDAYS:
        following += dt.timedelta(days=1)
    return following


def forecast(table: FeatureTable, window: int, board: Leaderboard, models_dir: Path | str,
             data_version: str) -> dict[str, Any]:
    """Probability that the day after the last one closes higher, by the champion.

    ``table``: the feature table of the default set. If the champion network cannot read
    today's features, the best baseline forecasts and ``note`` says why.
    """
    last_day = len(table.labels) - 1
    champion = load_champion(board, models_dir, table)
    if champion.kind == "network":
        proba = float(predict_network(champion.model, champion.scaler, champion.table, window,
                                      np.array([last_day]))[0])
        up = proba >= 0.5
    else:
        train_days = labelled_sample_days(table, window)
        values, classes = run_baseline(champion.name, table, window, train_days,
                                       np.array([last_day]))
        proba = float(np.asarray(values)[0])
        up = bool(np.asarray(classes)[0])  # a rule's class, not always proba >= 0.5
    as_of = table.dates[last_day].date()
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "next_trading_day": f"{next_trading_day(as_of):%Y-%m-%d}",
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


def publish(result: dict[str, Any], forecasts_dir: Path | str) -> Path:
    """Write latest.json and append to log.parquet (one row per as_of and champion)."""
    folder = Path(forecasts_dir)
    write_json(folder / FORECAST, result)
    log_path = folder / FORECAST_LOG
    row = pd.DataFrame([result])
    if log_path.exists():
        log = pd.concat([pd.read_parquet(log_path), row], ignore_index=True)
        log = log.drop_duplicates(subset=["as_of", "champion", "data_version"], keep="last")
    else:
        log = row
    with atomic_path(log_path) as tmp:
        log.to_parquet(tmp, index=False)
    return folder / FORECAST
