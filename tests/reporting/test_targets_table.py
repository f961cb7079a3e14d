"""Tomorrow, index by index (issue 34, item 5): each target's call and evidence, headline
first, then by evidence, on the front page (its first section, fitting a desktop, scrolling
in its own box on a phone) and in the Prefect forecast artifact, as the same table."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markdown_it import MarkdownIt

from flows.artifacts import index_table, index_table_rows
from pipelines.core.display import TSETMC_NAMES
from pipelines.core.fileio import file_md5
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.paths import Paths
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, make_labels
from pipelines.modelling.select import leaderboard, write_selection
from pipelines.reporting.accuracy import accuracy_report
from pipelines.reporting.front_page import build_reports
from pipelines.reporting.targets_table import (
    NO_FORECAST,
    read_tomorrow,
    short_reason,
    target_rows,
)
from tests.conftest import chromium_or_skip
from tests.support import browser
from tests.support.stages import evaluation_settings

HEADLINE, THIRTY, METALS, OTHER, LEFT_OUT = (
    "IRX6XTPI0009", "IRX6XS300003", "IRX6X27T0007", "IRX6XTEST0001", "IRX6XSNT0009")
HOSTILE = 'Fish & "Chips" <script>alert(1)</script>'  # the name OTHER's export gives
EXPECTED_ORDER = [HEADLINE, METALS, OTHER, THIRTY]  # p adjusted 0.016, 0.004, 0.5 (MCC .1, .05)

FORECAST = {  # as pipelines.modelling.predict writes it (the TEDPIX demo's, trimmed)
    "as_of": "2019-12-31", "next_trading_day": "2020-01-01", "call": "up",
    "no_call_reasons": [], "probability_up": 0.6434, "probability_up_raw": 0.6240,
    "calibration": "platt", "model_direction": "up",
    "band": {"low": 0.6, "high": 0.7, "n": 305, "up": 218, "share": 0.7148,
             "interval": [0.6617, 0.7625], "validation": {"n": 147, "up": 93},
             "test": {"n": 158, "up": 125}},
    "base_rate": {"training": {"share": 0.5925, "days": 2665, "first": "2008-12-20",
                               "last": "2019-12-30"},
                  "recent": {"share": 0.75, "days": 60, "first": "2019-10-02",
                             "last": "2019-12-30"}},
    "skill": {"metric": "mcc", "test": 0.267, "interval": [0.195, 0.338], "days": 800,
              "demonstrated": True},
    "members": [], "best_baseline": None,
    "staleness": {"today": "2026-12-07", "trading_days": 1674, "max_age": 1, "stale": False,
                  "message": ""},
    "rule": {"require_skill": True, "no_call_band": 0.05},
    "champion": "mean_forecast", "champion_kind": "combination",
    "record_champion": "mean_forecast", "note": "",
    "data_version": "bc99fa85f39f5438df33375dfff40034",
    "model_version": "combination:71fb5662c8b8+4b7fc6ee88cc+baseline:log",
    "created": "2026-12-07T06:40:51+00:00",
}
NO_SKILL = ("no demonstrated skill: the champion's test MCC interval [-0.050, 0.150] on 122 "
            "walk-forward days holds 0")
COIN_FLIP = "P(up) 0.520 is within 0.05 of 0.5: a coin flip"


def target(name: str, champion: str, mcc: float, p: float, p_adjusted: float) -> dict:
    return {"target": name, "champion": champion, "champion_kind": "network",
            "test_days": 122, "test_mcc": mcc, "mcc_lo": mcc - 0.08, "mcc_hi": mcc + 0.07,
            "pt_p": p, "pt_p_adjusted": p_adjusted, "best_baseline": "persistence",
            "baseline_mcc": 0.02}


TARGETS_TABLE = {
    "headline": HEADLINE, "adjustment": "holm",
    "targets": [  # headline first, the rest as select lists them (not by evidence)
        target(HEADLINE, "mean_forecast", 0.27, 0.004, 0.016) | {"champion_kind":
                                                                 "combination"},
        target(THIRTY, "gru", 0.05, 0.2, 0.5),
        target(METALS, "global_gru", 0.20, 0.001, 0.004),
        target(OTHER, "lstm", 0.10, 0.3, 0.5),
    ],
    "pooled": {"targets": 4, "days": 488,
               "champions": {"mcc": 0.155, "mcc_lo": 0.11, "mcc_hi": 0.2},
               "per_network": {"global_gru": {"mcc": 0.12, "mcc_lo": 0.07, "mcc_hi": 0.17},
                            "gru": {"mcc": 0.08, "mcc_lo": 0.03, "mcc_hi": 0.13}}},
    "not_forecast": [{"target": LEFT_OUT, "reason": "not in the merged dataset"}],
}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def inputs(merge_indices: list[dict]) -> tuple[dict, dict, dict]:
    """The validation, merge and drift summaries, as the stages write them (trimmed)."""
    validation = {
        "passed": True, "target_index": HEADLINE, "files_total": 5, "files_usable": 4,
        "files_quarantined": 0, "rows_dropped": 0, "min_usable_files": 1,
        "files": [{"file": f"{i['index_id']}.csv", "index_id": i["index_id"],
                   "index_name": i["index_name"], "status": "valid", "rows": 300,
                   "problems": [], "dropped_rows": [], "usable": True, "dropped_lines": []}
                  for i in merge_indices]}
    merge = {
        "md5": "bc99fa85f39f5438df33375dfff40034", "target_index": HEADLINE, "rows": 300,
        "first_date": "2019-01-01", "last_date": "2019-12-31",
        "target_last_date": "2019-12-31", "indices_included": 4, "indices_excluded": 1,
        "leading_rows_dropped": 0, "rows_dropped_gaps": 0, "values_filled": 0,
        "policy": {"fill": "last known value, at most 5 consecutive days"},
        "indices": merge_indices}
    drift = {
        "features": {"IRX6XTPI0009__logret": {"drift_score": 0.3, "drifted": False,
                                              "method": "ks", "threshold": 0.01}},
        "share_of_drifted_features": 0.0, "n_drifted": 0, "n_features": 1, "threshold": 0.5,
        "dataset_drift": False, "prediction_drift": None, "target_drift": None,
        "reference": {"rows": 200, "first_date": "2019-01-01", "last_date": "2019-10-02"},
        "current": {"rows": 60, "first_date": "2019-10-05", "last_date": "2019-12-31"},
        "reference_note": "the champion's training days before the current span"}
    return validation, merge, drift


def merged(index_id: str, name: str, included: bool = True) -> dict:
    return {"index_id": index_id, "index_name": name, "included": included,
            "reason": None if included else "it ends 40 trading days before the target"}


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """Baselines walked forward over 300 synthetic days: the headline's leaderboard."""
    rng = np.random.default_rng(34)
    n = 300
    returns = rng.normal(0.0005, 0.01, n)
    table = FeatureTable(pd.bdate_range("2019-01-01", periods=n),
                         np.column_stack([returns, rng.normal(size=n)]),
                         make_labels(100 * np.exp(np.cumsum(returns))),
                         100 * np.exp(np.cumsum(returns)), ["T__logret", "T__range"])
    settings = evaluation_settings(window=5, refit_every=50, seeds=(1,), bootstrap_samples=100)
    evaluated = evaluate_models(table, settings, {})
    return evaluated, leaderboard(evaluated, "auto")


