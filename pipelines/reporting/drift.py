"""Data drift of the stationary features, the predicted probability and the label (Evidently).

The reference is the champion's training window, the current data the most recent
trading days; the champion's probability of up on each day is read from what the
predict stage wrote (``predict.champion_days``), so this stage loads no model.
Evidently 0.7's ``Report`` runs ``DataDriftPreset`` (one ``ValueDrift`` per feature and a
``DriftedColumnsCount``) plus a ``ValueDrift`` for the prediction and the target; the
numbers come from the snapshot's ``dict()`` form, never from the HTML.
A column is drifted when Evidently's own per-column test fails: by default a two-sample
Kolmogorov-Smirnov test at p < 0.01 (``drift.method`` / ``drift.method_threshold``).
Evidently's own default switches to a Wasserstein distance above 0.1 once the reference
has 1,000 rows; 60 current days of unchanged sample data cross that by noise alone (42 of
45 features "drifted"), while K-S at 0.01 flags 1 of 45.

Only stationary features are accepted (names ending in ``__`` and one of
``features.FEATURES``): raw price levels drift by construction.

The stage writes Evidently's report (``evidently.html``), the summary (``drift.json``,
with what the champion was trained on: ``refit_would_add`` reads it for the monitor), one
line per report in the history (``history.jsonl``, one per current span) and the drift
page (``index.html``): the share and the most drifted features' scores over the reports,
every feature ranked most drifted first with its score labelled.

Evidently 0.7.23 writes column names unescaped into a ``<script>`` block of the HTML,
so a name containing ``</script>`` would break out of it. Index names are untrusted:
the report is run on names with ``<``, ``>`` and ``&`` replaced by look-alike
characters (``evidently_pages.html_safe_name``); the JSON keeps the original names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.columns import COLUMN_SEPARATOR
from pipelines.core.display import index_html, index_label, index_name, tehran_time
from pipelines.core.errors import DataError
from pipelines.core.fileio import read_jsonl, write_json, write_text
from pipelines.core.html import add_header, generated, header, render
from pipelines.core.params.data import DataSection
from pipelines.core.params.drift import DriftSection
from pipelines.core.params.features import FeaturesSection
from pipelines.core.params.paths import Paths
from pipelines.modelling.features import FEATURES, FeatureTable, dataset_table
from pipelines.reporting.charts import PALETTE, line_chart
from pipelines.reporting.evidently_pages import (
    html_safe_name,
    page_versions,
    ranked_features,
    save_html,
    score_label,
)

STATIONARY_SUFFIXES = tuple(f"{COLUMN_SEPARATOR}{name}" for name in FEATURES)
TREND_FEATURES = 5  # the most drifted features drawn over the runs on the drift page


def _span(frame: pd.DataFrame) -> dict[str, Any]:
    dates = pd.to_datetime(frame["date"]) if "date" in frame else None
    return {
        "rows": int(len(frame)),
        "first_date": None if dates is None or dates.empty else f"{dates.min():%Y-%m-%d}",
        "last_date": None if dates is None or dates.empty else f"{dates.max():%Y-%m-%d}",
    }


def _check_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str],
                   prediction_column: str | None, target_column: str | None) -> None:
    if not columns:
        raise ValueError("drift: no feature columns given")
    if len(set(columns)) != len(columns):
        raise ValueError("drift: feature columns repeat")
    levels = [c for c in columns if not c.endswith(STATIONARY_SUFFIXES)]
    if levels:
        raise ValueError(f"drift: only stationary features ({', '.join(STATIONARY_SUFFIXES)}) "
                         f"are compared, got {levels[:5]}")
    extra = [c for c in (prediction_column, target_column) if c is not None]
    if set(extra) & set(columns) or len(set(extra)) != len(extra):
        raise ValueError("drift: prediction, target and feature columns must differ")
    for side, frame in (("reference", reference), ("current", current)):
        if frame.empty:
            raise ValueError(f"drift: the {side} data has no rows")
        missing = [c for c in columns + extra if c not in frame.columns]
        if missing:
            raise ValueError(f"drift: the {side} data lacks columns {missing[:5]}")
        not_numeric = [c for c in columns + extra
                       if not pd.api.types.is_numeric_dtype(frame[c])]
        if not_numeric:
            raise ValueError(f"drift: non-numeric columns in the {side} data: {not_numeric[:5]}")
    safe = [html_safe_name(c) for c in columns + extra]
    if len(set(safe)) != len(safe):
        raise ValueError("drift: column names collide once made safe for HTML")


def _known(frame: pd.DataFrame, column: str) -> bool:
    return bool(frame[column].notna().any())


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str],
                 out_html: Path, out_json: Path, settings: DriftSection | None = None,
                 prediction_column: str | None = None, target_column: str | None = None,
                 context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-feature drift, share of drifted features, prediction and target drift.

    Writes the self-contained Evidently HTML to ``out_html`` and the returned summary to
    ``out_json``, both atomically. ``settings``: params.yaml's ``drift:`` (the schema's
    defaults when not given): ``dataset_drift`` is ``share_of_drifted_features >=
    threshold``; ``method`` / ``method_threshold`` are Evidently's test for the numeric
    columns and its threshold (a p-value for ``ks``); a null method is Evidently's
    default, which switches to a Wasserstein distance of 0.1 above 1,000 reference rows,
    a bar that 60 current days of unchanged data exceed by sampling noise alone.
    ``prediction_drift`` / ``target_drift`` are None when the column is not given, and
    hold None values when it has no known value on one side (e.g. labels of the last
    days). ``context`` (e.g. which model, which window) is added to the summary.
    """
    settings = settings or DriftSection()
    if settings.threshold <= 0:
        raise ValueError(f"drift: threshold must be within (0, 1], got {settings.threshold}")
    _check_columns(reference, current, columns, prediction_column, target_column)
    snapshot, per_column, compared = _run_evidently(reference, current, columns, settings,
                                                    prediction_column, target_column)
    features = {c: per_column[c] for c in columns}
    share = sum(f["drifted"] for f in features.values()) / len(columns)

    def side(column: str | None) -> dict[str, Any] | None:
        if column is None:
            return None
        if column not in compared:
            return {"score": None, "drifted": None, "method": None, "threshold": None}
        found = per_column[column]
        return {"score": found["drift_score"], "drifted": found["drifted"],
                "method": found["method"], "threshold": found["threshold"]}

    summary: dict[str, Any] = {
        "features": features,
        "share_of_drifted_features": share,
        "n_drifted": sum(f["drifted"] for f in features.values()),
        "n_features": len(columns),
        "threshold": settings.threshold,
        "dataset_drift": bool(share >= settings.threshold),
        "prediction_column": prediction_column,
        "prediction_drift": side(prediction_column),
        "target_column": target_column,
        "target_drift": side(target_column),
        "reference": _span(reference),
        "current": _span(current),
        **(context or {}),
    }
    save_html(snapshot, out_html, "drift: Evidently wrote an empty HTML report")
    write_json(out_json, summary)
    return summary


