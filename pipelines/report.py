"""The HTML reports a reviewer reads: the accuracy report and the front page.

``accuracy_report`` writes ``<accuracy_dir>/index.html`` (the project's own page: the
leaderboard with intervals and tests, confusion matrices, rolling accuracy, calibration,
the study's numbers beside ours) and ``<accuracy_dir>/classification.html`` (Evidently's
classification report of the walk-forward predictions). ``front_page`` writes
``reports/index.html``: tomorrow's forecast, data health, drift, models, versions and
links to every detailed report.

Pages are Jinja2 templates with autoescaping (index names and file names are untrusted),
carry their own CSS and inline SVG charts, and request nothing from any other host.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from pipelines.evaluate import rolling_accuracy
from pipelines.features import describe
from pipelines.fileio import atomic_path, write_json
from pipelines.report_html import render

TEHRAN = "Asia/Tehran"
PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#57606a", "#bf3989",
           "#0a3069")
# The study's reported test accuracies (../shared/docs/study-notes.md), shown beside ours.
STUDY_ROWS = (
    ("A", "LSTM, 1 layer (units 32-180)", "0.489 - 0.578",
     "shuffled split, scaler fitted on all days, 23-45 test samples, no baseline"),
    ("A", "GRU, 1 layer (units 32-180)", "0.489 - 0.600", "as above"),
    ("A", "stacked LSTM / GRU", "0.467 - 0.578", "as above"),
    ("B", "LSTM / GRU, 1 layer", "0.73 - 0.87",
     "predicts up for every sample: the share of up days"),
)
STUDY_TEST_SAMPLES = 45  # the largest test set the studies used


def _read_json(path: Path | str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- charts (inline SVG)

def line_chart(series: dict[str, pd.Series], width: int = 860, height: int = 260,
               y_range: tuple[float, float] = (0.0, 1.0), reference: float | None = 0.5,
               highlight: tuple[str, ...] = (), colours: dict[str, str] | None = None
               ) -> Markup:
    """An inline SVG line chart of date-indexed series (names escaped), with a legend."""
    left, right, top, bottom = 44, 150, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    dates = sorted({d for s in series.values() for d in s.index})
    if not dates:
        return Markup("<p class='muted'>no data to plot</p>")
    first, last = dates[0], dates[-1]
    span = max((last - first).days, 1)
    low, high = y_range

    def x(day: pd.Timestamp) -> float:
        return left + plot_w * (day - first).days / span

    def y(value: float) -> float:
        return top + plot_h * (1 - (min(max(value, low), high) - low) / (high - low))

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for tick in np.linspace(low, high, 5):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#d0d7de" stroke-width="1"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#57606a">{tick:.2f}</text>')
    if reference is not None:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(reference):.1f}" '
                     f'y2="{y(reference):.1f}" stroke="#57606a" stroke-dasharray="4 3"/>')
    for day, anchor in ((first, "start"), (last, "end")):
        parts.append(f'<text x="{x(day):.1f}" y="{height - 8}" text-anchor="{anchor}" '
                     f'font-size="11" fill="#57606a">{day:%Y-%m-%d}</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        values = values.dropna()
        if values.empty:
            continue
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in values.items())
        weight = 2.5 if name in highlight else 1.3
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{weight}" '
                     f'points="{points}"><title>{escape(name)}</title></polyline>')
        legend_y = top + 14 + 16 * i
        parts.append(f'<rect x="{width - right + 12}" y="{legend_y - 9}" width="12" height="4" '
                     f'fill="{colour}"/><text x="{width - right + 30}" y="{legend_y}" '
                     f'font-size="12" fill="#1f2328">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def calibration_chart(curves: dict[str, list[dict[str, Any]]], size: int = 300,
                      colours: dict[str, str] | None = None) -> Markup:
    """Reliability diagram: observed share of up days against the mean probability."""
    pad = 36
    inner = size - 2 * pad

    def xy(p: float, q: float) -> tuple[float, float]:
        return pad + inner * p, size - pad - inner * q

    parts = [f'<svg class="chart" viewBox="0 0 {size + 140} {size}" width="{size + 140}" '
             f'height="{size}" role="img" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" '
             f'stroke="#d0d7de"/>',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" '
             f'stroke="#57606a" stroke-dasharray="4 3"/>',
             f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="11" '
             f'fill="#57606a">mean predicted probability of up</text>',
             f'<text x="12" y="{size / 2}" font-size="11" fill="#57606a" '
             f'transform="rotate(-90 12 {size / 2})" text-anchor="middle">observed share up</text>']
    for i, (name, bins) in enumerate(curves.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        points = [xy(b["mean_predicted"], b["observed"]) for b in bins if b["n"]]
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
            parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>'
                      for a, b in points]
        parts.append(f'<rect x="{size + 8}" y="{pad + 16 * i - 9}" width="12" height="4" '
                     f'fill="{colour}"/><text x="{size + 26}" y="{pad + 16 * i}" '
                     f'font-size="12" fill="#1f2328">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# ---------------------------------------------------------------- numbers for the pages

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


def leaderboard_rows(board: dict[str, Any], cards: dict[str, dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """One row per model and baseline, the champion first, then by test MCC."""
    rows = []
    for name, row in board["models"].items():
        card = cards.get(name, {})
        test = row["test"]
        training = row.get("training") or {}
        device = (card.get("device") or board.get("device") or {}) if row["kind"] == "network" \
            else None
        rows.append({
            "model": name, "kind": row["kind"], "champion": name == board["champion"],
            "accuracy": test["accuracy"], "balanced_accuracy": test["balanced_accuracy"],
            "balanced_accuracy_ci": test["balanced_accuracy_ci"],
            "mcc": test["mcc"], "mcc_ci": test["mcc_ci"], "f1": test.get("f1"),
            "roc_auc": test.get("roc_auc"), "brier": test.get("brier"),
            "validation_mcc": row["validation"]["mcc"],
            "p_value": row["vs_best_baseline"]["p_value_one_sided"],
            "versus": row["vs_best_baseline"]["baseline"],
            "seconds": training.get("seconds_total"),
            "params": (card.get("params") or {}).get("total"),
            "device": _device_text(device),
            "seeds": (row.get("test_by_seed") or {}).get("mcc"),
            "reads": row.get("reads", ""),
            "features": row.get("features") or [],
        })
    rows.sort(key=lambda r: (not r["champion"], -_finite(r["mcc"])))
    return rows


def _finite(value: Any) -> float:
    return float(value) if value is not None and np.isfinite(value) else float("-inf")


def _device_text(device: dict[str, Any] | None) -> str:
    if not device:
        return ""
    name = device.get("name") or device.get("kind") or ""
    kind = device.get("kind") or ""
    return f"{kind} ({name})" if name and name != kind else str(kind)


def model_cards(models_dir: Path | str) -> dict[str, dict[str, Any]]:
    cards = {}
    for card in sorted(Path(models_dir).glob("*/card.json")):
        cards[card.parent.name] = _read_json(card)
    return cards


# ---------------------------------------------------------------- Evidently

def evidently_classification(predictions: pd.DataFrame, models: list[str],
                             out_html: Path) -> None:
    """Evidently's classification report: validation days as reference, test as current.

    One ``BinaryClassification`` per model (label, predicted class, probability of up),
    one ``ClassificationPreset`` each. Model names are neutralised for HTML as in the
    drift report (Evidently 0.7.23 does not escape names).
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    from pipelines.drift import html_safe_name

    safe = {name: html_safe_name(name) for name in models}
    definition = DataDefinition(
        numerical_columns=[f"{safe[m]} probability" for m in models],
        categorical_columns=["label"] + [f"{safe[m]} predicted" for m in models],
        classification=[BinaryClassification(
            name=safe[m], target="label", prediction_labels=f"{safe[m]} predicted",
            prediction_probas=f"{safe[m]} probability", pos_label=1) for m in models],
    )

    def wide(split: str) -> Any:
        rows = predictions[(predictions["split"] == split) & predictions["model"].isin(models)]
        label = rows.drop_duplicates("date").set_index("date")["label"].astype(int)
        frame = pd.DataFrame({"label": label})
        for m in models:
            own = rows[rows["model"] == m].set_index("date")
            frame[f"{safe[m]} predicted"] = own["predicted"].astype(int)
            frame[f"{safe[m]} probability"] = own["probability_up"].astype("float64")
        return Dataset.from_pandas(frame.reset_index(drop=True), data_definition=definition)

    report = Report([ClassificationPreset(classification_name=safe[m]) for m in models],
                    include_tests=False)
    snapshot = report.run(wide("test"), wide("validation"))
    with atomic_path(out_html) as tmp:
        snapshot.save_html(str(tmp))  # Evidently 0.7 silently writes nothing for a Path
        if tmp.stat().st_size == 0:
            raise RuntimeError("report: Evidently wrote an empty classification report")


