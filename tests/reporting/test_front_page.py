"""The accuracy report and its charts, on a real walk-forward evaluation of the baselines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.core.errors import DataError
from pipelines.core.fileio import file_md5
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.paths import Paths
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, make_labels
from pipelines.modelling.select import leaderboard, write_selection
from pipelines.reporting.accuracy import accuracy_report, calibration_bins
from pipelines.reporting.charts import line_chart
from pipelines.reporting.front_page import build_reports
from tests.support.stages import evaluation_settings

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Baselines walked forward over 500 synthetic days; predictions and leaderboard."""
    rng = np.random.default_rng(7)
    n = 500
    returns = rng.normal(0.0005, 0.01, n)
    close = 100 * np.exp(np.cumsum(returns))
    table = FeatureTable(pd.bdate_range("2020-01-04", periods=n),
                         np.column_stack([returns, rng.normal(size=n)]), make_labels(close),
                         close, ["T__logret", "T__range"])
    settings = evaluation_settings(window=5, refit_every=50, seeds=(1,), bootstrap_samples=100)
    evaluation = evaluate_models(table, settings, {})
    board = leaderboard(evaluation, "auto")
    out = tmp_path_factory.mktemp("evaluation")
    write_selection(evaluation, board, out, out / "metrics.json", BacktestSection())
    return out, board


def test_accuracy_report_pages_and_numbers(evaluated, tmp_path):
    out, board = evaluated
    summary = accuracy_report(out / "predictions.parquet", board, {}, tmp_path, rolling_window=20,
                              equity_path=out / "plots" / "equity.csv")
    assert summary["champion"] == board.champion
    assert summary["test_days"] == board.days.test
    names = [row["model"] for row in summary["leaderboard"]]
    assert set(names) == set(board.models) and names[0] == board.champion
    assert summary["confusion"] == {n: board.models[n].test["confusion"] for n in names}
    for name, cells in summary["confusion"].items():
        assert sum(cells.values()) == board.days.test, name
        test = board.models[name].test
        assert (cells["tp"] + cells["tn"]) / board.days.test == pytest.approx(
            test["accuracy"])
    assert "logistic" in summary["calibration"]  # a probability model is calibrated
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    for name in names:
        assert name in html
    # charts (rolling accuracy, calibration, the backtest's equity), the study's numbers
    assert html.count("<svg") == 3 and "0.489 - 0.578" in html
    backtest = board.backtest
    assert summary["backtest"] == backtest
    assert 'id="backtest"' in html and "an index that cannot itself be bought" in html
    assert set(backtest["strategies"]) == {board.champion, "persistence", "buy_and_hold"}
    hold = backtest["strategies"]["buy_and_hold"]
    assert f"{hold['cumulative_return'] * 100:.1f} %" in html
    assert hold["trades"] == 1 and hold["days_in_market"] == board.days.test
    assert json.loads((out / "backtest.json").read_text()) == backtest
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert (tmp_path / "classification.html").stat().st_size > 100_000
    assert json.loads((tmp_path / "accuracy.json").read_text())["champion"] == board.champion


def test_the_front_page_refuses_accuracy_drawn_from_another_leaderboard(evaluated, tmp_path):
    out, board = evaluated
    leaderboard = tmp_path / "leaderboard.json"
    leaderboard.write_bytes((out / "leaderboard.json").read_bytes())
    summary = accuracy_report(out / "predictions.parquet", board, {}, tmp_path / "accuracy",
                              rolling_window=20, leaderboard_md5=file_md5(leaderboard))
    assert summary["leaderboard_md5"] == file_md5(out / "leaderboard.json")
    # evaluated again: the same champion, days and models, other numbers
    changed = json.loads(leaderboard.read_text())
    changed["models"][board.champion]["test"]["mcc"] = 0.5
    leaderboard.write_text(json.dumps(changed))
    where = Paths(evaluation_dir=tmp_path, accuracy_dir=tmp_path / "accuracy")
    with pytest.raises(DataError, match="accuracy.json: drawn from another leaderboard .* run "
                                        "tsepipe accuracy"):
        build_reports(where)


def test_calibration_bins_count_every_day():
    label = np.array([0, 1, 1, 0, 1, 1])
    proba = np.array([0.05, 0.95, 1.0, 0.45, 0.55, 0.58])
    bins = calibration_bins(label, proba, bins=10)
    assert sum(b["n"] for b in bins) == 6
    assert bins[9]["n"] == 2 and bins[9]["observed"] == 1.0  # 1.0 falls in the last bin
    assert bins[5]["n"] == 2 and bins[5]["mean_predicted"] == pytest.approx(0.565)
    assert bins[1]["n"] == 0 and bins[1]["observed"] is None


def test_chart_labels_are_escaped():
    dates = pd.bdate_range("2021-01-01", periods=10)
    svg = str(line_chart({HOSTILE: pd.Series(np.linspace(0.4, 0.6, 10), index=dates)}))
    assert HOSTILE not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert svg.startswith("<svg") and "2021-01-01" in svg


def test_report_and_drift_without_their_inputs_say_what_is_missing(project):
    from tests.conftest import run

    done = run(["tsepipe", "report"], project, check=False)
    assert done.returncode == 3, done.stderr
    assert "error: data/interim/validation.json: missing; run the stages" in done.stderr
    assert "error: reports/drift/drift.json: missing" in done.stderr
    assert "error: reports/accuracy/accuracy.json: missing" in done.stderr
    assert "Traceback" not in done.stderr
    done = run(["tsepipe", "accuracy"], project, check=False)
    assert done.returncode == 3, done.stderr
    assert "error: reports/evaluation/leaderboard.json: missing; run tsepipe select" in (
        done.stderr)
    done = run(["tsepipe", "drift"], project, check=False)
    assert done.returncode == 3 and "no merged dataset" in done.stderr