def _run_evidently(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str],
                   settings: DriftSection, prediction_column: str | None,
                   target_column: str | None) -> tuple[Any, dict[str, dict[str, Any]], dict]:
    """Evidently's report on the two spans: (the snapshot, each column's verdict, the
    prediction and target columns compared)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numeric = list(columns) + ([prediction_column] if prediction_column else [])
    categorical = [target_column] if target_column else []
    used = numeric + categorical
    rename = {c: html_safe_name(c) for c in used}
    definition = DataDefinition(numerical_columns=[rename[c] for c in numeric],
                                categorical_columns=[rename[c] for c in categorical])

    def dataset(frame: pd.DataFrame) -> Any:
        part = frame[used].rename(columns=rename).reset_index(drop=True)
        for column in numeric:
            part[rename[column]] = part[rename[column]].astype("float64")
        return Dataset.from_pandas(part, data_definition=definition)

    test = {"method": settings.method, "threshold": settings.method_threshold}
    metrics: list[Any] = [DataDriftPreset(columns=[rename[c] for c in columns],
                                          drift_share=settings.threshold,
                                          num_method=settings.method,
                                          num_threshold=settings.method_threshold)]
    compared = {}
    for role, column in (("prediction", prediction_column), ("target", target_column)):
        if column is not None and _known(reference, column) and _known(current, column):
            metrics.append(ValueDrift(column=rename[column],
                                      **(test if role == "prediction" else {})))
            compared[column] = role
    snapshot = Report(metrics, include_tests=True).run(dataset(current), dataset(reference))
    per_column = _verdicts(snapshot.dict(), {safe: name for name, safe in rename.items()},
                           columns)
    return snapshot, per_column, compared


def _verdicts(raw: dict[str, Any], back: dict[str, str], columns: list[str]
              ) -> dict[str, dict[str, Any]]:
    """Each column's drift score and Evidently's own verdict, from the snapshot's dict."""
    failed = {test["metric_config"]["metric_id"]: test["status"] == "FAIL"
              for test in raw["tests"]}
    per_column: dict[str, dict[str, Any]] = {}
    count = None
    for metric in raw["metrics"]:
        config = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            per_column[back[config["column"]]] = {
                "drift_score": float(metric["value"]),
                "drifted": bool(failed[metric["id"]]),
                "method": config.get("method"),
                "threshold": config.get("threshold"),
            }
        elif kind == "DriftedColumnsCount":
            count = metric["value"]
    if count is None or any(c not in per_column for c in columns):
        raise RuntimeError("drift: Evidently's result lacks the expected metrics")
    n_drifted = sum(per_column[c]["drifted"] for c in columns)
    if int(round(count["count"])) != n_drifted:  # both are Evidently's own verdicts
        raise RuntimeError(f"drift: Evidently counts {count['count']} drifted columns, "
                           f"its per-column tests {n_drifted}")
    return per_column