# ---------------------------------------------------------------- the pages

def accuracy_report(predictions_path: Path | str, board: dict[str, Any],
                    cards: dict[str, dict[str, Any]], out_dir: Path | str,
                    rolling_window: int = 40, calibration_bins_n: int = 10,
                    equity_path: Path | str | None = None) -> dict[str, Any]:
    """Write ``index.html``, ``classification.html`` and ``accuracy.json`` in ``out_dir``.

    ``equity_path``: the backtest's equity curves (``plots/equity.csv``), drawn beside the
    figures of ``board["backtest"]``.
    """
    out = Path(out_dir)
    predictions = pd.read_parquet(predictions_path)
    predictions["date"] = pd.to_datetime(predictions["date"])
    test = predictions[predictions["split"] == "test"]
    rows = leaderboard_rows(board, cards)
    names = [r["model"] for r in rows]
    networks = [r["model"] for r in rows if r["kind"] == "network"]
    best_baseline = board["best_baseline_on_test"]
    compared = list(dict.fromkeys(networks + [board["champion"], best_baseline]))
    evidently_classification(predictions, compared, out / "classification.html")

    rolling_table = rolling_accuracy(test, rolling_window, min_periods=min(rolling_window, 5))
    rolling = {name: rolling_table[name] for name in names if name in rolling_table}
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    curves = {}
    for name in names:
        rows_of = test[test["model"] == name]
        if board["models"][name]["kind"] == "network" or rows_of["probability_up"].nunique() > 2:
            curves[name] = calibration_bins(rows_of["label"], rows_of["probability_up"],
                                            calibration_bins_n)
    by_name = {r["model"]: r for r in rows}
    n_test = int(board["days"]["test"])
    always_up = by_name.get("always_up", {}).get("accuracy")
    half_width = 1.96 * np.sqrt(0.25 / STUDY_TEST_SAMPLES)
    summary = {
        "champion": board["champion"],
        "test_days": n_test,
        "test_first": board["days"]["test_first"],
        "test_last": board["days"]["test_last"],
        "leaderboard": rows,
        "confusion": {name: board["models"][name]["test"]["confusion"] for name in names},
        "calibration": curves,
    }
    backtest = board.get("backtest")
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
    network_beat = any(_finite(r["mcc"]) > _finite(by_name[best_baseline]["mcc"])
                       for r in rows if r["kind"] == "network")
    render("accuracy.html", out / "index.html", board=board, rows=rows,
           backtest=backtest, equity_chart=equity_chart, network_beat=network_beat,
           confusion=summary["confusion"], calibration=curves,
           rolling_chart=line_chart(rolling, highlight=(board["champion"], best_baseline),
                                    colours=colours),
           rolling_window=rolling_window,
           calibration_chart=calibration_chart(curves, colours=colours), study_rows=STUDY_ROWS,
           study_half_width=half_width, study_samples=STUDY_TEST_SAMPLES,
           always_up=always_up, networks=networks, n_test=n_test,
           generated=_now())
    write_json(out / "accuracy.json", summary)
    return summary


