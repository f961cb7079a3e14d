"""The accuracy report and its charts, on a real walk-forward evaluation of the baselines;
the names and times the pages show (TSETMC's index names with the ISIN, Tehran time)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.display import TSETMC_NAMES, index_html, index_label, tehran_time
from pipelines.core.errors import DataError
from pipelines.core.fileio import file_md5
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.load import load_params
from pipelines.core.params.paths import Paths
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, make_labels
from pipelines.modelling.select import leaderboard, write_selection
from pipelines.reporting.accuracy import accuracy_report, calibration_bins
from pipelines.reporting.charts import date_ticks, line_chart, nice_ticks, tick_text
from pipelines.reporting.front_page import build_reports
from tests.support.stages import evaluation_settings

HOSTILE = "<script>alert(1)</script>"
REPO = Path(__file__).resolve().parents[2]


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
    # charts (the backtest's equity, rolling accuracy: the champion and the best baseline,
    # then every model on demand, calibration), the study's numbers
    assert html.count("<svg") == 4 and "0.489 - 0.578" in html
    equity, rolling, rolling_all, calibration = charts_of(html)
    best = board.best_baseline_on_test
    assert series_of(rolling) == list(dict.fromkeys([board.champion, best]))
    assert series_of(rolling_all) == names  # every model, in a <details> below
    assert html.index('<details class="more-lines" id="rolling-all">') < html.index(rolling_all)
    assert_round_ticks(equity, dated=True)
    assert_round_ticks(rolling, dated=True)
    assert ticks_of(calibration, "x") == ticks_of(calibration, "y") == [
        "0", "0.2", "0.4", "0.6", "0.8", "1"]
    # the leaderboard: each interval under its figure; the cost of training in a table apart
    board_html = html[html.index('<table id="leaderboard">'):html.index('id="cost"')]
    champion_row = next(r for r in summary["leaderboard"] if r["champion"])
    assert (f'{champion_row["mcc"]:.3f}<span class="ci">[{champion_row["mcc_ci"][0]:.3f}, '
            f'{champion_row["mcc_ci"][1]:.3f}]</span>') in board_html
    assert "device" not in board_html and "<th>device</th>" in html
    # the header: what the page shows and the way back (its versions: tests/reporting/
    # test_browser.py, on a trained project)
    assert 'id="tsepipe-header"' in html and 'href="../index.html">&larr; front page' in html
    assert "Tehran time (UTC+03:30)" in html
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
    assert_classification_page(tmp_path / "classification.html", board, summary["leaderboard"])
    assert json.loads((tmp_path / "accuracy.json").read_text())["champion"] == board.champion


def charts_of(html: str) -> list[str]:
    """The inline SVG charts of a page, in order."""
    return re.findall(r"<svg.*?</svg>", html, re.DOTALL)


def series_of(svg: str) -> list[str]:
    """The names of the lines a chart draws."""
    return re.findall(r'<polyline class="series" data-name="([^"]*)"', svg)


def ticks_of(svg: str, axis: str) -> list[str]:
    return re.findall(rf'<text class="tick {axis}"[^>]*>([^<]*)</text>', svg)


def assert_round_ticks(svg: str, dated: bool) -> None:
    """Numbers up the side at a round step (1, 2, 2.5 or 5 times a power of ten), several
    dates along the bottom."""
    numbers = [float(t) for t in ticks_of(svg, "y")]
    assert len(numbers) >= 3, numbers
    steps = {round(b - a, 9) for a, b in zip(numbers, numbers[1:], strict=False)}
    assert len(steps) == 1, numbers
    step = steps.pop()
    mantissa = step / 10 ** np.floor(np.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5), numbers
    if dated:
        dates = ticks_of(svg, "x")
        assert len(dates) >= 3 and all(re.fullmatch(r"\d{4}(-\d\d){0,2}", d) for d in dates), dates


def test_axis_ticks_are_round_numbers_and_dates():
    assert nice_ticks(0.42, 3.11) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # was 0.42, 1.59, 2.76
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert [tick_text(t, [0.25, 0.5]) for t in (0.25, 0.5, 1.0)] == ["0.25", "0.5", "1"]
    assert [label for _, label in date_ticks(pd.Timestamp("2016-09-06"),
                                             pd.Timestamp("2019-12-30"))] == [
        "2017-01", "2017-07", "2018-01", "2018-07", "2019-01", "2019-07"]
    assert [label for _, label in date_ticks(pd.Timestamp("2008-12-04"),
                                             pd.Timestamp("2019-12-31"))] == [
        "2010", "2012", "2014", "2016", "2018"]
    assert len(date_ticks(pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-02"))) == 2


def test_indices_are_named_as_tsetmc_names_them_and_times_are_tehrans():
    """The names: TSETMC's list of indices (in the repository) by the insCode that
    params.yaml's fetch.indices gives each ISIN; the three OTC indices are not in it."""
    listed = {str(row["insCode"]): row["lVal30"] for row in json.loads(
        (REPO / "data/examples/tse-index-list/GetIndexB1LastAll_1.json").read_text(
            encoding="utf-8"))["indexB1"]}
    codes = load_params(REPO / "params.yaml").fetch.indices
    assert {isin: listed[str(code)] for isin, code in codes.items()} == {
        isin: name for isin, name in TSETMC_NAMES.items() if isin in codes}
    assert len(TSETMC_NAMES) == 16 and len(codes) == 13
    assert index_label("IRX6XTPI0009", "IRX6XTPI0009") == "شاخص كل (IRX6XTPI0009)"
    assert index_label("IRX6XTPI0009", "Overall Index") == "شاخص كل (IRX6XTPI0009)"
    assert index_label("IRO1FOLD0001", "IRO1FOLD0001") == "IRO1FOLD0001"
    assert index_label("IRO1FOLD0001", "Folad") == "Folad (IRO1FOLD0001)"
    assert str(index_html("IRX6XTPI0009", "Overall Index")) == (
        '<bdi class="index-name" lang="fa">شاخص كل</bdi> (<span class="index-id">'
        'IRX6XTPI0009</span>)')
    assert str(index_html("IRO1FOLD0001", HOSTILE)) == (
        '<bdi class="index-name">&lt;script&gt;alert(1)&lt;/script&gt;</bdi> '
        '(<span class="index-id">IRO1FOLD0001</span>)')
    assert tehran_time("2026-12-07T15:03:08+00:00") == "2026-12-07 18:33 Tehran time (UTC+03:30)"
    assert tehran_time("2026-12-07T15:03:08") == "2026-12-07 18:33 Tehran time (UTC+03:30)"
    assert tehran_time(None) is None and tehran_time("yesterday") == "yesterday"


