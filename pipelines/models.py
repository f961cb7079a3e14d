"""Recurrent networks (LSTM, GRU, SimpleRNN) built and compiled from a plain config.

A config is a mapping as it comes from ``params.yaml`` (see ``ModelConfig``); it is
checked when the ``ModelConfig`` is made, so that a typo fails before any training.

Dropout: ``dropout`` is the recurrent layer's own input dropout (one mask per sequence,
the same at every time step), on every recurrent layer. No separate ``Dropout`` layer
follows a recurrent layer: in a stack that would drop the same activations twice (once
after layer k, again as layer k+1's input dropout). Input dropout, unlike
``recurrent_dropout``, leaves LSTM and GRU eligible for the fused cuDNN kernel. What it
does not reach is the last layer's output into the ``Dense(1)`` head, a single linear
read-out.

Keras and TensorFlow are imported inside the functions: reading and checking configs
stays cheap.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import devices  # noqa: F401  (quiets TensorFlow before Keras is imported)
from pipelines.errors import StageCrash

if TYPE_CHECKING:
    import keras

CELLS = ("lstm", "gru", "simple_rnn")
TASKS = ("direction", "regression")
REGRESSION_LOSSES = ("mse", "mape", "huber")
DIRECTION_LOSS = "binary_crossentropy"
OPTIMIZERS = ("adam", "adagrad", "rmsprop")
CUDNN_CELLS = ("lstm", "gru")
# Training steps run per call into TensorFlow: the same updates, less Python between them
# (small networks on a CPU spend most of a step there: 1.3-1.5x faster epochs measured).
STEPS_PER_EXECUTION = 16


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


def model_configs(params: dict[str, Any]) -> dict[str, ModelConfig]:
    """Model name -> ModelConfig for every entry of ``train.models`` in params.yaml."""
    return {name: ModelConfig.from_dict({"name": name} | spec)
            for name, spec in params["train"]["models"].items()}


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


# Keras's defaults, passed explicitly: they are what the fused cuDNN kernel needs, and
# ``cudnn_eligible`` reads them from here.
_CELL_ARGUMENTS: dict[str, dict[str, Any]] = {
    "lstm": {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
             "unroll": False},
    "gru": {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True,
            "unroll": False, "reset_after": True},
    "simple_rnn": {"activation": "tanh", "use_bias": True, "unroll": False},
}


def _cell_arguments(config: ModelConfig) -> dict[str, Any]:
    """The arguments every recurrent layer of ``config`` gets, regulariser aside."""
    return _CELL_ARGUMENTS[config.cell] | {"dropout": config.dropout,
                                          "recurrent_dropout": config.recurrent_dropout}


def _recurrent_layer(config: ModelConfig, units: int, return_sequences: bool, number: int
                     ) -> keras.layers.Layer:
    import keras

    layer_class = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
                   "simple_rnn": keras.layers.SimpleRNN}[config.cell]
    name = f"{config.cell}_{number}"
    regularizer = (keras.regularizers.L1L2(l1=config.l1, l2=config.l2)
                   if config.l1 > 0 or config.l2 > 0 else None)
    layer = layer_class(units, return_sequences=return_sequences, kernel_regularizer=regularizer,
                        name=name, **_cell_arguments(config))
    if config.bidirectional:
        return keras.layers.Bidirectional(layer, name=f"bidirectional_{name}")
    return layer


def _loss(config: ModelConfig) -> Any:
    import keras

    return {
        DIRECTION_LOSS: keras.losses.BinaryCrossentropy(),
        "mse": "mean_squared_error",
        "mape": "mean_absolute_percentage_error",
        "huber": keras.losses.Huber(),
    }[config.loss]


def _metrics(config: ModelConfig) -> list[Any]:
    import keras

    if config.task == "direction":  # ROC AUC is scored after the fit: per batch it is costly
        return [keras.metrics.BinaryAccuracy(name="accuracy")]
    return [keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.MeanAbsolutePercentageError(name="mape")]


def _optimizer(config: ModelConfig) -> keras.optimizers.Optimizer:
    import keras

    optimizer_class = {"adam": keras.optimizers.Adam, "adagrad": keras.optimizers.Adagrad,
                       "rmsprop": keras.optimizers.RMSprop}[config.optimizer]
    return optimizer_class(learning_rate=config.learning_rate)


def build_model(config: ModelConfig, input_shape: tuple[int, int]) -> keras.Model:
    """A compiled network for samples of ``input_shape`` = (window, features).

    Stacked recurrent layers (all but the last return sequences), then ``Dense(1)``:
    sigmoid for the direction task (binary cross-entropy and accuracy), linear for
    regression (the config's loss, MAE and MAPE). The head computes in float32 even
    under a ``mixed_float16`` policy, so probabilities and losses keep full precision.
    """
    import keras

    inputs = keras.Input(shape=tuple(int(n) for n in input_shape), name="window")
    x = inputs
    last = len(config.units) - 1
    for number, units in enumerate(config.units):
        x = _recurrent_layer(config, units, return_sequences=number < last, number=number)(x)
    activation = "sigmoid" if config.task == "direction" else None
    outputs = keras.layers.Dense(1, activation=activation, dtype="float32", name="head")(x)
    model = keras.Model(inputs, outputs, name=config.name)
    model.compile(optimizer=_optimizer(config), loss=_loss(config), metrics=_metrics(config),
                  steps_per_execution=STEPS_PER_EXECUTION)
    return model


def cudnn_eligible(config: ModelConfig) -> tuple[bool, str]:
    """Whether Keras runs this config's recurrent layers with the fused cuDNN kernel on a GPU.

    Returns (eligible, reason). The conditions are Keras's own: an LSTM or GRU with
    tanh/sigmoid activations, a bias, no unrolling, no recurrent dropout and, for a GRU,
    ``reset_after=True``. SimpleRNN has no cuDNN kernel. Input ``dropout`` does not matter
    (Keras applies its mask before the kernel).
    """
    if config.cell not in CUDNN_CELLS:
        return False, f"{config.cell} has no cuDNN kernel (only lstm and gru have one)"
    arguments = _cell_arguments(config)
    problems = []
    if arguments["recurrent_dropout"] > 0:
        problems.append(f"recurrent_dropout is {arguments['recurrent_dropout']} "
                        "(cuDNN needs 0)")
    if (arguments["activation"], arguments["recurrent_activation"]) != ("tanh", "sigmoid"):
        problems.append("activations other than tanh and sigmoid")
    if not arguments["use_bias"]:
        problems.append("no bias")
    if arguments["unroll"]:
        problems.append("unroll is on")
    if config.cell == "gru" and not arguments["reset_after"]:
        problems.append("GRU reset_after is False")
    if problems:
        return False, "; ".join(problems)
    return True, (f"{config.cell} with default activations and no recurrent dropout: "
                  "Keras uses the fused cuDNN kernel when a GPU is present")


def early_stopping(config: ModelConfig) -> keras.callbacks.EarlyStopping:
    """Stop when validation loss has not improved for ``patience`` epochs; keep the best."""
    import keras

    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                         restore_best_weights=True)


def count_params(model: keras.Model) -> dict[str, Any]:
    """Parameters per layer (input layer left out) and in total, trainable or not."""
    import keras

    layers = {layer.name: int(layer.count_params()) for layer in model.layers
              if not isinstance(layer, keras.layers.InputLayer)}
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    total = int(model.count_params())
    return {"layers": layers, "trainable": trainable, "non_trainable": total - trainable,
            "total": total}


def save_model(model: keras.Model, path: Path | str) -> Path:
    """Write ``model`` to ``path`` (a ``.keras`` file) atomically; return the path.

    Keras wants the ``.keras`` suffix, so the temporary file beside the target has it too;
    it is created by Keras (usual file mode) and renamed onto the target.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a Keras model file must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_model(path: Path | str) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file runs).

    A missing, truncated or corrupt file raises ``StageCrash`` with one line naming it.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise StageCrash(f"{path}: no model file; run tsepipe train (or dvc checkout) first")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise StageCrash(f"{path}: the model file cannot be loaded ({path.stat().st_size} "
                         f"bytes; truncated or corrupt: {reason}); restore it with dvc "
                         "checkout, or retrain with tsepipe train") from None