def _now() -> dict[str, str]:
    from zoneinfo import ZoneInfo

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {"utc": now.isoformat(), "tehran": f"{now.astimezone(ZoneInfo(TEHRAN)):%Y-%m-%d %H:%M}"}


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tsepipe", "prefect", "dvc", "tensorflow-cpu", "tensorflow", "keras",
                    "great-expectations", "evidently", "pandas", "pyarrow"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def front_page(out: Path | str, *, validation: dict[str, Any], merge: dict[str, Any],
               board: dict[str, Any], drift: dict[str, Any], forecast: dict[str, Any],
               cards: dict[str, dict[str, Any]], accuracy: dict[str, Any],
               links: dict[str, Path], raw_md5: str | None = None,
               git_commit: str | None = None, last_data_run: str | None = None) -> Path:
    """Write the front page ``out`` from the stages' JSON outputs (all strings escaped)."""
    page = Path(out)
    champion = board["champion"]
    champion_row = next(r for r in accuracy["leaderboard"] if r["model"] == champion)
    best = board["best_baseline_on_test"]
    best_row = next(r for r in accuracy["leaderboard"] if r["model"] == best)
    from pipelines.drift import ranked_drifted

    drifted = [(f["feature"], drift["features"][f["feature"]])
               for f in ranked_drifted(drift["features"])]
    names = {i["index_id"]: i["index_name"] for i in merge["indices"]}
    files = validation["files"]
    attention = []
    if not validation["passed"]:
        attention.append("validation failed")
    if validation["files_quarantined"]:
        attention.append(f"{validation['files_quarantined']} file(s) quarantined")
    excluded = [i for i in merge["indices"] if not i["included"]]
    if excluded:
        attention.append(f"{len(excluded)} index(es) left out of the merge")
    dropped_rows = [{"file": f["file"], "unit": f.get("unit", "line")} | row
                    for f in files if f["usable"] for row in f.get("dropped_rows", [])]
    if dropped_rows:
        attention.append(f"{len(dropped_rows)} bad row(s) dropped")
    if drift["dataset_drift"]:
        attention.append("data drift")
    if forecast.get("note"):
        attention.append(f"{forecast['champion']} forecasts in place of {champion}")
    if board["models"][champion]["kind"] != "network":
        attention.append(f"no network beats the best baseline: {champion} is the champion")
    elif _finite(champion_row["mcc"]) < _finite(best_row["mcc"]):
        attention.append(f"the champion scores below {best} on the test days")
    return render(
        "index.html", page, forecast=forecast, validation=validation, merge=merge,
        files=files, board=board, drift=drift, drifted=drifted[:10], index_names=names,
        champion=champion_row, best=best_row, cards=cards, attention=attention,
        links={k: _relative(v, page) for k, v in links.items()},
        versions=_versions(), raw_md5=raw_md5, git_commit=git_commit,
        last_data_run=last_data_run, generated=_now(),
        excluded=excluded, dropped_rows=dropped_rows, backtest=board.get("backtest"),
        drift_kinds=describe(list(drift["features"])),
    )