def assert_classification_page(page: Path, board, rows: list[dict]) -> None:
    """Evidently's classification page: a section per model compared (the networks, the
    champion, the best baseline), each headed by the model's name, the champion first and
    the rest as ranked; each section's figures are its model's; the project's header with
    the champion and the way back to the front page."""
    html = page.read_text(encoding="utf-8")
    compared = {r["model"] for r in rows if r["kind"] == "network"} | {
        board.champion, board.best_baseline_on_test}
    names = [f"{board.champion} (champion)"] + [
        r["model"] for r in rows if r["model"] in compared and r["model"] != board.champion]
    heads = re.findall(r'"counters": \[\{"value": "", "label": "([^"]*)"\}\]', html)
    assert [head for head in heads if ": " not in head] == names  # each section's own head
    assert f"{names[0]}: Confusion Matrix" in heads and f"{names[-1]}: ROC Curve" in heads
    assert "Classification Model Performance" not in html
    for name in names:  # the section's test accuracy (current) is that model's
        model = name.removesuffix(" (champion)")
        shown = re.search(re.escape(f'"title": "{name}, current: Model Quality Metrics"')
                          + r'.*?"counters": \[\{"value": "([0-9.]+)", "label": "Accuracy"',
                          html).group(1)
        assert float(shown) == pytest.approx(board.models[model].test["accuracy"], abs=6e-4)
    header = html[html.index('<header class="tsepipe" id="tsepipe-header">'):]
    header = header[:header.index("</header>")]
    assert ", ".join(names) in header and f'<span class="model">{board.champion}' in header
    home = re.search(r'<a class="home" href="([^"]+)"', header).group(1)
    assert (page.parent / home).resolve() == (page.parent.parent / "index.html").resolve()


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