def reference_and_current(table: FeatureTable, train_last_day: int, current_days: int
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature rows of days 0..train_last_day, and of the last ``current_days`` days.

    Columns: ``date``, the table's features, and ``label`` (NaN where not yet known, the
    last day). The two spans must not overlap.
    """
    n = len(table.dates)
    if not 0 <= train_last_day < n:
        raise ValueError(f"drift: train_last_day must be within 0..{n - 1}, got {train_last_day}")
    if current_days < 1:
        raise ValueError(f"drift: current_days must be >= 1, got {current_days}")
    first_current = n - current_days
    if first_current <= train_last_day:
        raise ValueError(f"drift: the last {current_days} days overlap the training window "
                         f"(days 0..{train_last_day} of {n})")
    frame = pd.DataFrame(np.asarray(table.features, dtype="float64"), columns=table.names)
    frame.insert(0, "date", pd.DatetimeIndex(table.dates))
    frame["label"] = np.asarray(table.labels, dtype="float64")
    reference = frame.iloc[: train_last_day + 1].reset_index(drop=True)
    current = frame.iloc[first_current:].reset_index(drop=True)
    return reference, current


def drift(paths: Paths, data: DataSection, features: FeaturesSection,
          settings: DriftSection, several: bool) -> dict[str, Any]:
    """The drift stage for one target (its ``paths`` and ``data``) on the merged dataset and
    the champion's probabilities of up that ``tsepipe predict`` wrote
    (``paths.champion_days``; see ``champion_drift``); ``several``: one of several targets
    (its pages name it)."""
    table, data_version = dataset_table(paths, data, features)
    summary = champion_drift(table, read_champion_days(paths.champion_days, table), paths,
                             settings, data_version)
    if several:
        summary["target"] = data.target_index
    history = record_history(paths.drift_history, summary)
    drift_page(summary, history, paths)
    return summary


def read_champion_days(path: Path, table: FeatureTable) -> pd.DataFrame:
    """``predict.champion_days`` as the predict stage wrote it, checked to be of ``table``'s
    days (a file of another dataset is a ``DataError`` that says to run predict)."""
    if not path.exists():
        raise DataError(f"{path}: the champion's probabilities are missing; run tsepipe "
                        "predict first")
    days = pd.read_parquet(path)
    dates = pd.DatetimeIndex(days["date"]) if "date" in days else pd.DatetimeIndex([])
    if not dates.equals(pd.DatetimeIndex(table.dates)) or not {
            "champion", "first_reference", "train_last_day"} <= set(days.attrs):
        raise DataError(f"{path}: the champion's probabilities are not of today's dataset "
                        f"({len(days)} days, the dataset {len(table.dates)}); run tsepipe "
                        "predict first")
    return days


def champion_drift(table: FeatureTable, days: pd.DataFrame, paths: Paths,
                   settings: DriftSection, data_version: str | None = None) -> dict[str, Any]:
    """The drift stage: the champion's training window against the latest days.

    ``days``: ``predict.champion_days``, the champion's probability of up on each day of
    ``table`` and its training span. Reference: the feature rows the champion was trained
    on (``models/champion.json``'s ``trained_on``: every labelled day at the last training
    run), from its first predicted day up to the day before the current span, so the two
    never overlap. Current: the last ``drift.current_days`` trading days. The prediction
    compared is that probability (the final models' on every day, in-sample on the
    reference; a combination's mean of its members'); the target is the label.
    Writes Evidently's drift report (with the project's header) and the summary
    (``drift.json``), which also says what the champion has seen: its last training day,
    the last labelled day (a day's label is the next day's move: the last day has none),
    the labelled days since, and ``data_version`` (the dataset's MD5, to compare with the
    one it was trained on).
    """
    current_days = settings.current_days
    n = len(table.dates)
    by_day = days["probability_up"].to_numpy(dtype="float64")
    first_reference = int(days.attrs["first_reference"])
    train_last_day = int(days.attrs["train_last_day"])
    first_current = n - current_days
    reference_last = min(train_last_day, first_current - 1)
    n_reference = reference_last - first_reference + 1
    if current_days < 1 or n_reference < current_days:
        raise DataError(f"drift: {n} feature days leave {max(n_reference, 0)} reference days "
                        f"before the last {current_days} (drift.current_days); at least as many "
                        "are needed")
    reference, current = reference_and_current(table, reference_last, current_days)
    reference["probability_up"] = by_day[: reference_last + 1]
    current["probability_up"] = by_day[first_current:]
    reference = reference.iloc[first_reference:].reset_index(drop=True)
    labelled = np.flatnonzero(~np.isnan(np.asarray(table.labels, dtype="float64")))
    context = {
        "champion": days.attrs["champion"], "champion_kind": days.attrs.get("kind", ""),
        "note": days.attrs.get("note", ""),
        "trained_on_last": f"{table.dates[train_last_day]:%Y-%m-%d}",
        "labelled_last": f"{table.dates[labelled[-1]]:%Y-%m-%d}" if len(labelled) else None,
        "new_labelled_days": int(np.sum(labelled > train_last_day)),
        "data_version": data_version,
        "reference_note": "the champion's training days before the current span"
        if reference_last < train_last_day else "the champion's training days",
    }
    summary = drift_report(reference, current, table.names, paths.drift_evidently_page,
                           paths.drift_summary, settings, prediction_column="probability_up",
                           target_column="label", context=context)
    page = paths.drift_evidently_page
    add_header(page, header(page, paths.front_page, (
        f"Evidently's drift report: the last {summary['current']['rows']} trading days "
        f"({summary['current']['first_date']} .. {summary['current']['last_date']}, current) "
        f"against {summary['reference_note']} (reference)"), **page_versions(paths)))
    return summary


# ---------------------------------------------------------------- what a refit would add

def refit_would_add(summary: dict[str, Any], champion_data_version: str | None) -> str | None:
    """What a refit of the champion would train on that it was not trained on, in words, or
    None when it would see the same days (and then retraining cannot change the models).

    ``summary``: ``drift.json`` (``new_labelled_days``, ``trained_on_last``,
    ``labelled_last``, ``data_version``); ``champion_data_version``: the dataset MD5 the
    champion was trained on (``models/champion.json``). New: the labelled days after its
    last training day; without any, a dataset other than the one it was trained on (days
    revised since, e.g. a corrected export), which a refit would learn from too.
    """
    if "new_labelled_days" not in summary:  # a drift.json written before it said so
        return "days the champion may not have seen (drift.json does not say which it saw)"
    new = int(summary["new_labelled_days"])
    if new:
        return (f"{new} labelled day{'s' if new != 1 else ''} after the last one it was "
                f"trained on, {summary['trained_on_last']} (through {summary['labelled_last']})")
    now = summary.get("data_version")
    if now and champion_data_version and now != champion_data_version:
        return (f"the data of the days it was trained on changed since (dataset {now[:8]}, "
                f"trained on {champion_data_version[:8]})")
    return None


def seen_every_day(summary: dict[str, Any]) -> str:
    """Why a refit would change nothing, for a record: ``refit_would_add`` found nothing."""
    return (f"the models were trained on every labelled day through "
            f"{summary.get('trained_on_last')}; a refit would see the same days")


# ---------------------------------------------------------------- history and the page

def history_entry(summary: dict[str, Any]) -> dict[str, Any]:
    """One drift report in the history: its spans, champion, share and every feature's
    score (4 significant digits) and verdict."""
    features = summary["features"]
    first = next(iter(features.values()), {})
    return {
        "current": summary["current"], "reference": summary["reference"],
        "champion": summary.get("champion"), "trained_on_last": summary.get("trained_on_last"),
        "share": summary["share_of_drifted_features"], "n_drifted": summary["n_drifted"],
        "n_features": summary["n_features"], "threshold": summary["threshold"],
        "method": first.get("method"), "method_threshold": first.get("threshold"),
        "scores": {name: float(f"{f['drift_score']:.4g}") for name, f in features.items()},
        "drifted": sorted(name for name, f in features.items() if f["drifted"]),
        "prediction_score": (summary.get("prediction_drift") or {}).get("score"),
    }


def _span_key(entry: dict[str, Any]) -> tuple[str, str]:
    return (str(entry["current"].get("last_date")), str(entry["current"].get("first_date")))


def record_history(path: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``summary`` to the drift history at ``path`` (JSON lines) and return it, oldest
    current span first.

    Keyed by the current span: a report of a span already there replaces its entry (a
    re-run, or a new champion on the same data), so each span has one line, its latest.
    The file is rewritten whole, atomically: a stopped stage leaves the old history.
    """
    entry = history_entry(summary)
    entries = [e for e in read_jsonl(path) if "current" in e and _span_key(e) != _span_key(entry)]
    entries = sorted(entries + [entry], key=_span_key)
    write_text(path, "".join(json.dumps(e) + "\n" for e in entries))
    return entries