def build_reports(where: Any, raw_dvc: Path | None = None, rolling_window: int = 40
                  ) -> dict[str, Path]:
    """The report stage: the accuracy report, then the front page (``config.Paths``)."""
    import yaml

    from pipelines.train import git_commit

    board = _read_json(where.leaderboard)
    cards = model_cards(where.models_dir)
    accuracy = accuracy_report(where.predictions, board, cards,
                               where.accuracy_dir, rolling_window=rolling_window,
                               equity_path=where.evaluation_dir / "plots" / "equity.csv")
    raw_md5 = None
    if raw_dvc is not None and raw_dvc.exists():
        raw_md5 = (yaml.safe_load(raw_dvc.read_text(encoding="utf-8")) or {}).get(
            "outs", [{}])[0].get("md5")
    runs = Path(where.front_page).parent / "runs.jsonl"
    last_run = None
    if runs.exists():
        lines = [line for line in runs.read_text(encoding="utf-8").splitlines() if line.strip()]
        last_run = json.loads(lines[-1]).get("finished") if lines else None
    links = {"validation": where.validation_report_dir / "index.html",
             "accuracy": where.accuracy_dir / "index.html",
             "classification": where.accuracy_dir / "classification.html",
             "drift": where.drift_dir / "index.html"}
    front_page(where.front_page, validation=_read_json(where.validation_summary),
               merge=_read_json(where.merge_summary), board=board,
               drift=_read_json(where.drift_summary),
               forecast=_read_json(where.forecast), cards=cards,
               accuracy=accuracy, links=links, raw_md5=raw_md5, git_commit=git_commit(),
               last_data_run=last_run)
    return {"front_page": Path(where.front_page), **links}