def make_project(root: Path, evaluation) -> Paths:
    """A project's outputs in ``root`` (absolute paths): the headline's evaluation,
    accuracy, validation, merge and drift; the targets table; each target's forecast
    (OTHER's predict failed: none); stubs of the validation and drift pages and of each
    further target's accuracy page."""
    evaluated, board = evaluation
    paths = Paths.model_validate({name: str(root / value)
                                  for name, value in Paths().model_dump().items()})
    write_selection(evaluated, board, paths.evaluation_dir, paths.headline_metrics,
                    BacktestSection())
    accuracy_report(paths.predictions, board, {}, paths.accuracy_dir, rolling_window=20,
                    leaderboard_md5=file_md5(paths.leaderboard))
    validation, merge, drift = inputs([
        merged(HEADLINE, HEADLINE), merged(THIRTY, "30 largest"), merged(METALS, "Metals"),
        merged(OTHER, HOSTILE), merged(LEFT_OUT, "Industry", included=False)])
    write_json(paths.validation_summary, validation)
    write_json(paths.merge_summary, merge)
    write_json(paths.drift_summary, drift)
    write_json(paths.targets_table, TARGETS_TABLE)
    forecasts = {
        HEADLINE: FORECAST,
        THIRTY: FORECAST | {"call": "no call", "no_call_reasons": [NO_SKILL, COIN_FLIP],
                            "probability_up": 0.52, "champion": "gru",
                            "base_rate": {"training": {"share": 0.48, "days": 250,
                                                       "first": "2019-01-01",
                                                       "last": "2019-12-30"}}},
        METALS: FORECAST | {"call": "down", "probability_up": 0.31, "champion": "global_gru"},
    }
    for name, forecast in forecasts.items():
        write_json(paths.for_target(name, HEADLINE).forecast, forecast)
    stubs = [paths.validation_page, paths.drift_page] + [
        paths.for_target(name, HEADLINE).accuracy_page for name in (THIRTY, METALS, OTHER)]
    for page in stubs:  # the pages the front page links to, which other stages write
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!doctype html><title>{page.parent.name}</title><p>a stub of "
                        f"{page.parent.name}</p>", encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def project(tmp_path_factory, evaluation) -> Paths:
    return make_project(tmp_path_factory.mktemp("indices"), evaluation)