def _trend_charts(history: list[dict[str, Any]], top: list[str], colours: dict[str, str],
                  lower: bool) -> dict[str, Any]:
    """The share of drifted features over the runs, and the ``top`` features' scores by the
    current span's last day: ``-log10`` of a p-value (``lower``: a lower score is more
    drift), so that up is more drift, or the distance itself. Scores of another test than
    the latest report's are left out."""
    days = pd.to_datetime([e["current"]["last_date"] for e in history])
    share = pd.Series([e["share"] for e in history], index=days)
    latest = history[-1]
    if lower:
        def value(score: float | None) -> float:
            return float("nan") if score is None else -np.log10(max(score, 1e-300))
    else:
        def value(score: float | None) -> float:
            return float("nan") if score is None else score
    scores = {name: pd.Series([value(e["scores"].get(name)) if e["method"] == latest["method"]
                               else np.nan for e in history], index=days) for name in top}
    reference = value(latest["method_threshold"]) if latest["method_threshold"] else None
    high = np.nanmax([s.max() for s in scores.values()] + [reference or 0.0, 1e-9])
    return {
        "share": line_chart({"share of drifted features": share}, width=480, height=200,
                            reference=latest["threshold"], markers=True, legend=False),
        "scores": line_chart(scores, width=480, height=220, y_range=(0.0, float(high) * 1.05),
                             reference=reference, colours=colours, markers=True, legend=False),
        "score_axis": (f"-log10 of the {latest['method']} p-value (higher = more drift; "
                       f"dashed: p = {latest['method_threshold']:g})" if lower else
                       f"{latest['method']} distance (higher = more drift; dashed: "
                       f"{latest['method_threshold']:g})"),
    }


