"""Drift report: a regime change is flagged, a stable split is not, outputs are safe; what a
refit would add (the monitor's decision), the history kept per current span, the page."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from pipelines.core.params.drift import DriftSection
from pipelines.modelling.features import FeatureTable, make_labels
from pipelines.reporting.drift import (
    drift_page,
    drift_report,
    record_history,
    reference_and_current,
    refit_would_add,
    seen_every_day,
)
from pipelines.reporting.evidently_pages import ranked_features, score_label

DRIFT = DriftSection(current_days=60, threshold=0.5)

HOSTILE = "<script>alert(1)</script>"
NAMES = ([f"IDX{i}__logret" for i in range(4)] + [f"IDX{i}__logvol_change" for i in range(2)]
         + [f"IDX{i}__range" for i in range(2)])
SHIFTED = NAMES[:4]  # half the features change regime


def frames(stable: bool, n_ref: int = 400, n_cur: int = 150, seed: int = 0,
           names: list[str] = NAMES) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=n_ref + n_cur)

    def block(n: int, regime: bool) -> dict[str, np.ndarray]:
        columns = {}
        for name in names:
            change = regime and name in names[: len(names) // 2]
            columns[name] = rng.normal(0.004 if change else 0.0, 0.05 if change else 0.01, n)
        columns["probability_up"] = rng.beta(8, 2, n) if regime else rng.beta(5, 5, n)
        columns["label"] = (rng.random(n) < (0.85 if regime else 0.5)).astype("float64")
        return columns

    reference = pd.DataFrame({"date": dates[:n_ref], **block(n_ref, False)})
    current = pd.DataFrame({"date": dates[n_ref:], **block(n_cur, not stable)})
    return reference, current


def run(tmp_path, stable: bool, **kwargs):
    reference, current = frames(stable, **{k: v for k, v in kwargs.items() if k == "names"})
    names = kwargs.get("names", NAMES)
    return drift_report(reference, current, names, tmp_path / "drift.html",
                        tmp_path / "drift.json", prediction_column="probability_up",
                        target_column="label")


def test_a_regime_change_is_drift_and_the_drifted_features_are_named(tmp_path):
    summary = run(tmp_path, stable=False)
    drifted = {name for name, f in summary["features"].items() if f["drifted"]}
    assert set(SHIFTED) <= drifted
    assert summary["n_features"] == len(NAMES)
    assert summary["n_drifted"] == len(drifted)
    assert summary["share_of_drifted_features"] == pytest.approx(len(drifted) / len(NAMES))
    assert summary["share_of_drifted_features"] >= 0.5 and summary["dataset_drift"] is True
    for name in SHIFTED:
        feature = summary["features"][name]
        assert feature["method"] and feature["drift_score"] < 1e-6  # a p-value here
    assert summary["prediction_drift"]["drifted"] is True
    assert summary["target_drift"]["drifted"] is True
    assert summary["reference"] == {"rows": 400, "first_date": "2015-01-01",
                                    "last_date": "2016-07-13"}
    assert summary["current"]["rows"] == 150


def test_a_stable_split_is_not_drift(tmp_path):
    summary = run(tmp_path, stable=True)
    assert summary["share_of_drifted_features"] <= 0.25
    assert summary["dataset_drift"] is False
    assert summary["prediction_drift"]["drifted"] is False
    assert summary["target_drift"]["drifted"] is False
    assert summary["prediction_drift"]["score"] > 0.05


def test_the_json_is_the_summary_and_the_html_is_self_contained(tmp_path):
    summary = run(tmp_path, stable=False)
    assert json.loads((tmp_path / "drift.json").read_text(encoding="utf-8")) == summary
    html = (tmp_path / "drift.html").read_text(encoding="utf-8")
    assert len(html) > 100_000 and "IDX0__logret" in html
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE)
    assert not re.search(r"<link\b", html, re.IGNORECASE)
    assert not re.search(r"""@import\s+(url\()?["']?https?:""", html, re.IGNORECASE)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_hostile_index_name_cannot_inject_a_script(tmp_path):
    names = [f"{HOSTILE}__logret", "</script><script>alert(2)//__range", "OK__range"]
    summary = run(tmp_path, stable=False, names=names)
    assert set(summary["features"]) == set(names)  # the JSON keeps the real names
    assert summary["features"][names[0]]["drifted"] is True
    html = (tmp_path / "drift.html").read_text(encoding="utf-8")
    assert "alert(1)" in html and "alert(2)" in html  # the names are shown...
    assert "<script>alert" not in html and "</script><script>alert" not in html  # ...inertly
    # Every <script> element is Evidently's own: as many as without hostile names.
    clean = tmp_path / "clean"
    run(clean, stable=False, names=["A__logret", "B__range", "C__range"])
    plain = (clean / "drift.html").read_text(encoding="utf-8")
    assert html.count("<script") == plain.count("<script")
    assert html.count("</script>") == plain.count("</script>")


def test_prediction_and_target_drift_are_optional_and_levels_are_refused(tmp_path):
    reference, current = frames(stable=False)
    summary = drift_report(reference, current, NAMES, tmp_path / "d.html", tmp_path / "d.json")
    assert summary["prediction_drift"] is None and summary["target_drift"] is None
    current = current.assign(label=np.nan)  # labels not known yet
    summary = drift_report(reference, current, NAMES, tmp_path / "d.html", tmp_path / "d.json",
                           target_column="label")
    assert summary["target_drift"] == {"score": None, "drifted": None, "method": None,
                                       "threshold": None}
    with pytest.raises(ValueError, match="stationary"):
        drift_report(reference.assign(IDX0__close=1.0), current.assign(IDX0__close=2.0),
                     ["IDX0__close"], tmp_path / "d.html", tmp_path / "d.json")
    with pytest.raises(ValueError, match="lacks"):
        drift_report(reference, current.drop(columns=[NAMES[0]]), NAMES,
                     tmp_path / "d.html", tmp_path / "d.json")


def test_reference_is_the_training_window_and_current_the_last_days():
    n = 50
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    table = FeatureTable(pd.bdate_range("2021-01-04", periods=n), rng.normal(size=(n, 3)),
                         make_labels(close), close, ["A__logret", "A__range", "B__logret"])
    reference, current = reference_and_current(table, train_last_day=29, current_days=10)
    assert list(reference.columns) == ["date", "A__logret", "A__range", "B__logret", "label"]
    assert len(reference) == 30 and len(current) == 10
    assert reference["date"].iloc[-1] == table.dates[29]
    assert current["date"].iloc[0] == table.dates[40]
    assert current["date"].iloc[-1] == table.dates[-1]
    assert np.array_equal(current[table.names].to_numpy(), table.features[40:])
    assert np.array_equal(reference["label"].to_numpy(), table.labels[:30])
    assert np.isnan(current["label"].iloc[-1]) and current["label"].iloc[:-1].notna().all()
    with pytest.raises(ValueError, match="overlap"):
        reference_and_current(table, train_last_day=45, current_days=10)
    with pytest.raises(ValueError):
        reference_and_current(table, train_last_day=29, current_days=0)


def regime_table(n: int = 420, regime_days: int = 0, seed: int = 3) -> FeatureTable:
    """Two indices' stationary features; the last ``regime_days`` days five times as wild."""
    rng = np.random.default_rng(seed)
    scale = np.ones(n)
    if regime_days:
        scale[-regime_days:] = 5.0
    returns = rng.normal(0.0005, 0.01, n) * scale
    close = 100 * np.exp(np.cumsum(returns))
    features = np.column_stack([returns, rng.normal(0, 0.3, n) * scale,
                                np.abs(rng.normal(0.01, 0.003, n)) * scale,
                                rng.normal(0, 0.01, n) * scale])
    return FeatureTable(pd.bdate_range("2019-01-05", periods=n), features, make_labels(close),
                        close, ["T__logret", "T__logvol_change", "T__range", "U__logret"])


@pytest.mark.parametrize("champion", ["logistic", "logistic_window", "persistence"])
def test_the_drift_stage_with_a_baseline_champion(tmp_path, champion):
    from pipelines.core.errors import DataError
    from pipelines.core.params.paths import Paths
    from pipelines.modelling.baselines import fit_baseline
    from pipelines.modelling.features import labelled_sample_days
    from pipelines.modelling.forecaster import Forecaster
    from pipelines.modelling.predict import champion_days
    from pipelines.reporting.drift import champion_drift, read_champion_days

    def in_folder(name: str) -> Paths:
        return Paths(models_dir=tmp_path / "models", drift_dir=tmp_path / name,
                     forecasts_dir=tmp_path / name, front_page=tmp_path / "index.html",
                     merge_summary=tmp_path / "merge_summary.json")

    write_versions(in_folder("any"), champion, "baseline")

    def days(table: FeatureTable, paths: Paths):  # as the predict stage writes them
        labelled = labelled_sample_days(table, 10)  # fitted on them all, as tsepipe train does
        state = fit_baseline(champion, table, 10, labelled)
        record = {"trained_on": {"last": f"{table.dates[labelled[-1]]:%Y-%m-%d}"}}
        written = champion_days(Forecaster(champion, "baseline", table, state=state), record,
                                table, 10)
        paths.champion_days.parent.mkdir(parents=True, exist_ok=True)
        written.to_parquet(paths.champion_days, index=False)
        return read_champion_days(paths.champion_days, table)

    def drift_of(table: FeatureTable, name: str) -> dict:
        paths = in_folder(name)
        return champion_drift(table, days(table, paths), paths, DRIFT)

    stable = drift_of(regime_table(), "stable")
    assert stable["champion"] == champion and stable["champion_kind"] == "baseline"
    # fitted on every labelled day: the last one, and none new since (the last day has none)
    last_two = [f"{day:%Y-%m-%d}" for day in regime_table().dates[-2:]]
    assert stable["trained_on_last"] == stable["labelled_last"] == last_two[0]
    assert stable["new_labelled_days"] == 0 and stable["current"]["last_date"] == last_two[1]
    assert stable["current"]["rows"] == 60 and stable["n_features"] == 4
    assert stable["reference"]["last_date"] < stable["current"]["first_date"]
    # its training days from its first window up to the current span (never overlapping)
    assert stable["reference"]["rows"] == 420 - 60 - 9
    assert stable["dataset_drift"] is False
    assert stable["prediction_drift"]["score"] is not None
    shifted = drift_of(regime_table(regime_days=60), "shifted")
    assert shifted["dataset_drift"] is True and shifted["n_drifted"] == 4
    assert (tmp_path / "shifted/evidently.html").stat().st_size > 100_000
    # Evidently's page carries the project's header: what it shows, the champion and the
    # dataset, the way back to the front page
    evidently = (tmp_path / "shifted/evidently.html").read_text(encoding="utf-8")
    assert evidently.count('id="tsepipe-header"') == 1
    assert "Evidently&#39;s drift report: the last 60 trading days" in evidently
    assert_header(evidently, tmp_path / "shifted", tmp_path / "index.html",
                  f"{champion} (baseline), trained on 400 labelled days")
    with pytest.raises(DataError, match="reference days"):
        drift_of(regime_table(n=120), "short")
    # the probabilities of another dataset (one day more) are refused, naming the file
    longer = in_folder("longer")
    days(regime_table(n=421), longer)
    with pytest.raises(DataError, match="champion_days.parquet.*run tsepipe predict"):
        read_champion_days(longer.champion_days, regime_table())


def write_versions(paths, champion: str, kind: str) -> None:
    """The champion record and the merge summary a page's header names (their fields the
    header reads), with an index named as TSETMC names it."""
    paths.models_dir.mkdir(parents=True, exist_ok=True)
    paths.champion_record.write_text(json.dumps({
        "champion": champion, "kind": kind, "data_version": "0123abcd" * 4,
        "trained_on": {"days": 400, "last": "2020-06-30"}}))
    paths.merge_summary.write_text(json.dumps({
        "md5": "0123abcd" * 4, "rows": 420, "first_date": "2019-01-07",
        "last_date": "2020-08-20", "indices_included": 2,
        "indices": [{"index_id": "IDX0", "index_name": "شاخص کل"},
                    {"index_id": "IDX1", "index_name": "IDX1"}]}))


def assert_header(html: str, folder, front_page, model: str) -> None:
    """The project's header: the model and data lines, the link back to ``front_page``."""
    found = re.search(r'<header class="tsepipe" id="tsepipe-header">.*?</header>', html, re.S)
    assert found, html[:500]
    header = found.group(0)
    home = re.search(r'<a class="home" href="([^"]+)"', header).group(1)
    assert (folder / home).resolve() == front_page.resolve()
    assert f'<span class="model">{model}' in header
    assert ('<span class="data">dataset 0123abcd: 420 trading days, 2019-01-07 .. '
            '2020-08-20, 2 indices</span>') in header


def test_a_refit_is_worth_it_only_with_days_the_champion_has_not_seen():
    seen = {"trained_on_last": "2025-09-22", "labelled_last": "2025-09-22",
            "new_labelled_days": 0, "data_version": "a" * 32}
    assert refit_would_add(seen, "a" * 32) is None  # the same days, the same data
    assert refit_would_add(seen, None) is None  # the champion's version unknown: the days
    assert seen_every_day(seen) == ("the models were trained on every labelled day through "
                                    "2025-09-22; a refit would see the same days")
    new = seen | {"labelled_last": "2025-09-28", "new_labelled_days": 4, "data_version": "b" * 32}
    assert refit_would_add(new, "a" * 32) == (
        "4 labelled days after the last one it was trained on, 2025-09-22 (through 2025-09-28)")
    # no new day, but the days' data changed (a corrected export): a refit learns from it
    revised = refit_would_add(seen | {"data_version": "c" * 32}, "a" * 32)
    assert revised is not None and "cccccccc" in revised and "aaaaaaaa" in revised
    # a drift.json of an older version says nothing of what was seen: not taken as "seen"
    assert refit_would_add({"data_version": "a" * 32}, "a" * 32) is not None


def test_features_ranked_by_strength_whatever_the_score_is():
    features = {
        "p_weak__logret": {"drift_score": 0.3, "drifted": False, "method": "ks",
                           "threshold": 0.01},
        "p_strong__logret": {"drift_score": 1e-12, "drifted": True, "method": "ks",
                             "threshold": 0.01},
        "dist__range": {"drift_score": 0.5, "drifted": True, "method": "wasserstein",
                        "threshold": 0.1},
        "own__range": {"drift_score": 0.9, "drifted": True, "method": "a custom test",
                       "threshold": 0.2},  # not Evidently's: read from its verdict
    }
    ranked = ranked_features(features)
    assert [r["feature"] for r in ranked] == ["p_strong__logret", "dist__range", "own__range",
                                              "p_weak__logret"]
    assert [r["lower_is_drift"] for r in ranked] == [True, False, False, True]
    assert score_label("ks", True) == "p-value (ks): lower = more drift"
    assert score_label("wasserstein", False) == "distance (wasserstein): higher = more drift"


def test_the_history_keeps_one_line_per_current_span_and_the_page_draws_it(tmp_path):
    from pipelines.core.params.paths import Paths

    scores = dict(zip(NAMES, [1e-12, 3e-9, 1e-5, 0.004, 0.02, 0.3, 0.5, 0.9], strict=True))
    features = {name: {"drift_score": score, "drifted": score < 0.01, "method": "ks",
                       "threshold": 0.01} for name, score in scores.items()}
    summary = {  # as drift_report and champion_drift write it (no Evidently run needed)
        "features": features, "share_of_drifted_features": 0.5, "n_drifted": 4,
        "n_features": 8, "threshold": 0.5, "dataset_drift": True,
        "prediction_drift": {"score": 0.2, "drifted": False, "method": "ks", "threshold": 0.01},
        "target_drift": None,
        "reference": {"rows": 400, "first_date": "2015-01-01", "last_date": "2016-07-13"},
        "current": {"rows": 150, "first_date": "2016-07-14", "last_date": "2017-02-08"},
        "champion": "gru", "trained_on_last": "2016-07-13", "labelled_last": "2016-07-13",
        "new_labelled_days": 0, "reference_note": "the champion's training days"}
    log = tmp_path / "history.jsonl"

    def ending(day: str, share: float) -> dict:
        return summary | {"current": summary["current"] | {"last_date": day},
                          "share_of_drifted_features": share}

    record_history(log, ending("2016-01-05", 0.1))
    record_history(log, ending("2015-12-29", 0.0))  # an older span: sorted in before it
    history = record_history(log, summary)
    assert [e["current"]["last_date"] for e in history] == ["2015-12-29", "2016-01-05",
                                                            summary["current"]["last_date"]]
    again = record_history(log, ending("2016-01-05", 0.2))  # a re-run of a span replaces it
    assert len(again) == 3 and again[1]["share"] == 0.2
    assert [json.loads(line) for line in log.read_text().splitlines()] == again
    latest = again[-1]
    assert latest["scores"] == scores and latest["drifted"] == sorted(SHIFTED)
    assert latest["method"] == "ks" and latest["method_threshold"] == 0.01

    paths = Paths(drift_dir=tmp_path / "page", front_page=tmp_path / "index.html",
                  models_dir=tmp_path / "models", merge_summary=tmp_path / "merge.json")
    write_versions(paths, "gru", "network")
    html = drift_page(summary, again, paths).read_text(encoding="utf-8")
    assert_header(html, tmp_path / "page", tmp_path / "index.html", "gru (network), trained "
                  "on 400 labelled days through 2020-06-30 of dataset 0123abcd")
    assert html.count("front page</a>") == 1  # the header's, not a second one
    # features named by index id, with the name the merge summary gives (where it has one)
    assert html.count('<bdi class="muted name">شاخص کل</bdi>') == 3  # IDX0's 3 features
    assert '<bdi class="muted name">IDX1' not in html
    assert html.count("<svg") == 2 and "evidently.html" in html
    # its time in Tehran time, the zone said, no raw ISO stamp
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d Tehran time \(UTC\+03:30\)", html)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", html)
    assert "p-value (ks): lower = more drift" in html  # the score column says what it is
    order = [html.index(f">{name.replace('__', '__<wbr>')}<") for name in
             [r["feature"] for r in ranked_features(summary["features"])]]
    assert order == sorted(order)  # most drifted first, as ranked
    assert "One report so far" in drift_page(summary, again[-1:], paths).read_text()
