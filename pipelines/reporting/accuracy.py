"""The accuracy report: how every model and baseline did on the walk-forward test days.

``accuracy_report`` writes ``<accuracy_dir>/index.html`` (the project's own page: the
leaderboard with intervals and tests, confusion matrices, rolling accuracy, calibration,
the backtest's equity curves, the study's numbers beside ours),
``<accuracy_dir>/classification.html`` (Evidently's classification report of the
walk-forward predictions, ``pipelines.reporting.evidently_pages``) and ``accuracy.json`` (the
leaderboard rows the front page shows). The pages depend only on the evaluation and the
model cards, so ``dvc repro`` redraws them when those change (a training run), not on each
daily run; the front page (``pipelines.reporting.front_page``) reads ``accuracy.json``.
Pages are Jinja2 templates with autoescaping, their own CSS and inline SVG charts
(``pipelines.reporting.charts``); they request nothing from any other host.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.display import index_html, index_label, tehran_time
from pipelines.core.fileio import file_md5, write_json
from pipelines.core.html import generated, header, model_version, render
from pipelines.core.params.evaluate import EvaluateSection
from pipelines.core.params.paths import FILES, PAGE, Paths
from pipelines.modelling.calibration import BANDS, reliability
from pipelines.modelling.leaderboard import Leaderboard, model_cards, score
from pipelines.modelling.metrics import rolling_accuracy
from pipelines.reporting.charts import PALETTE, calibration_chart, line_chart
from pipelines.reporting.evidently_pages import classification_page

# The study's reported test accuracies (docs/study-notes.md), shown beside ours.
STUDY_ROWS = (
    ("A", "LSTM, 1 layer (units 32-180)", "0.489 - 0.578",
     "shuffled split, scaler fitted on all days, 23-45 test samples, no baseline"),
    ("A", "GRU, 1 layer (units 32-180)", "0.489 - 0.600", "as above"),
    ("A", "stacked LSTM / GRU", "0.467 - 0.578", "as above"),
    ("B", "LSTM / GRU, 1 layer", "0.73 - 0.87",
     "predicts up for every sample: the share of up days"),
)
STUDY_TEST_SAMPLES = 45  # the largest test set the studies used
_WHAT = "accuracy of every model and baseline on the walk-forward test days"



# ---------------------------------------------------------------- numbers for the page

def calibration_bins(label: np.ndarray, proba: np.ndarray, bins: int = BANDS
                     ) -> list[dict[str, Any]]:
    """Equal-width probability bins (``calibration.reliability``'s bands): count, mean
    predicted probability, and the observed share of up days as ``observed``."""
    return [band | {"observed": band["share"]} for band in reliability(proba, label, bins)]


def leaderboard_rows(board: Leaderboard, cards: dict[str, dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """One row per model and baseline, the champion first, then by test MCC."""
    rows = []
    for name, row in board.models.items():
        card = cards.get(name, {})
        test = row.test
        training = row.training or {}
        device = (card.get("device") or board.device or {}) if row.kind == "network" else None
        rows.append({
            "model": name, "kind": row.kind, "champion": name == board.champion,
            "accuracy": test["accuracy"], "balanced_accuracy": test["balanced_accuracy"],
            "balanced_accuracy_ci": test["balanced_accuracy_ci"],
            "mcc": test["mcc"], "mcc_ci": test["mcc_ci"], "f1": test.get("f1"),
            "roc_auc": test.get("roc_auc"), "brier": test.get("brier"),
            "validation_mcc": row.validation.get("mcc"),
            "validation_mcc_ci": row.validation.get("mcc_ci"),
            "p_value": row.vs_best_baseline["p_value_one_sided"],
            "versus": row.vs_best_baseline["baseline"],
            "seconds": training.get("seconds_total"),
            "params": (card.get("params") or {}).get("total"),
            "device": _device_text(device),
            "seeds": (row.test_by_seed or {}).get("mcc"),
            "reads": row.reads,
            "features": row.features,
            "calibration": row.calibration,  # test Brier / ECE, raw and through each map
        })
    rows.sort(key=lambda r: (not r["champion"], -score(r["mcc"])))
    return rows


def _device_text(device: dict[str, Any] | None) -> str:
    if not device:
        return ""
    name = device.get("name") or device.get("kind") or ""
    kind = device.get("kind") or ""
    return f"{kind} ({name})" if name and name != kind else str(kind)



# ---------------------------------------------------------------- the page

def accuracy_report(predictions_path: Path | str, board: Leaderboard,
                    cards: dict[str, dict[str, Any]], out_dir: Path | str,
                    rolling_window: int, equity_path: Path | str | None = None,
                    leaderboard_md5: str | None = None,
                    page_header: dict[str, Any] | None = None, index: Any = None
                    ) -> dict[str, Any]:
    """Write the accuracy page, Evidently's classification page and ``accuracy.json`` in
    ``out_dir`` (names: ``pipelines/core/files.yaml``).

    ``rolling_window``: days of the rolling accuracy (``evaluate.rolling_window``).
    ``equity_path``: the backtest's equity curves, drawn beside the figures of
    ``board.backtest``. ``leaderboard_md5``: the MD5 of the file ``board`` was read from,
    recorded in ``accuracy.json`` so that the front page knows which leaderboard its rows
    come from. ``page_header``: the project's header (``html.header``); without it, one
    with the champion's name and no versions, its front page ``../index.html``. ``index``:
    the target's name for the title (``display.index_html``), with several targets."""
    out = Path(out_dir)
    predictions = pd.read_parquet(predictions_path)
    predictions["date"] = pd.to_datetime(predictions["date"])
    test = predictions[predictions["split"] == "test"]
    rows = leaderboard_rows(board, cards)
    names = [r["model"] for r in rows]
    networks = [r["model"] for r in rows if r["kind"] == "network"]
    best_baseline = board.best_baseline_on_test
    compared = list(dict.fromkeys(networks + [board.champion, best_baseline]))
    classification = out / FILES["classification_page"]  # the champion first, then as ranked
    classification_page(
        predictions, [name for name in names if name in compared], classification,
        champion=board.champion, page_header=page_header or header(
            classification, out.parent / PAGE, "", model=board.champion))

    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    rolling = _rolling_charts(test, rolling_window, names, board, colours)
    curves = _calibration(test, names, board)
    by_name = {r["model"]: r for r in rows}
    n_test = board.days.test
    always_up = by_name.get("always_up", {}).get("accuracy")
    half_width = 1.96 * np.sqrt(0.25 / STUDY_TEST_SAMPLES)
    summary = {"leaderboard_md5": leaderboard_md5, "champion": board.champion,
               "test_days": n_test, "test_first": board.days.test_first,
               "test_last": board.days.test_last, "leaderboard": rows,
               "confusion": {name: board.models[name].test["confusion"] for name in names},
               "calibration": curves}
    backtest = board.backtest
    equity_chart = _equity_chart(backtest, equity_path)
    summary["backtest"] = backtest
    network_beat = any(score(r["mcc"]) > score(by_name[best_baseline]["mcc"])
                       for r in rows if r["kind"] == "network")
    page, stamp = out / PAGE, generated()
    render("accuracy.html", page, header=page_header or header(
               page, out.parent / PAGE, _WHAT, model=board.champion), board=board, rows=rows,
           backtest=backtest, equity_chart=equity_chart, network_beat=network_beat,
           confusion=summary["confusion"], calibration=curves,
           **rolling, rolling_window=rolling_window,
           calibration_chart=calibration_chart(curves, colours=colours), study_rows=STUDY_ROWS,
           study_half_width=half_width, study_samples=STUDY_TEST_SAMPLES,
           always_up=always_up, networks=networks, n_test=n_test,
           generated=stamp, generated_at=tehran_time(stamp["utc"]), index=index)
    write_json(out / FILES["accuracy_summary"], summary)
    return summary


def _rolling_charts(test: pd.DataFrame, window: int, names: list[str], board: Leaderboard,
                    colours: dict[str, str]) -> dict[str, Any]:
    """The rolling accuracy's charts: the champion's and the best baseline's lines (the
    chart shown), and every model's (the chart behind a <details>)."""
    table = rolling_accuracy(test, window, min_periods=min(window, 5))
    rolling = {name: table[name] for name in names if name in table}
    pair = (board.champion, board.best_baseline_on_test)
    shown = {name: rolling[name] for name in pair if name in rolling}
    return {"rolling_chart": line_chart(shown, highlight=(board.champion,), colours=colours,
                                        y_label="share right"),
            "rolling_all": line_chart(rolling, highlight=pair, colours=colours,
                                      y_label="share right"),
            "rolling_shown": list(shown)}


def _calibration(test: pd.DataFrame, names: list[str], board: Leaderboard
                 ) -> dict[str, Any]:
    """Each probability model's calibration bins on the test days (a rule's 0/1 forecasts
    have none)."""
    curves = {}
    for name in names:
        rows_of = test[test["model"] == name]
        if board.is_network(name) or rows_of["probability_up"].nunique() > 2:
            curves[name] = calibration_bins(rows_of["label"], rows_of["probability_up"])
    return curves


def _equity_chart(backtest: dict[str, Any] | None, equity_path: Path | str | None
                  ) -> str | None:
    """The backtest's equity curves as a chart (None without a backtest or its curves)."""
    if not backtest or not equity_path or not Path(equity_path).exists():
        return None
    equity = pd.read_csv(equity_path, parse_dates=["date"]).set_index("date")
    equity = equity.rename(columns={"champion": backtest["champion"]})
    low, high = float(equity.min().min()), float(equity.max().max())
    pad = (high - low) * 0.05 or 0.1
    return line_chart({name: equity[name] for name in equity.columns},
                      y_range=(max(low - pad, 0.0), high + pad), reference=1.0,
                      highlight=(backtest["champion"],), y_label="equity (1 at the start)")


def build_accuracy(paths: Paths, walk: EvaluateSection, target: str | None
                   ) -> dict[str, Path]:
    """The accuracy stage for one target (its ``paths``): the pages of
    ``paths.accuracy_dir`` from the evaluation; ``target`` named in their titles (None: the
    project's one target, named on the front page)."""
    board = Leaderboard.read(paths.leaderboard)
    champion = _json_or_none(paths.champion_record)
    what = f"{_WHAT} for {index_label(target)}" if target else _WHAT
    page_header = header(paths.accuracy_page, paths.front_page, what,
                         model=model_version(champion) or board.champion,
                         data=evaluated_data(board, champion))
    accuracy_report(paths.predictions, board,
                    model_cards(paths.models_dir), paths.accuracy_dir,
                    rolling_window=walk.rolling_window, equity_path=paths.equity_plot,
                    leaderboard_md5=file_md5(paths.leaderboard), page_header=page_header,
                    index=index_html(target) if target else None)
    return {"accuracy": paths.accuracy_page, "classification": paths.classification_page}


def evaluated_data(board: Leaderboard, champion: dict[str, Any] | None) -> str:
    """The header's data line of the accuracy page: the dataset the models were evaluated
    on (the champion record's, written by the same run as the evaluation) and its spans.

    Not the merge summary's: after a daily run that one names a newer dataset than the
    evaluation's, and reading it would redraw these pages every day."""
    days = board.days
    spans = (f"validation {days.validation_first} .. {days.validation_last}, "
             f"test {days.test_first} .. {days.test_last}")
    md5 = (champion or {}).get("data_version")
    return f"dataset {md5[:8]} ({spans})" if md5 else spans


def _json_or_none(path: Path) -> dict[str, Any] | None:
    """A JSON object the header reads (the champion record, the merge summary), None when
    it is missing or damaged: the page is drawn without that line."""
    try:
        read = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return read if isinstance(read, dict) else None