def test_rows_headline_first_then_by_evidence(project):
    rows = target_rows(project)
    assert [row["target"] for row in rows] == EXPECTED_ORDER
    by = {row["target"]: row for row in rows}
    headline = by[HEADLINE]
    assert headline["headline"] and not any(by[t]["headline"] for t in EXPECTED_ORDER[1:])
    assert headline["label"] == f"{TSETMC_NAMES[HEADLINE]} ({HEADLINE})"
    assert headline["call"] == "up" and headline["reason"] == ""
    assert headline["probability_up"] == FORECAST["probability_up"]
    assert headline["base_rate"] == FORECAST["base_rate"]["training"]["share"]
    assert (headline["test_mcc"], headline["mcc_lo"], headline["mcc_hi"]) == pytest.approx(
        (0.27, 0.19, 0.34))
    assert (headline["pt_p_adjusted"], headline["pt_p"]) == (0.016, 0.004)
    assert headline["champion"] == "mean_forecast"
    assert headline["accuracy_link"] == "accuracy/index.html"  # relative to the front page
    # a no call says why, in a few words; the reasons in full beside
    assert by[THIRTY]["call"] == "no call"
    assert by[THIRTY]["reason"] == "no demonstrated skill; a coin flip"
    assert by[THIRTY]["reasons"] == [NO_SKILL, COIN_FLIP]
    assert by[THIRTY]["base_rate"] == 0.48
    assert by[METALS]["call"] == "down" and by[METALS]["champion"] == "global_gru"
    assert by[METALS]["accuracy_link"] == f"accuracy/per_target/{METALS}/index.html"
    # a target whose predict failed keeps its row
    assert by[OTHER]["call"] == NO_FORECAST and by[OTHER]["probability_up"] is None
    assert by[OTHER]["label"] == f"{HOSTILE} ({OTHER})"  # the export's name: not TSETMC's
    assert by[OTHER]["champion"] == "lstm" and by[OTHER]["test_mcc"] == 0.10
    for row in rows:
        link = row["accuracy_link"]
        assert (project.front_page.parent / link).is_file(), link


def test_the_pooled_figures_and_the_adjustment(project):
    from pipelines.reporting.targets_table import adjustment_text, pooled_lines, pooled_over

    found = read_tomorrow(project)
    assert adjustment_text(found) == "p adjusted for 4 targets (Holm)"
    assert pooled_over(found) == "Pooled over 4 targets (488 test days)"
    assert pooled_lines(found) == ["the champions 0.155 [0.110, 0.200]",
                                   "global_gru 0.120 [0.070, 0.170]",
                                   "gru 0.080 [0.030, 0.130]"]
    assert [item["target"] for item in found.not_forecast] == [LEFT_OUT]
    assert found.next_trading_day == "2020-01-01"


