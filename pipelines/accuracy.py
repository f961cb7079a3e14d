"""The accuracy report: how every model and baseline did on the walk-forward test days.

``accuracy_report`` writes ``<accuracy_dir>/index.html`` (the project's own page: the
leaderboard with intervals and tests, confusion matrices, rolling accuracy, calibration,
the backtest's equity curves, the study's numbers beside ours),
``<accuracy_dir>/classification.html`` (Evidently's classification report of the
walk-forward predictions, ``pipelines.evidently_pages``) and ``accuracy.json`` (the
leaderboard rows the front page shows). The pages depend only on the evaluation and the
model cards, so ``dvc repro`` redraws them when those change (a training run), not on each
daily run; the front page (``pipelines.report``) reads ``accuracy.json``. Pages are Jinja2
templates with autoescaping, their own CSS and inline SVG charts (``pipelines.charts``);
they request nothing from any other host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.charts import PALETTE, calibration_chart, line_chart
from pipelines.config import ACCURACY_SUMMARY
from pipelines.evidently_pages import classification_page
from pipelines.fileio import file_md5, write_json
from pipelines.leaderboard import Leaderboard, model_cards, score
from pipelines.metrics import rolling_accuracy
from pipelines.report_html import generated, render

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



# ---------------------------------------------------------------- numbers for the page

def calibration_bins(label: np.ndarray, proba: np.ndarray, bins: int = 10
                     ) -> list[dict[str, Any]]:
    """Equal-width probability bins: count, mean predicted probability, observed share."""
    label = np.asarray(label, dtype="float64")
    proba = np.clip(np.asarray(proba, dtype="float64"), 0.0, 1.0)
    which = np.minimum((proba * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        rows.append({"low": b / bins, "high": (b + 1) / bins, "n": n,
                     "mean_predicted": float(proba[mask].mean()) if n else None,
                     "observed": float(label[mask].mean()) if n else None})
    return rows


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
            "validation_mcc": row.validation["mcc"],
            "p_value": row.vs_best_baseline["p_value_one_sided"],
            "versus": row.vs_best_baseline["baseline"],
            "seconds": training.get("seconds_total"),
            "params": (card.get("params") or {}).get("total"),
            "device": _device_text(device),
            "seeds": (row.test_by_seed or {}).get("mcc"),
            "reads": row.reads,
            "features": row.features,
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
                    rolling_window: int = 40, calibration_bins_n: int = 10,
                    equity_path: Path | str | None = None,
                    leaderboard_md5: str | None = None) -> dict[str, Any]:
    """Write ``index.html``, ``classification.html`` and ``accuracy.json`` in ``out_dir``.

    ``equity_path``: the backtest's equity curves (``plots/equity.csv``), drawn beside the
    figures of ``board.backtest``. ``leaderboard_md5``: the MD5 of the file ``board`` was
    read from, recorded in ``accuracy.json`` so that the front page knows which
    leaderboard its rows come from.
    """
    out = Path(out_dir)
    predictions = pd.read_parquet(predictions_path)
    predictions["date"] = pd.to_datetime(predictions["date"])
    test = predictions[predictions["split"] == "test"]
    rows = leaderboard_rows(board, cards)
    names = [r["model"] for r in rows]
    networks = [r["model"] for r in rows if r["kind"] == "network"]
    best_baseline = board.best_baseline_on_test
    compared = list(dict.fromkeys(networks + [board.champion, best_baseline]))
    classification_page(predictions, compared, out / "classification.html")

    rolling_table = rolling_accuracy(test, rolling_window, min_periods=min(rolling_window, 5))
    rolling = {name: rolling_table[name] for name in names if name in rolling_table}
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    curves = {}
    for name in names:
        rows_of = test[test["model"] == name]
        if board.is_network(name) or rows_of["probability_up"].nunique() > 2:
            curves[name] = calibration_bins(rows_of["label"], rows_of["probability_up"],
                                            calibration_bins_n)
    by_name = {r["model"]: r for r in rows}
    n_test = board.days.test
    always_up = by_name.get("always_up", {}).get("accuracy")
    half_width = 1.96 * np.sqrt(0.25 / STUDY_TEST_SAMPLES)
    summary = {
        "leaderboard_md5": leaderboard_md5,
        "champion": board.champion,
        "test_days": n_test,
        "test_first": board.days.test_first,
        "test_last": board.days.test_last,
        "leaderboard": rows,
        "confusion": {name: board.models[name].test["confusion"] for name in names},
        "calibration": curves,
    }
    backtest = board.backtest
    equity_chart = None
    if backtest and equity_path and Path(equity_path).exists():
        equity = pd.read_csv(equity_path, parse_dates=["date"]).set_index("date")
        equity = equity.rename(columns={"champion": backtest["champion"]})
        low, high = float(equity.min().min()), float(equity.max().max())
        pad = (high - low) * 0.05 or 0.1
        equity_chart = line_chart({name: equity[name] for name in equity.columns},
                                  y_range=(max(low - pad, 0.0), high + pad), reference=1.0,
                                  highlight=(backtest["champion"],))
    summary["backtest"] = backtest
    network_beat = any(score(r["mcc"]) > score(by_name[best_baseline]["mcc"])
                       for r in rows if r["kind"] == "network")
    render("accuracy.html", out / "index.html", board=board, rows=rows,
           backtest=backtest, equity_chart=equity_chart, network_beat=network_beat,
           confusion=summary["confusion"], calibration=curves,
           rolling_chart=line_chart(rolling, highlight=(board.champion, best_baseline),
                                    colours=colours),
           rolling_window=rolling_window,
           calibration_chart=calibration_chart(curves, colours=colours), study_rows=STUDY_ROWS,
           study_half_width=half_width, study_samples=STUDY_TEST_SAMPLES,
           always_up=always_up, networks=networks, n_test=n_test,
           generated=generated())
    write_json(out / ACCURACY_SUMMARY, summary)
    return summary


def build_accuracy(where: Any, rolling_window: int = 40) -> dict[str, Path]:
    """The accuracy stage: the pages of ``where.accuracy_dir`` (``config.Paths``)."""
    accuracy_report(where.predictions, Leaderboard.read(where.leaderboard),
                    model_cards(where.models_dir), where.accuracy_dir,
                    rolling_window=rolling_window,
                    equity_path=where.evaluation_dir / "plots" / "equity.csv",
                    leaderboard_md5=file_md5(where.leaderboard))
    return {"accuracy": where.accuracy_dir / "index.html",
            "classification": where.accuracy_dir / "classification.html"}
