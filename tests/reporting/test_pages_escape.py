"""tsepipe's own pages show the text they take from input as text, never as markup (issue
31, item 3): the front page (the failed data run's record, tomorrow's table index by index,
the forecast, the track record, the leaderboard, data health, drift), the accuracy page and
the drift page, drawn from small hand-made inputs with every payload of
``test_browser.PAYLOADS`` in each text that comes from an export, params.yaml or a stage's
record, then opened in headless Chromium: no payload runs or becomes markup, and each is on
the page as text (it reached the page and was escaped, not dropped).

Index ids and model names are refused upstream when not safe (``ingest.INDEX_ID``,
``train.MODEL_NAME_PATTERN``); they carry payloads here all the same, so that the pages do
not depend on it. Evidently's pages and the validation page: ``test_browser``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.core.display import index_html
from pipelines.core.fileio import file_md5, write_json
from pipelines.core.html import header
from pipelines.core.params.backtest import BacktestSection
from pipelines.core.params.paths import Paths
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import FeatureTable, make_labels
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.modelling.select import leaderboard, write_selection
from pipelines.reporting.accuracy import accuracy_report
from pipelines.reporting.drift import drift_page, history_entry
from pipelines.reporting.front_page import build_reports
from pipelines.reporting.targets_table import short_reason
from tests.reporting.test_browser import PAYLOADS, chromium, payload_problems  # noqa: F401
from tests.reporting.test_targets_table import FORECAST, inputs, merged, target
from tests.support import browser
from tests.support.stages import evaluation_settings

pytestmark = pytest.mark.browser

# the headline (a TSETMC name), an index its export names, one with a no call, one left out
HEADLINE, NAMED, THIRTY, GONE = "IRX6XTPI0009", "IRX6XTEST0001", "IRX6XS300003", "IRX6XGONE0001"


def hostile(place: str) -> str:
    """Every payload, after the place it was put in (the page shows which reached it)."""
    return f"[{place}] " + " ".join(PAYLOADS)


FEATURE = f"{hostile('feature')}__range"
REFUSED = hostile("refused file")  # a file's stem, refused as an index id by ingest


def renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` (JSON) with every key and string in ``names`` replaced by its new name."""
    if isinstance(value, dict):
        return {names.get(key, key): renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [renamed(item, names) for item in value]
    return names.get(value, value) if isinstance(value, str) else value


def evaluated(root: Path) -> Paths:
    """A project's outputs in ``root``: the baselines walked forward over 300 days, on a
    feature whose name is a payload; the champion and persistence renamed to payloads in
    the leaderboard, the predictions and the equity curves; the accuracy page drawn from
    them, titled with a payload index name, its header's lines payloads."""
    rng = np.random.default_rng(34)
    returns = rng.normal(0.0005, 0.01, 300)
    close = 100 * np.exp(np.cumsum(returns))
    table = FeatureTable(pd.bdate_range("2019-01-01", periods=300),
                         np.column_stack([returns, rng.normal(size=300)]), make_labels(close),
                         close, [f"{HEADLINE}__logret", FEATURE])
    evaluation = evaluate_models(table, evaluation_settings(
        window=5, refit_every=50, seeds=(1,), bootstrap_samples=100), {})
    board = leaderboard(evaluation, "auto")
    paths = Paths.model_validate({name: str(root / value)
                                  for name, value in Paths().model_dump().items()})
    write_selection(evaluation, board, paths.evaluation_dir, paths.headline_metrics,
                    BacktestSection())
    names = {"persistence": hostile("model"), board.champion: hostile("champion model")}
    write_json(paths.leaderboard, renamed(json.loads(paths.leaderboard.read_text()), names))
    predictions = pd.read_parquet(paths.predictions)
    predictions["model"] = predictions["model"].replace(names)
    predictions.to_parquet(paths.predictions)
    pd.read_csv(paths.equity_plot).rename(columns=names).to_csv(paths.equity_plot, index=False)
    accuracy_report(paths.predictions, Leaderboard.read(paths.leaderboard), {},
                    paths.accuracy_dir, rolling_window=20, equity_path=paths.equity_plot,
                    leaderboard_md5=file_md5(paths.leaderboard),
                    page_header=header(paths.accuracy_page, paths.front_page, "accuracy",
                                       model=hostile("header model"),
                                       data=hostile("header data")),
                    index=index_html(NAMED, hostile("index name")))
    return paths


def data_records(paths: Paths) -> None:
    """The validation and merge summaries and the run log: an export's index name, a
    refused file (its name, its id, its problem), a bad row's column and value, an index
    left out and why, and a failed data run's problems."""
    validation, merge, _ = inputs([
        merged(HEADLINE, HEADLINE), merged(NAMED, hostile("index name")),
        merged(THIRTY, "30 largest"),
        merged(GONE, hostile("left-out name"), included=False)
        | {"reason": hostile("left-out reason")}])
    named = next(f for f in validation["files"] if f["index_id"] == NAMED)
    named |= {"problems": [{"message": hostile("problem")}], "dropped_lines": [7],
              "dropped_rows": [{"line": 7, "date": "2019-03-04", "column": hostile("column"),
                                "value": hostile("cell value"), "rule": "low <= close <= high"}]}
    validation["files"].append({
        "file": f"{REFUSED}.csv", "index_id": REFUSED, "index_name": "", "status": "refused",
        "rows": 0, "usable": False, "dropped_rows": [], "dropped_lines": [],
        "problems": [{"message": f"{REFUSED}.csv: a file name that is not an index id"}]})
    validation |= {"files_total": 6, "rows_dropped": 1}
    write_json(paths.validation_summary, validation)
    write_json(paths.merge_summary, merge)
    paths.run_log.parent.mkdir(parents=True, exist_ok=True)
    paths.run_log.write_text("".join(json.dumps(record) + "\n" for record in [
        {"finished": "2019-12-31T10:00:00+00:00"},
        {"finished": "2020-01-01T10:00:00+00:00", "failed": "BadData",
         "problems": [hostile("run problem"), f"warning: {REFUSED}.csv: refused; left out"]}]),
        encoding="utf-8")


def forecast_records(paths: Paths) -> None:
    """The forecasts (a no call's reasons, a stand-in's note, the members' and the best
    baseline's names), the track record, the champion record and the targets table."""
    write_json(paths.forecast, FORECAST | {
        "call": "no call", "no_call_reasons": [hostile("no-call reason")],
        "champion": hostile("forecast champion"), "note": hostile("note"),
        "members": [{"model": hostile("member"), "kind": "network", "probability_up": 0.4,
                     "direction": "down", "agrees": False}],
        "best_baseline": {"model": hostile("best baseline"), "probability_up": 0.6,
                          "direction": "up", "agrees": True}})
    write_json(paths.for_target(THIRTY, HEADLINE).forecast, FORECAST | {
        "call": "no call", "no_call_reasons": [hostile("target reason")],
        "champion": hostile("target champion")})
    day = {"as_of": "2019-12-30", "next_trading_day": "2019-12-31", "call": "up",
           "probability_up": 0.64, "champion": hostile("record champion"),
           "outcome_day": "2019-12-31", "outcome": "up", "hit": True, "status": "scored"}
    write_json(paths.track_record, {
        "calls": 1, "hits": 1, "hit_rate": 1.0, "up_calls": 1, "down_calls": 0, "mcc": None,
        "mcc_interval": None, "no_calls": 0, "pending": 1, "unknown_days": 0,
        "since": "2019-12-30", "last": "2019-12-31", "recent": [day, day | {
            "as_of": "2019-12-31", "next_trading_day": "2020-01-01", "outcome_day": None,
            "outcome": None, "hit": None, "status": "pending"}]})
    write_json(paths.champion_record, {
        "champion": hostile("champion record"), "kind": "network",
        "trained_on": {"days": 250, "last": "2019-12-30"},
        "data_version": "bc99fa85f39f5438df33375dfff40034"})
    write_json(paths.targets_table, {
        "headline": HEADLINE, "adjustment": "holm",
        "targets": [target(HEADLINE, "mean_forecast", 0.27, 0.004, 0.016),
                    target(NAMED, hostile("target entry"), 0.1, 0.3, 0.5),
                    target(THIRTY, "gru", 0.05, 0.2, 0.5)],
        "pooled": {"targets": 3, "days": 366,
                   "champions": {"mcc": 0.155, "mcc_lo": 0.11, "mcc_hi": 0.2},
                   "per_network": {hostile("network"): {"mcc": 0.12, "mcc_lo": 0.07,
                                                        "mcc_hi": 0.17}}},
        "not_forecast": [{"target": GONE, "reason": hostile("not-forecast reason")}]})


def drift_records(paths: Paths) -> None:
    """The drift summary (a payload feature and an index with a payload name drifted, the
    champion's name a payload), two reports of history, and tsepipe's drift page."""
    def feature(score: float) -> dict[str, Any]:
        return {"drift_score": score, "drifted": score < 0.01, "method": "ks",
                "threshold": 0.01}

    summary = inputs([])[2] | {
        "features": {f"{HEADLINE}__logret": feature(0.3), f"{NAMED}__logret": feature(0.001),
                     FEATURE: feature(0.004)},
        "share_of_drifted_features": 0.67, "n_drifted": 2, "n_features": 3,
        "dataset_drift": True, "champion": hostile("drift champion"), "target": NAMED,
        "trained_on_last": "2019-10-02", "labelled_last": "2019-12-30",
        "new_labelled_days": 0}
    write_json(paths.drift_summary, summary)
    before = summary | {"current": {"rows": 60, "first_date": "2019-07-05",
                                    "last_date": "2019-09-30"}}
    drift_page(summary, [history_entry(before), history_entry(summary)], paths)


FRONT = ["index name", "left-out name", "left-out reason", "problem", "column", "cell value",
         "refused file", "run problem", "no-call reason", "forecast champion", "note",
         "member", "best baseline", "record champion", "champion record", "target entry",
         "target champion", "network", "not-forecast reason", "model", "champion model",
         "feature"]
ACCURACY = ["index name", "header model", "header data", "model", "champion model", "feature"]
DRIFT = ["feature", "index name", "drift champion", "champion record"]


@pytest.mark.slow  # about 11 s: six Chromium loads and Evidently's classification page
def test_tsepipe_pages_show_every_hostile_text_as_text(chromium, tmp_path):  # noqa: F811
    """Each page in Chromium: no payload ran or became an attribute (``payload_problems``),
    no ``<script>`` of a payload is in the file, and every place's payloads are its text
    (a targets-table reason in brief, as ``short_reason`` cuts it)."""
    paths = evaluated(tmp_path)
    data_records(paths)
    forecast_records(paths)
    drift_records(paths)
    build_reports(paths)
    brief = short_reason(hostile("target reason"))
    assert brief.endswith("…") and "<script>" in brief  # cut inside the payloads
    shown = {}
    for page, places in ((paths.front_page, FRONT), (paths.accuracy_page, ACCURACY),
                         (paths.drift_page, DRIFT)):
        assert PAYLOADS[1] not in page.read_text(encoding="utf-8"), page
        assert payload_problems(page) == [], page
        shown[page] = text = browser.render(page).text
        assert [place for place in places if hostile(place) not in text] == [], page
    assert brief in shown[paths.front_page]
    assert "Tomorrow, index by index" in shown[paths.front_page]