def test_one_target_or_none_keeps_the_page_as_today(tmp_path, evaluation):
    paths = make_project(tmp_path, evaluation)
    one = copy.deepcopy(TARGETS_TABLE) | {"targets": TARGETS_TABLE["targets"][:1]}
    write_json(paths.targets_table, one)
    assert target_rows(paths) is None
    build_reports(paths)
    with_one = paths.front_page.read_text(encoding="utf-8")
    paths.targets_table.unlink()
    assert target_rows(paths) is None
    build_reports(paths)
    without = paths.front_page.read_text(encoding="utf-8")
    for page in (with_one, without):
        assert 'id="tomorrow"' not in page and "index by index" not in page
    assert re.sub(r"Generated [^;.]*", "", with_one) == re.sub(r"Generated [^;.]*", "", without)


def test_a_damaged_targets_table_is_named(tmp_path):
    from pipelines.core.errors import DataError

    paths = Paths(evaluation_dir=tmp_path)
    for damaged in ("{", "[]", json.dumps({"targets": [{"target": "../../elsewhere"}]})):
        paths.targets_table.write_text(damaged, encoding="utf-8")
        with pytest.raises(DataError, match="targets.json: damaged, not a targets table"):
            read_tomorrow(paths)


def test_short_reasons():
    assert short_reason(NO_SKILL) == "no demonstrated skill"
    assert short_reason("the scored direction (up) and the published P(up) 0.480 disagree"
                        ) == "direction and P(up) disagree"
    assert short_reason("P(up) 0.600 is within 0.05 of the base rate 0.590 (the training "
                        "span's share of up days): no more than the usual odds"
                        ) == "near the base rate"
    assert short_reason("something new: and its detail") == "something new"


def test_the_artifact_is_the_same_table(project):
    """The Prefect table artifact's rows and the markdown table: the page's columns and
    order, every name as written (never markup)."""
    found = read_tomorrow(project)
    rows = index_table_rows(found)
    assert list(rows[0]) == ["index", "call", "P(up)", "base rate", "champion", "test MCC",
                             "MCC 95% CI", "p adjusted", "p"]
    render = MarkdownIt("commonmark").enable("table").render
    shown = [render(row["index"]) for row in rows]
    assert [re.search(r"\((IRX\w+)\)", text).group(1) for text in shown] == EXPECTED_ORDER
    assert shown[0] == f"<p>{TSETMC_NAMES[HEADLINE]} ({HEADLINE}) (headline)</p>\n"
    assert "Fish &amp; &quot;Chips&quot; &lt;script&gt;alert(1)&lt;/script&gt;" in shown[2]
    assert rows[0] | {"index": ""} == {
        "index": "", "call": "up", "P(up)": "0.643", "base rate": "59%",
        "champion": "mean\\_forecast", "test MCC": "0.270", "MCC 95% CI": "[0.190, 0.340]",
        "p adjusted": "0.016", "p": "0.004"}
    assert render(rows[1]["champion"]) == "<p>global_gru</p>\n"
    assert rows[3]["call"] == "no call (no demonstrated skill; a coin flip)"
    assert rows[2]["call"] == "no forecast (its predict wrote none)"
    assert rows[2]["P(up)"] == "–" and rows[2]["test MCC"] == "0.100"
    table = render("\n".join(index_table(found)))
    assert table.count("<tr>") == 1 + len(EXPECTED_ORDER)  # the head and a row per target
    assert "<script>" not in table and "Holm" in table
    assert ("Pooled over 4 targets (488 test days), test MCC with its 95 % interval: the "
            "champions 0.155 [0.110, 0.200]; global_gru 0.120") in table
    assert "not forecast:" in table and LEFT_OUT in table


MEASURE = b"""<script>(() => {
  const table = document.getElementById("targets"), box = table.parentElement;
  const first = document.querySelector("body section, body h2");
  document.documentElement.setAttribute("data-targets", JSON.stringify({
    box: box.className, overflow: getComputedStyle(box).overflowX,
    width: box.clientWidth, content: box.scrollWidth,
    first: first.closest("section") ? first.closest("section").id : first.id,
    rows: [...table.querySelectorAll("tr")].slice(1).map(
      tr => tr.querySelector("td").innerText.replace(/\\s+/g, " ").trim())}));
})();</script>"""


def measured(page: Path, width: int, shot: Path) -> tuple[browser.Layout, dict]:
    """The front page at ``width`` (checked: nothing sticks out of the window), and its
    targets table against its scrolling box, the first section, each row's index."""
    return browser.measured_layout(page, width, MEASURE, "targets", 1400, shot)


