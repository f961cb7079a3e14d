"""Tomorrow's call from the champion: ``forecasts/latest.json``, the log, the track record.

The forecast is for the trading day after the dataset's last day: the next Saturday to
Wednesday that is neither one of Iran's public holidays (the ``holidays`` package) nor in
``calendar.closures`` (``pipelines.core.calendar``). It is made by what was evaluated and
nothing else: the models folder (``pipelines.modelling.forecaster``: a network's seeds, a
baseline's fitted state, a combination's members, the champion's calibration map), so
``dvc artifacts get`` followed by ``tsepipe predict`` gives the same probability. Beside
the published P(up) it states the base rates, what the probability's band has meant, the
members' and the best baseline's P(up), and the call or "no call" with its reasons
(``pipelines.modelling.call``), and whether the data is stale.

Each forecast is appended to the log, and every logged forecast whose next close is now in
the dataset is scored (``pipelines.modelling.track_record``): ``forecasts/record.json``. A
log cut short or foreign is refused before anything is written (one line: restore it with
``dvc checkout``, or move it aside to start a new one), so no logged forecast is dropped.

The stage also writes the champion's probability of up on every day of the dataset
(``champion_days``): the drift stage compares it between the champion's training days and
the latest days, without loading a model itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.calendar import next_trading_day, tehran_today
from pipelines.core.fileio import atomic_path, write_json
from pipelines.core.params.calendar import CalendarSection
from pipelines.core.params.data import DataSection
from pipelines.core.params.evaluate import EvaluateSection
from pipelines.core.params.features import FeaturesSection
from pipelines.core.params.forecast import ForecastSection
from pipelines.core.params.paths import Paths
from pipelines.modelling import call as rule
from pipelines.modelling.features import FeatureTable, dataset_table, labelled_sample_days
from pipelines.modelling.forecaster import Forecaster, best_baseline, load_forecaster
from pipelines.modelling.track_record import read_forecast_log, score_forecasts, summarise

# what the log keeps of each forecast: flat values, the same columns every day
LOGGED = ("as_of", "next_trading_day", "call", "probability_up", "probability_up_raw",
          "model_direction", "no_call_reasons", "calibration", "champion", "champion_kind",
          "data_version", "model_version", "created")


def predict(paths: Paths, data: DataSection, features: FeaturesSection,
            calendar: CalendarSection, settings: ForecastSection, walk: EvaluateSection,
            today: dt.date | None = None) -> tuple[dict[str, Any], Path]:
    """The predict stage: the champion's call for the next trading day, published to
    ``paths.forecast`` and appended to ``paths.forecast_log``; the log scored into
    ``paths.track_record`` (intervals: ``walk``'s bootstrap settings); the champion's
    probability of up on every day, to ``paths.champion_days``; (the forecast, its file).
    ``today``: the date the data's age is measured to (default: today in Tehran)."""
    table, data_version = dataset_table(paths, data, features)
    earlier = read_forecast_log(paths.forecast_log)  # a damaged log: refused, nothing written
    champion, record = load_forecaster(paths.models_dir, table)
    result = forecast(table, features.window, champion, record, data_version, calendar,
                      settings, today or tehran_today(),
                      best_baseline(record, paths.models_dir, table))
    days = champion_days(champion, record, table, features.window)
    with atomic_path(paths.champion_days) as tmp:
        days.to_parquet(tmp, index=False)
    log = publish(result, paths, earlier)
    scored = score_forecasts(log, pd.DatetimeIndex(table.dates), np.asarray(table.close))
    write_json(paths.track_record, summarise(scored, walk.bootstrap_block,
                                             walk.bootstrap_samples, settings.record_recent))
    return result, paths.forecast


def champion_days(champion: Forecaster, record: dict[str, Any], table: FeatureTable,
                  window: int) -> pd.DataFrame:
    """The champion's probability of up on each day of ``table``: columns ``date`` and
    ``probability_up`` (NaN before its first window), and in ``attrs`` the champion
    (``champion``, ``kind``, ``note``) and its training span as days of the table
    (``first_reference``: its first predicted day; ``train_last_day``). The final models
    on every day: in-sample on the days they were trained on, as the drift stage's
    reference is meant to be."""
    n = len(table.dates)
    by_day = np.full(n, np.nan)
    days = np.arange(window - 1, n)
    by_day[days] = champion.probability_up(window, days)[0]
    trained_last = pd.Timestamp(record["trained_on"]["last"]).to_datetime64()
    train_last_day = int(np.searchsorted(table.dates.values, trained_last, side="right")) - 1
    frame = pd.DataFrame({"date": pd.DatetimeIndex(table.dates), "probability_up": by_day})
    frame.attrs = {"champion": champion.name, "kind": champion.kind, "note": champion.note,
                   "first_reference": window - 1, "train_last_day": train_last_day}
    return frame


def _opinion(model: Forecaster, window: int, days: np.ndarray, direction: str
             ) -> dict[str, Any]:
    """A model's P(up) and direction on the last of ``days``, and whether it agrees with the
    champion's ``direction``."""
    proba, classes = model.probability_up(window, days)
    own = "up" if classes[-1] == 1 else "down"
    return {"model": model.name, "kind": model.kind, "probability_up": float(proba[-1]),
            "direction": own, "agrees": own == direction}


def forecast(table: FeatureTable, window: int, champion: Forecaster, record: dict[str, Any],
             data_version: str, calendar: CalendarSection, settings: ForecastSection,
             today: dt.date, best_baseline: Forecaster | None = None) -> dict[str, Any]:
    """The call for the day after the last one, by ``champion`` (``load_forecaster``: the
    record's, or a stand-in with a ``note`` that says why), with its evidence.

    ``table``: the feature table of the default set; ``record``: ``models/champion.json``;
    ``calendar``: the days the exchange is closed; ``settings``: the no-call rule and the
    data's allowed age; ``today``: the date the age is measured to.
    """
    last_day = len(table.labels) - 1
    every = np.arange(window - 1, last_day + 1)  # as champion_days asks: computed once
    raw, classes = (values[-1:] for values in champion.probability_up(window, every))
    direction = "up" if classes[0] == 1 else "down"
    own = champion.name == record["champion"]  # not a stand-in
    calibration = (record.get("calibration") or {}) if own else {}
    published = rule.published_probability(calibration, float(raw[0]))
    labelled = labelled_sample_days(table, window)
    rates = rule.base_rates(table, labelled, record["trained_on"], settings.base_rate_days)
    evidence = rule.skill(record) if own else \
        {"metric": "mcc", "test": None, "interval": None, "days": None, "demonstrated": False}
    call, reasons = rule.decide(published, direction, evidence, rates["training"]["share"],
                                settings)
    if champion.note:  # the note itself (file and model names) is published beside
        reasons.append(f"the champion {record['champion']} cannot forecast today: "
                       f"{champion.name} stands in (see the note)")
        call = rule.NO_CALL
    as_of = table.dates[last_day].date()
    following = next_trading_day(as_of, calendar.closures,
                                 public_holidays=calendar.public_holidays)
    return {
        "as_of": f"{as_of:%Y-%m-%d}",
        "next_trading_day": f"{following:%Y-%m-%d}",
        "call": call,
        "no_call_reasons": reasons,
        "probability_up": published,
        "probability_up_raw": float(raw[0]),
        "calibration": calibration.get("method", "none"),
        "model_direction": direction,
        "band": rule.band_meaning(calibration, published),
        "base_rate": rates,
        "skill": evidence,
        "members": [_opinion(member, window, every, direction)
                    for member in champion.members],
        "best_baseline": (_opinion(best_baseline, window, every, direction)
                          if best_baseline is not None and best_baseline.name != champion.name
                          else None),  # not when it is the champion itself
        "staleness": rule.staleness(as_of, today, calendar, settings.max_data_age),
        "rule": {"require_skill": settings.require_skill, "no_call_band": settings.no_call_band},
        "champion": champion.name,
        "champion_kind": champion.kind,
        "record_champion": record["champion"],
        "note": champion.note,
        "data_version": data_version,
        "model_version": champion.version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def publish(result: dict[str, Any], paths: Paths, earlier: pd.DataFrame) -> pd.DataFrame:
    """Write the latest forecast and append it to the log ``earlier`` (one row per as_of,
    champion and data version; a rerun replaces its row); the log as written."""
    write_json(paths.forecast, result)
    row = pd.DataFrame([{key: _flat(key, result[key]) for key in LOGGED}
                        | {"stale": result["staleness"]["stale"]}])
    if len(earlier):
        log = pd.concat([earlier, row], ignore_index=True)
        log = log.drop_duplicates(subset=["as_of", "champion", "data_version"], keep="last")
    else:
        log = row
    with atomic_path(paths.forecast_log) as tmp:
        log.to_parquet(tmp, index=False)
    return log


def _flat(key: str, value: Any) -> Any:
    return "; ".join(value) if key == "no_call_reasons" else value
