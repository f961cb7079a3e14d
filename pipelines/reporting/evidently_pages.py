"""Evidently's HTML pages (the classification report with a titled section per model,
names made safe for them, saving, the versions their project header names: ``page_versions``)
and its drift scores read and ranked (``ranked_features``, ``ranked_drifted``, ``score_label``:
for the drift page, the front page and the flows).

Evidently 0.7.23 writes column names unescaped into a ``<script>`` block of its HTML, so
a name containing ``</script>`` would break out of it. Index and model names are
untrusted: Evidently is run on names with ``<``, ``>`` and ``&`` replaced by look-alike
characters (``html_safe_name``); the project's own JSON keeps the original names.

Evidently is imported inside the functions: it is heavy, and the drift and report
stages need it only when they write a page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.fileio import atomic_path
from pipelines.core.html import add_header, data_version, model_version
from pipelines.core.params.paths import Paths

_HTML_SAFE = str.maketrans({"<": "\u2039", ">": "\u203a", "&": "\uff06"})


def html_safe_name(name: str) -> str:
    """``name`` with ``<``, ``>`` and ``&`` replaced by look-alikes that need no escaping."""
    return name.translate(_HTML_SAFE)


def page_versions(paths: Paths) -> dict[str, str | None]:
    """The project header's ``model`` and ``data`` lines (``html.header``) of a page about
    the champion and the dataset: from ``models/champion.json`` and the merge summary, each
    None (the header says so) where the file is not there or not readable."""
    def read(path: Path) -> dict[str, Any] | None:
        try:
            found = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def line(version: Any, path: Path) -> str | None:
        try:
            return version(read(path))
        except (KeyError, TypeError, ValueError, AttributeError):  # a record of another shape
            return None

    return {"model": line(model_version, paths.champion_record),
            "data": line(data_version, paths.merge_summary)}


def save_html(snapshot: Any, out_html: Path | str, empty_error: str) -> None:
    """Write an Evidently snapshot's self-contained HTML to ``out_html``, atomically.

    If Evidently writes nothing, RuntimeError(``empty_error``) and ``out_html`` is left
    as it was.
    """
    with atomic_path(out_html) as tmp:
        snapshot.save_html(str(tmp))  # Evidently 0.7 silently writes nothing for a Path
        if tmp.stat().st_size == 0:
            raise RuntimeError(empty_error)


def classification_page(predictions: pd.DataFrame, models: list[str], out_html: Path, *,
                        champion: str | None = None,
                        page_header: dict[str, Any] | None = None) -> None:
    """Evidently's classification report: validation days as reference, test as current.

    ``predictions``: the walk-forward predictions (``date``, ``split``, ``model``,
    ``label``, ``predicted``, ``probability_up``). One ``BinaryClassification`` per model
    (label, predicted class, probability of up), one ``ClassificationPreset`` each, with
    the model names made safe for HTML, in the order of ``models``. Evidently titles every
    section alike ("Classification Model Performance. Target: 'label'"): each section's
    title and sub-titles are rewritten to name its model (``name_sections``). ``champion``
    (one of ``models``) comes first and is called so. ``page_header``: the project's header
    (``html.header``; its ``what`` is this page's own), put at the top of Evidently's page.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    models = sorted(models, key=lambda name: name != champion)  # stable: the rest in order
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
    name_sections(snapshot, [safe[m] + (" (champion)" if m == champion else "")
                             for m in models])
    save_html(snapshot, out_html, "report: Evidently wrote an empty classification report")
    if page_header is not None:
        shown = ", ".join(m + (" (champion)" if m == champion else "") for m in models)
        add_header(out_html, page_header | {"what": (
            f"Evidently's classification report, a section per model: {shown}; the "
            "walk-forward test days (current) against the validation days (reference); "
            "target: the next day's move (1 = up)")})


SECTION_TITLE = "Classification Model Performance"  # Evidently 0.7's title of each section


def name_sections(snapshot: Any, names: list[str]) -> None:
    """Title each ``ClassificationPreset`` section of ``snapshot`` (one per name, in the
    report's order) with its model's name: its head and its sub-heads ("Confusion Matrix",
    ...), the counters Evidently draws as headings, say which model they are of.

    Evidently 0.7.23 has no title of its own for a preset; its widgets are rewritten before
    the page is drawn. A section without the expected head is a RuntimeError (another
    Evidently: the page would not say which model is which)."""
    sections = snapshot._snapshot_item  # one per top-level item of the report, in order
    if len(sections) != len(names):
        raise RuntimeError(f"report: Evidently drew {len(sections)} classification sections "
                           f"for {len(names)} models")
    for name, section in zip(names, sections, strict=True):
        heads = [widget for widget in section.widgets if _heading(widget) is not None]
        if not heads or not _heading(heads[0]).startswith(SECTION_TITLE):
            raise RuntimeError("report: Evidently's classification section has no title to "
                               "name its model by")
        heads[0].params["counters"][0]["label"] = name  # what current and reference are:
        # the project's header says
        for widget in heads[1:]:
            widget.params["counters"][0]["label"] = f"{name}: {_heading(widget)}"
        for widget in section.widgets:
            if widget.title:
                widget.title = f"{name}, {widget.title[0].lower()}{widget.title[1:]}"


def _heading(widget: Any) -> str | None:
    """The text of a counter Evidently draws as a heading (one counter, no value), or None."""
    counters = (widget.params or {}).get("counters") if widget.type == "counter" else None
    if not counters or len(counters) != 1 or counters[0].get("value"):
        return None
    return counters[0]["label"]


# Evidently's tests whose score is a p-value, drift below the threshold (by name and by the
# display name it records when the method is its default); every other score is a distance
P_VALUE_TESTS = frozenset({
    "ks", "K-S p_value", "chisquare", "chi-square p_value", "z", "Z-test p_value", "t_test",
    "mannw", "Mann-Whitney U-rank test", "anderson", "Anderson-Darling", "cramer_von_mises",
    "Cramer-von Mises", "es", "Epps-Singleton", "fisher_exact", "Fisher's Exact test",
    "g_test", "empirical_mmd", "TVD", "Total-Variation-Distance"})
DISTANCE_TESTS = frozenset({
    "wasserstein", "Wasserstein distance (normed)", "kl_div", "Kullback-Leibler divergence",
    "psi", "PSI", "jensenshannon", "Jensen-Shannon distance", "hellinger",
    "Hellinger distance", "ed", "Energy-distance"})


def lower_is_drift(feature: dict[str, Any]) -> bool:
    """Whether a smaller score means more drift (a p-value) for this feature's test; a test
    not listed is read from its own verdict (drifted below its threshold, or not)."""
    method = feature.get("method")
    if method in P_VALUE_TESTS:
        return True
    if method in DISTANCE_TESTS:
        return False
    score, threshold = feature.get("drift_score"), feature.get("threshold")
    if score is None or threshold is None:
        return True
    return (score < threshold) == bool(feature.get("drifted"))


def score_label(method: str | None, lower: bool) -> str:
    """What a drift score is, for a column heading: ``"p-value (ks): lower = more drift"``."""
    name = (method or "Evidently's default").replace(" p_value", "")
    return (f"p-value ({name}): lower = more drift" if lower
            else f"distance ({name}): higher = more drift")


def drift_strength(feature: dict[str, Any]) -> float:
    """How far the score lies past its own threshold: threshold / p-value for a p-value,
    distance / threshold for a distance; above 1 is drift (0 without a score)."""
    score, threshold = feature.get("drift_score"), feature.get("threshold")
    if score is None or not threshold:
        return 0.0
    if lower_is_drift(feature):
        return threshold / max(score, 1e-300)
    return score / threshold


def ranked_features(features: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every feature, most drifted first (by ``drift_strength``, then by name): name, score,
    threshold, method, verdict, strength and whether a lower score is more drift.

    Evidently's score is a p-value for some methods (drift below the threshold) and a
    distance for others (drift above it), so the raw scores do not sort."""
    ranked = [{"feature": name, "drift_score": feature.get("drift_score"),
               "threshold": feature.get("threshold"), "method": feature.get("method"),
               "drifted": bool(feature.get("drifted")), "strength": drift_strength(feature),
               "lower_is_drift": lower_is_drift(feature)}
              for name, feature in features.items()]
    ranked.sort(key=lambda item: (not item["drifted"], -item["strength"], item["feature"]))
    return ranked


def ranked_drifted(features: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The drifted features, most drifted first (``ranked_features``)."""
    return [item for item in ranked_features(features) if item["drifted"]]
