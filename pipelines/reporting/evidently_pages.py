"""Evidently's HTML pages (the classification report, names made safe for them, saving)
and its drift scores ranked (``ranked_drifted``, for the front page and the flows).

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


def ranked_drifted(features: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The drifted features, most drifted first.

    Evidently's score is a p-value for some methods (drift below the threshold) and a
    distance for others (drift above it), so each score is ranked by how far past its
    own threshold it lies.
    """
    ranked = []
    for name, feature in features.items():
        if not feature.get("drifted"):
            continue
        score, threshold = feature.get("drift_score"), feature.get("threshold")
        strength = 0.0
        if score is not None and threshold:
            lower_is_drift = score < threshold
            strength = (threshold / max(score, 1e-300) if lower_is_drift
                        else score / threshold)
        ranked.append({"feature": name, "drift_score": score, "threshold": threshold,
                       "method": feature.get("method"), "strength": strength})
    ranked.sort(key=lambda item: (-item["strength"], item["feature"]))
    return ranked