def _index_names(merge_summary: Path) -> dict[str, str]:
    """Index id -> its name as the pages give it (``display.index_name``: TSETMC's, else the
    merge summary's), for the merged indices that have one ({} without a readable summary)."""
    try:
        indices = json.loads(Path(merge_summary).read_text(encoding="utf-8"))["indices"]
        named = {str(i["index_id"]): index_name(str(i["index_id"]), i.get("index_name"))
                 for i in indices}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {index: name for index, name in named.items() if name}


def drift_page(summary: dict[str, Any], history: list[dict[str, Any]], paths: Paths) -> Path:
    """The drift page (``paths.drift_page``): the project's header (the champion, the
    dataset, the way back), the verdict, the trend over the runs (share of drifted
    features, the most drifted features' scores), every feature ranked by strength with
    its score labelled and its index's name, and a link to Evidently's report beside it."""
    ranked = ranked_features(summary["features"])
    methods = {(r["method"], r["lower_is_drift"]) for r in ranked}
    top = [r["feature"] for r in ranked[:TREND_FEATURES]]
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(top)}
    charts = (_trend_charts(history, top, colours, ranked[0]["lower_is_drift"])
              if len(history) > 1 and ranked else None)
    target = summary.get("target")  # with several targets: whose champion
    whose = f"the champion for {index_label(target)}" if target else "the champion"
    page_header = header(paths.drift_page, paths.front_page, (
        f"Data drift: the last {summary['current']['rows']} trading days against the "
        f"training days of {whose}, {summary['n_drifted']} of {summary['n_features']} "
        "features drifted"), **page_versions(paths))
    return render("drift.html", paths.drift_page, header=page_header, drift=summary,
                  ranked=ranked,
                  score_heading=(score_label(*next(iter(methods))) if len(methods) == 1
                                 else "score (p-value: lower = more drift; distance: higher)"),
                  thresholds={r["threshold"] for r in ranked if r["threshold"] is not None},
                  history=history[::-1], charts=charts, top=top, colours=colours,
                  index_names=_index_names(paths.merge_summary),
                  evidently=paths.drift_evidently_page.name,
                  index=index_html(target) if target else None,
                  generated_at=tehran_time(generated()["utc"]))
