"""The trained champion, loaded from the models folder, and its probability of up.

``load_forecaster`` reads ``models/champion.json`` (``train.champion_record``) and loads
what it names from the same folder, DVC's ``tedpix-models`` artifact: a network (every
seed's model and the training-rows-only scaler; its forecast is the mean of the seeds'
P(up), as the evaluation scored it), a baseline (its fitted state), or a combination (each
member, its forecast the mean of theirs). Nothing is refitted here, so the forecast is the
same wherever the artifact is fetched.

A network checks that today's dataset gives the very features it was trained on. The
merge may leave an index out from one day to the next (a stale export), and a network
cannot read a different set of columns: then the best baseline on the validation days
that can read today's data stands in, with a note that says why, until the next training
run (in a combination the member is left out and the others forecast).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core.errors import DataError, printable
from pipelines.core.params.paths import BASELINE, CHAMPION, MODEL_CARD, SCALER, model_file
from pipelines.modelling.baselines import apply_baseline, reads_table
from pipelines.modelling.features import FeatureTable, TrainOnlyScaler
from pipelines.modelling.fitting import predict_network
from pipelines.modelling.models import load_model


@dataclass
class Forecaster:
    """A model that forecasts: a network (its seeds' models, scaler, card), a baseline (its
    fitted state) or a combination (its members, each one of those)."""

    name: str
    kind: str  # network | baseline | combination
    table: FeatureTable  # the features it reads
    models: list[Any] = field(default_factory=list)  # a network's, one per seed
    scaler: TrainOnlyScaler | None = None
    card: dict[str, Any] | None = None
    state: dict[str, Any] | None = None  # a baseline's
    version: str = ""
    note: str = ""  # why the record's champion is not the one forecasting, if so
    members: list[Forecaster] = field(default_factory=list)
    code: np.ndarray | None = None  # a global network's: the one-hot code of its target
    # the days asked for last, and the answer: the stage asks for every day more than once
    # (the champion's, its members', the day to forecast), and each call of a network on
    # another number of days costs a compile of its own
    _last: tuple[bytes, tuple[np.ndarray, np.ndarray]] | None = field(default=None,
                                                                      repr=False)

    def probability_up(self, window: int, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(up), the class as the walk-forward scored it) for each of ``days``: a
        network's mean over its seeds (up when >= 0.5), a baseline's own rule (persistence's
        class is its rule, not always P >= 0.5), a combination's mean of its members' P (up
        when >= 0.5). Rows after ``days.max()`` are not read."""
        days = np.asarray(days, dtype="int64")
        key = np.append(days, window).tobytes()
        if self._last is None or self._last[0] != key:
            self._last = key, self._probability_up(window, days)
        return self._last[1]

    def _probability_up(self, window: int, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "combination":
            proba = np.mean([member.probability_up(window, days)[0]
                             for member in self.members], axis=0)
        elif self.kind == "network":
            proba = np.mean([predict_network(model, self.scaler, self.table, window, days,
                                             code=self.code)
                             for model in self.models], axis=0)
        else:
            proba, classes = apply_baseline(self.state, self.table, days)
            return np.asarray(proba, dtype="float64"), np.asarray(classes, dtype="int64")
        return proba, (proba >= 0.5).astype("int64")


def read_record(models_dir: Path | str) -> dict[str, Any]:
    """``models/champion.json``; missing or damaged, a ``DataError`` with the way back."""
    path = Path(models_dir) / CHAMPION
    if not path.is_file():
        raise DataError(f"{printable(path)}: no champion record; run tsepipe train first (or "
                        "dvc artifacts get . tedpix-models)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["champion"], record["kind"], record["stand_ins"]  # noqa: B018 (its shape)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{printable(path)}: the champion record is damaged "
                        f"({type(exc).__name__}); run tsepipe train, or dvc checkout "
                        f"{printable(models_dir)}") from None
    return record


def load_forecaster(models_dir: Path | str, table: FeatureTable
                    ) -> tuple[Forecaster, dict[str, Any]]:
    """(the champion ready to forecast on ``table``, the default feature set; its record).

    A network or baseline that cannot read today's data (features that are not today's, a
    missing or damaged scaler or state) is replaced by the first of the record's stand-ins
    that can (``note`` says so); in a combination it is left out and the other members
    forecast. A missing or damaged model card is a ``DataError``; a damaged model file a
    ``StageCrash`` (``models.load_model``).
    """
    record = read_record(models_dir)
    name, kind = record["champion"], record["kind"]
    if kind == "combination":
        return _combination(name, record, models_dir, table), record
    loaded = load_named(name, kind, models_dir, table)
    if isinstance(loaded, Forecaster):
        return loaded, record
    cause, remedy = loaded
    return _stand_in(record, models_dir, table, f"{cause}: {{}} forecasts {remedy}"), record


def _combination(name: str, record: dict[str, Any], models_dir: Path | str,
                 table: FeatureTable) -> Forecaster:
    loaded, notes = [], []
    for member in record["members"]:
        one = load_named(member, record["member_kinds"][member], models_dir, table)
        if isinstance(one, Forecaster):
            loaded.append(one)
        else:
            notes.append(one)
    note = "; ".join(f"{cause}: {name} averages the other members {remedy}"
                     for cause, remedy in notes)
    if not loaded:
        return _stand_in(record, models_dir, table, f"no member of {name} can read today's "
                         "data: {} forecasts until the next training run (tsepipe train)")
    version = "+".join(member.version[:12] for member in loaded)
    return Forecaster(name, "combination", table, version=f"combination:{version}", note=note,
                      members=loaded)


def _stand_in(record: dict[str, Any], models_dir: Path | str, table: FeatureTable,
              note: str) -> Forecaster:
    """The first stand-in baseline (best on validation first) that can read ``table``;
    ``note`` with ``{}`` for its name."""
    found = best_baseline(record, models_dir, table)
    if found is None:
        raise DataError(f"{printable(models_dir)}: no model of the champion record can read "
                        "today's data; run tsepipe train")
    found.note = note.format(f"the best baseline that can, {found.name},")
    return found


def best_baseline(record: dict[str, Any], models_dir: Path | str, table: FeatureTable
                  ) -> Forecaster | None:
    """The best baseline on the validation days (the record's ``stand_ins``, in order) that
    can read ``table``, or None."""
    for name in record["stand_ins"]:
        loaded = load_named(name, "baseline", models_dir, table)
        if isinstance(loaded, Forecaster):
            return loaded
    return None


def load_named(name: str, kind: str, models_dir: Path | str, table: FeatureTable
               ) -> Forecaster | tuple[str, str]:
    """Model ``name`` (a ``kind``: network or baseline) ready to forecast on ``table``, or
    (why it cannot read today's data, until when)."""
    folder = Path(models_dir) / name
    if kind == "network":
        return _network(name, folder, table)
    try:
        state = json.loads((folder / BASELINE).read_text(encoding="utf-8"))
        state["baseline"]  # noqa: B018 (its shape)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = "missing" if isinstance(exc, FileNotFoundError) else \
            f"damaged ({type(exc).__name__})"
        return (f"{folder / BASELINE} is {what}",
                f"until tsepipe train (or dvc checkout {folder}) brings it back")
    if not reads_table(state, table):
        return (f"today's dataset does not give the features {name} was fitted on",
                "until the next training run (tsepipe train)")
    return Forecaster(name, "baseline", table, state=state, version=f"baseline:{name}")


def _network(name: str, folder: Path, table: FeatureTable) -> Forecaster | tuple[str, str]:
    card_path = folder / MODEL_CARD
    if not card_path.exists():
        raise DataError(f"{card_path}: the champion {name} has no model card; run tsepipe "
                        "train first")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        seeds = [entry["seed"] for entry in card["seeds"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{card_path}: the champion {name}'s model card is damaged "
                        f"({type(exc).__name__}); run tsepipe train, or dvc checkout "
                        f"{folder}") from None
    try:
        scaler = TrainOnlyScaler.load(folder / SCALER)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        what = "missing" if isinstance(exc, FileNotFoundError) else \
            f"damaged ({type(exc).__name__})"
        return (f"{folder / SCALER} is {what}, so {name} cannot read today's features",
                f"until tsepipe train (or dvc checkout {folder}) brings it back")
    view = table.view(card.get("feature_set") or None)
    if view.names != scaler.names:
        missing = [f for f in scaler.names if f not in view.names]
        new = [f for f in view.names if f not in scaler.names]
        return (f"today's dataset does not give the features {name} was trained on "
                f"(missing: {', '.join(missing[:6]) or 'none'}"
                f"{' ...' if len(missing) > 6 else ''}; new: {', '.join(new[:6]) or 'none'}"
                f"{' ...' if len(new) > 6 else ''})",
                "until the next training run (tsepipe train)")
    models = [load_model(folder / model_file(seed)) for seed in seeds]
    coded = card.get("target_code")  # a global network: which of its targets this one is
    code = None if not coded else np.eye(len(coded["targets"]))[
        coded["targets"].index(coded["target"])]
    return Forecaster(name, "network", view, models, scaler, card, version=card["model_md5"],
                      code=code)
