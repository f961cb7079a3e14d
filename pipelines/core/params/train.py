"""``train:``: the networks (``ModelConfig``, one per ``train.models`` entry) and the seeds.

``ModelConfig`` is a network's schema: its layers, head, optimiser and training lengths,
every key with its default, checked when made so that a typo fails before any training.
``pipelines.modelling.models`` builds the Keras model from it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from pipelines.core.params.base import Section

CELLS = ("lstm", "gru", "simple_rnn")
TASKS = ("direction", "regression")
REGRESSION_LOSSES = ("mse", "mape", "huber")
DIRECTION_LOSS = "binary_crossentropy"
OPTIMIZERS = ("adam", "adagrad", "rmsprop")
# a network's name goes into file names, column names, pages and artifacts as it stands
MODEL_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,39}$"


def _default_name(cell: str, units: tuple[int, ...]) -> str:
    return cell + "-".join(str(u) for u in units)


@dataclass(frozen=True)
class ModelConfig:
    """One network: its layers, head, optimiser and training lengths.

    ``units`` has one entry per stacked recurrent layer. ``loss`` is for the regression
    task (``mse``, ``mape``, ``huber``; default ``mse``); the direction task always uses
    binary cross-entropy, so a regression loss there is an error. An empty ``name``
    becomes ``<cell><units>``, e.g. ``lstm64`` or ``gru128-64``. ``features``: the
    feature set the network reads (``features.sets``; empty: ``features.set``).
    """

    name: str = ""
    features: str = ""
    cell: str = "lstm"
    units: tuple[int, ...] = (64,)
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    bidirectional: bool = False
    task: str = "direction"
    loss: str | None = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 50
    batch_size: int = 32
    patience: int = 5

    def __post_init__(self) -> None:
        _check_choice("cell", self.cell, CELLS)
        _check_choice("task", self.task, TASKS)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        units = self.units
        if isinstance(units, int) or not isinstance(units, list | tuple) or not units:
            raise ValueError(f"units: expected a non-empty list of positive integers, "
                             f"got {units!r}")
        for value in units:
            _check_int("units", value, minimum=1)
        object.__setattr__(self, "units", tuple(units))
        for key in ("dropout", "recurrent_dropout"):
            _check_number(key, getattr(self, key), minimum=0.0, below=1.0)
        for key in ("l1", "l2"):
            _check_number(key, getattr(self, key), minimum=0.0)
        _check_number("learning_rate", self.learning_rate, minimum=0.0, exclusive=True)
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("patience", self.patience, minimum=0)
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional: expected true or false, "
                             f"got {self.bidirectional!r}")
        if self.task == "direction":
            if self.loss not in (None, DIRECTION_LOSS):
                raise ValueError(f"loss: the direction task uses {DIRECTION_LOSS} "
                                 f"(a class label is not a regression target), "
                                 f"got {self.loss!r}")
            object.__setattr__(self, "loss", DIRECTION_LOSS)
        else:
            if self.loss is None:
                object.__setattr__(self, "loss", "mse")
            _check_choice("loss", self.loss, REGRESSION_LOSSES)
        if not isinstance(self.features, str):
            raise ValueError(f"features: expected a feature set's name, got {self.features!r}")
        if not isinstance(self.name, str) or "/" in self.name:
            raise ValueError(f"name: expected text without '/', got {self.name!r}")
        if not self.name:
            object.__setattr__(self, "name", _default_name(self.cell, self.units))

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelConfig:
        """Check and convert a params.yaml mapping; ValueError names the first bad key."""
        if not isinstance(config, dict):
            raise ValueError(f"model config: expected a mapping, got {config!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(config) - set(known), key=str)
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key (expected some of "
                             f"{', '.join(known)})")
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (``units`` as a list), ready for YAML or JSON."""
        return asdict(self) | {"units": list(self.units)}


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")


def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}: expected an integer >= {minimum}, got {value!r}")


def _check_number(key: str, value: Any, minimum: float, below: float | None = None,
                  exclusive: bool = False) -> None:
    if isinstance(value, str):
        hint = " (PyYAML reads 1e-3 as text: write 1.0e-3)" if _is_float_text(value) else ""
        raise ValueError(f"{key}: expected a number, got {value!r}{hint}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    too_low = value <= minimum if exclusive else value < minimum
    if too_low or (below is not None and value >= below):
        bounds = f"{'>' if exclusive else '>='} {minimum}"
        if below is not None:
            bounds += f" and < {below}"
        raise ValueError(f"{key}: expected a number {bounds}, got {value!r}")


def _is_float_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _study_lstm() -> dict[str, Any]:
    return {"cell": "lstm", "units": [64], "l1": 0.001, "learning_rate": 0.001, "epochs": 40,
            "batch_size": 32, "patience": 6}


class TrainSection(Section):
    seeds: Annotated[list[int], Field(min_length=1)] = Field(
        default_factory=lambda: [1, 2, 3],
        description="every network is run once per seed (mean and spread)")
    deterministic: bool = Field(True, description=(
        "identical figures run to run on one machine (TF op determinism, no XLA: the "
        "demo's evaluate takes 1.3x as long)"))
    mixed_precision: bool = Field(False, description=(
        "mixed_float16 on a GPU (ignored on a CPU)"))
    models: Annotated[dict[str, ModelConfig], Field(min_length=1)] = Field(
        default_factory=lambda: {"lstm": _study_lstm(),
                                 "gru": _study_lstm() | {"cell": "gru", "units": [32]}},
        description="name -> a network (the keys of ModelConfig); the name is the key",
        validate_default=True)

    global_networks: list[str] = Field(default_factory=lambda: ["gru"], description=(
        "networks of train.models also trained as one global network over every target's "
        "windows (each sample tagged with its target, one-hot), named global_NAME, a "
        "candidate for each target; none with a single target"))

    @model_validator(mode="after")
    def _global_known(self) -> TrainSection:
        unknown = [name for name in self.global_networks if name not in self.models]
        if unknown:
            raise ValueError(f"global_networks: {unknown[0]} is not a network of train.models "
                             f"({', '.join(self.models)})")
        return self

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, models: Any) -> Any:
        """Each entry checked as a ``ModelConfig`` named by its key (messages name both)."""
        if not isinstance(models, dict):
            return models
        checked = {}
        for name, spec in models.items():
            if not re.match(MODEL_NAME_PATTERN, str(name)):
                raise ValueError(f"{str(name)[:60]!r}: a network's name is a letter, then up "
                                 "to 39 letters, digits, _, - and . (no spaces, quotes or "
                                 "markup)")
            if isinstance(spec, ModelConfig):
                checked[name] = spec
                continue
            try:
                checked[name] = ModelConfig.from_dict({"name": name} | dict(spec or {}))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name}: {exc}") from None
        return checked
