"""Stage calls on loose files, for tests that build their inputs by hand.

The stages take a ``Paths`` and their typed sections; these put the files a test names
into a ``Paths`` (the other paths keep their defaults and are not touched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core.params.data import DataSection
from pipelines.core.params.merge import MergeSection
from pipelines.core.params.paths import Paths
from pipelines.core.params.validate import ValidateSection


def merge_files(tables_dir: Path, validation_summary: Path, dataset: Path, merge_summary: Path,
                target: str, settings: MergeSection | None = None,
                min_indices: int = 1) -> dict[str, Any]:
    """``pipelines.data.merge.merge`` of these files (``min_indices``: the least usable)."""
    from pipelines.data.merge import merge

    paths = Paths(tables_dir=tables_dir, validation_summary=validation_summary,
                  dataset=dataset, merge_summary=merge_summary,
                  metrics_dir=Path(merge_summary).parent / "metrics")  # not the checkout's
    return merge(paths, settings or MergeSection(), DataSection(target_index=target),
                 ValidateSection(min_usable_files=min_indices))

# the sections of EvaluationSettings, by the name of each of their keys
_SECTION_OF = {"window": ("features", "window"), "feature_set": ("features", "set"),
               "validation_fraction": ("split", "validation_fraction"),
               "test_fraction": ("split", "test_fraction"),
               "seeds": ("train", "seeds"), "deterministic": ("train", "deterministic"),
               "mixed_precision": ("train", "mixed_precision")}


def evaluation_settings(**keys: Any) -> Any:
    """``EvaluationSettings`` with some keys changed, each named alone (``window=5``,
    ``refit_every=20``, ``seeds=[1]``): ``features``, ``split``, ``train`` keys as above,
    any other an ``evaluate`` key."""
    from pipelines.modelling.settings import EvaluationSettings

    sections: dict[str, dict[str, Any]] = {}
    for key, value in keys.items():
        section, name = _SECTION_OF.get(key, ("evaluate", key))
        sections.setdefault(section, {})[name] = list(value) if isinstance(value, tuple) \
            else value
    return EvaluationSettings().but(**sections)
