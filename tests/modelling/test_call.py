"""The daily call: a call only with evidence, never against its own probability, stale data
said, from the champion the models folder holds (no refit at predict time)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.params.calendar import CalendarSection
from pipelines.core.params.forecast import ForecastSection
from pipelines.modelling import call as rule
from pipelines.modelling.baselines import fit_baseline
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, labelled_sample_days, make_labels
from pipelines.modelling.forecaster import best_baseline, load_forecaster
from pipelines.modelling.predict import forecast
from pipelines.modelling.select import leaderboard
from pipelines.modelling.train import champion_record
from tests.support.stages import evaluation_settings

WINDOW = 5
SKILL = {"metric": "mcc", "test": 0.3, "interval": [0.2, 0.4], "days": 300, "demonstrated": True}
NONE = {"metric": "mcc", "test": 0.1, "interval": [-0.07, 0.25], "days": 122,
        "demonstrated": False}


def test_the_rule_calls_only_with_evidence_and_never_against_its_probability():
    settings = ForecastSection()  # require_skill, a band of 0.05
    assert rule.decide(0.80, "up", SKILL, 0.60, settings) == ("up", [])
    assert rule.decide(0.30, "down", SKILL, 0.60, settings) == ("down", [])
    call, reasons = rule.decide(0.9875, "up", NONE, 0.71, settings)  # the demo
    assert call == rule.NO_CALL
    assert reasons == ["no demonstrated skill: the champion's test MCC interval [-0.070, "
                       "0.250] on 122 walk-forward days holds 0"]
    call, reasons = rule.decide(0.5044, "down", SKILL, 0.55, settings)  # persistence's case
    assert call == rule.NO_CALL
    assert reasons[0] == "the scored direction (down) and the published P(up) 0.504 disagree"
    assert any("a coin flip" in reason for reason in reasons)
    call, reasons = rule.decide(0.6422, "up", SKILL, 0.66, settings)  # the base rate's odds
    assert call == rule.NO_CALL and reasons == [
        "P(up) 0.642 is within 0.05 of the base rate 0.660 (the training span's share of up "
        "days): no more than the usual odds"]
    loose = ForecastSection(require_skill=False, no_call_band=0.0)
    assert rule.decide(0.6422, "up", NONE, 0.66, loose) == ("up", [])


@pytest.mark.parametrize("today, days, stale", [
    ("2019-12-31", 0, False),  # the data's own day
    ("2020-01-01", 1, False),  # the forecast's day: not yet past
    ("2020-01-03", 1, False),  # a Friday after it: no trading day missed since
    ("2020-01-04", 2, True),   # Saturday: Wednesday's forecast is for a past day
    ("2026-12-07", None, True),
])
def test_stale_data_is_said_in_trading_days(today, days, stale):
    found = rule.staleness(dt.date(2019, 12, 31), dt.date.fromisoformat(today),
                           CalendarSection(), max_age=1)
    assert found["stale"] is stale and found["today"] == today
    if days is not None:
        assert found["trading_days"] == days
    assert ("the forecast for 2020-01-01 is for a past day" in found["message"]) is stale


def table_with(signal: float, n: int = 700, seed: int = 11) -> FeatureTable:
    """A day's first feature tells the next day's move with strength ``signal`` (0: none)."""
    rng = np.random.default_rng(seed)
    hint = rng.normal(size=n)
    returns = np.concatenate([[0.0], signal * 0.01 * hint[:-1] + 0.004 * rng.normal(size=n - 1)
                              + 0.0004])
    hint[-1] = 2.5  # the last day's hint is strong: up, if the hint means anything
    close = 1000 * np.exp(np.cumsum(returns))
    features = np.column_stack([hint, rng.normal(size=n)])
    return FeatureTable(pd.bdate_range("2017-01-01", periods=n), features, make_labels(close),
                        close, ["T__hint", "T__noise"])


def published(table: FeatureTable, folder: Path) -> dict:
    """The baselines walked forward, the champion chosen, the models folder written as tsepipe
    train writes it for baselines, and the forecast made from that folder."""
    settings = evaluation_settings(window=WINDOW, refit_every=100, bootstrap_samples=200,
                                   combinations={})
    board = leaderboard(evaluate_models(table, settings, {}), "auto")
    days = labelled_sample_days(table, WINDOW)
    for name in board.models:
        (folder / name).mkdir(parents=True)
        (folder / name / "baseline.json").write_text(
            json.dumps(fit_baseline(name, table, WINDOW, days)))
    (folder / "champion.json").write_text(json.dumps(champion_record(board, table, days, "v")))
    champion, record = load_forecaster(folder, table)
    return forecast(table, WINDOW, champion, record, "v", CalendarSection(), ForecastSection(),
                    dt.date(2019, 9, 7), best_baseline(record, folder, table))


def test_a_clear_edge_gets_a_call(tmp_path):
    result = published(table_with(signal=1.0), tmp_path / "models")
    assert result["champion"] == "logistic_window"
    assert result["skill"]["demonstrated"] and result["skill"]["interval"][0] > 0.3
    assert result["call"] == "up" and result["no_call_reasons"] == []
    assert result["probability_up"] > 0.9
    band = result["band"]
    assert band["n"] == band["validation"]["n"] + band["test"]["n"] > 20
    assert band["low"] <= result["probability_up"] <= band["high"]
    assert band["share"] > 0.8  # the band has meant up, out of sample
    assert result["best_baseline"] is None  # the best baseline is the champion: not twice
    assert not result["staleness"]["stale"]


def test_no_edge_gets_no_call_with_the_reason(tmp_path):
    result = published(table_with(signal=0.0), tmp_path / "models")
    assert result["call"] == rule.NO_CALL
    assert result["no_call_reasons"][0].startswith("no demonstrated skill: the champion's "
                                                   "test MCC interval [")
    low, high = result["skill"]["interval"]
    assert low <= 0 <= high and not result["skill"]["demonstrated"]
    share = result["base_rate"]["training"]["share"]
    labelled = labelled_sample_days(table_with(signal=0.0), WINDOW)
    assert share == pytest.approx(np.mean(table_with(signal=0.0).labels[labelled]))