@pytest.mark.browser
def test_the_front_page_opens_with_the_table(project, tmp_path):
    """In Chromium: the table is the page's first section, a row per target in order, each
    index's link leads to its accuracy page; whole at 1,400 px; at 390 px the page does
    not scroll sideways but the table's box does; the hostile name is text."""
    chromium_or_skip()
    build_reports(project)
    reports = tmp_path / "reports"  # a copy: the layout's files stay out of the fixture's
    shutil.copytree(project.front_page.parent, reports)
    page = reports / "index.html"
    source = page.read_text(encoding="utf-8")
    assert HOSTILE not in source
    assert "Fish &amp; &#34;Chips&#34; &lt;script&gt;alert(1)&lt;/script&gt;" in source
    assert "p adjusted for 4 targets (Holm)" in source

    wide, fits = measured(page, 1400, tmp_path / "front-indices-1400.png")
    assert wide.scroll_width <= wide.inner_width == 1400
    assert fits["box"] == "scroll" and fits["content"] <= fits["width"], fits  # whole
    assert fits["first"] == "tomorrow", fits
    names = [TSETMC_NAMES[HEADLINE], TSETMC_NAMES[METALS], HOSTILE, TSETMC_NAMES[THIRTY]]
    assert fits["rows"] == [f"{name} ({isin})" for name, isin in zip(names, EXPECTED_ORDER,
                                                                      strict=True)], fits
    narrow, scrolls = measured(page, 390, tmp_path / "front-indices-390.png")
    assert narrow.scroll_width <= narrow.inner_width == 390  # the page does not scroll...
    assert scrolls["overflow"] == "auto" and scrolls["content"] > scrolls["width"], scrolls
    text = wide.rendered.check(min_text=500).text  # ...its box does; every link resolves
    assert "Tomorrow, index by index: 2020-01-01" in text
    assert text.index("Tomorrow, index by index") < text.index("Forecast for 2020-01-01")
    links = [link for link in wide.rendered.links if "accuracy/" in link]
    for isin in EXPECTED_ORDER[1:]:
        assert f"accuracy/per_target/{isin}/index.html" in links
    assert ("Pooled over 4 targets (488 test days), test MCC with its 95 % interval: the "
            "champions 0.155 [0.110, 0.200]; global_gru 0.120 [0.070, 0.170]") in text
    assert "Not forecast:" in text and LEFT_OUT in text
    assert 'data-pwned' not in wide.rendered.dom and "alert(1)" in text


def test_the_forecast_artifact_adds_the_table_with_several_targets(tmp_path, evaluation,
                                                                   monkeypatch):
    """``publish_forecast`` (its function, the Prefect calls caught): with the project's
    targets table, the markdown forecast ends with the table and a table artifact
    ``forecast-indices`` holds its rows; without one, the forecast is as it was."""
    import flows.artifacts as artifacts

    made = []
    monkeypatch.setattr(artifacts, "create_markdown_artifact",
                        lambda **kw: made.append(("markdown", kw)))
    monkeypatch.setattr(artifacts, "create_table_artifact",
                        lambda **kw: made.append(("table", kw)))
    paths = make_project(tmp_path, evaluation)  # the default paths, inside tmp_path
    (tmp_path / "params.yaml").write_text(f"data:\n  target_index: {HEADLINE}\n",
                                          encoding="utf-8")
    forecast = str(paths.forecast)
    artifacts.publish_forecast.fn(forecast, str(tmp_path))
    (kind, table), (_, markdown) = made
    assert kind == "table" and table["key"] == "forecast-indices"
    assert table["table"] == index_table_rows(read_tomorrow(paths))
    assert "p adjusted for 4 targets (Holm)" in table["description"]
    text = markdown["markdown"]
    assert text.startswith("# TEDPIX on 2020-01-01: **up**")
    assert "## Tomorrow, index by index (2020-01-01)" in text
    single = text.split("\n\n## Tomorrow")[0] + "\n"

    made.clear()
    paths.targets_table.unlink()
    artifacts.publish_forecast.fn(forecast, str(tmp_path))
    artifacts.publish_forecast.fn(forecast)
    assert [kind for kind, _ in made] == ["markdown", "markdown"]
    assert made[0][1]["markdown"] == made[1][1]["markdown"] == single
