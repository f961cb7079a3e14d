"""Evidently's HTML pages (the classification report, names made safe for them, saving)
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

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.fileio import atomic_path

_HTML_SAFE = str.maketrans({"<": "\u2039", ">": "\u203a", "&": "\uff06"})


def html_safe_name(name: str) -> str:
    """``name`` with ``<``, ``>`` and ``&`` replaced by look-alikes that need no escaping."""
    return name.translate(_HTML_SAFE)


def save_html(snapshot: Any, out_html: Path | str, empty_error: str) -> None:
    """Write an Evidently snapshot's self-contained HTML to ``out_html``, atomically.

    If Evidently writes nothing, RuntimeError(``empty_error``) and ``out_html`` is left
    as it was.
    """
    with atomic_path(out_html) as tmp:
        snapshot.save_html(str(tmp))  # Evidently 0.7 silently writes nothing for a Path
        if tmp.stat().st_size == 0:
            raise RuntimeError(empty_error)


def classification_page(predictions: pd.DataFrame, models: list[str], out_html: Path) -> None:
    """Evidently's classification report: validation days as reference, test as current.

    ``predictions``: the walk-forward predictions (``date``, ``split``, ``model``,
    ``label``, ``predicted``, ``probability_up``). One ``BinaryClassification`` per model
    (label, predicted class, probability of up), one ``ClassificationPreset`` each, with
    the model names made safe for HTML.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

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
    save_html(report.run(wide("test"), wide("validation")), out_html,
              "report: Evidently wrote an empty classification report")


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
