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

from pipelines.config import TRADING_WEEKDAYS
from pipelines.evaluate import labelled_sample_days, predict_network
from pipelines.features import FeatureTable
from pipelines.fileio import atomic_path, file_md5, write_json


def next_trading_day(day: dt.date) -> dt.date:
    following = day + dt.timedelta(days=1)
    while following.weekday() not in TRADING_WEEKDAYS:
        following += dt.timedelta(days=1)
    return following


def forecast(table: FeatureTable, window: int, champion: str, champion_kind: str,
             models_dir: Path | str, data_version: str) -> dict[str, Any]:
    """Probability that the day after the last one closes higher, by the champion."""
    last_day = len(table.labels) - 1
    if champion_kind == "network":
        from pipelines.models import load_model
        from pipelines.train import load_scaler

        folder = Path(models_dir) / champion
        model = load_model(folder / "model.keras")
        proba = float(predict_network(model, load_scaler(folder), table, window,
                                      np.array([last_day]))[0])
        model_version = file_md5(folder / "model.keras")
        up = proba >= 0.5
    else:
        from pipelines.baselines import run_baseline

        train_days = labelled_sample_days(table, window)
        values, classes = run_baseline(champion, table.close, table.labels, train_days,
                                       np.array([last_day]))
        proba = float(np.asarray(values)[0])
        up = bool(np.asarray(classes)[0])  # a rule's class, not always proba >= 0.5
        model_version = f"baseline:{champion}"
    as_of = table.dates[last_day].date()
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "next_trading_day": f"{next_trading_day(as_of):%Y-%m-%d}",
        "probability_up": round(proba, 4),
        "direction": "up" if up else "down",
        "champion": champion,
        "champion_kind": champion_kind,
        "data_version": data_version,
        "model_version": model_version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def publish(result: dict[str, Any], forecasts_dir: Path | str) -> Path:
    """Write latest.json and append to log.parquet (one row per as_of and champion)."""
    folder = Path(forecasts_dir)
    write_json(folder / "latest.json", result)
    log_path = folder / "log.parquet"
    row = pd.DataFrame([result])
    if log_path.exists():
        log = pd.concat([pd.read_parquet(log_path), row], ignore_index=True)
        log = log.drop_duplicates(subset=["as_of", "champion", "data_version"], keep="last")
    else:
        log = row
    with atomic_path(log_path) as tmp:
        log.to_parquet(tmp, index=False)
    return folder / "latest.json"
