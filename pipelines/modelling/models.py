"""Recurrent networks (LSTM, GRU, SimpleRNN) built and compiled from a ``ModelConfig``.

A network's config is a ``train.models`` entry of ``params.yaml``; its schema, with every
key's default and check, is ``pipelines.core.params.train.ModelConfig``.

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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.core import devices  # noqa: F401  (quiets TensorFlow before Keras is imported)
from pipelines.core.errors import StageCrash
from pipelines.core.params.train import DIRECTION_LOSS, ModelConfig

if TYPE_CHECKING:
    import keras

CUDNN_CELLS = ("lstm", "gru")
# Training steps run per call into TensorFlow: the same updates, less Python between them
# (small networks on a CPU spend most of a step there: 1.3-1.5x faster epochs measured).
STEPS_PER_EXECUTION = 16


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


def _recurrent_layer(config: ModelConfig, units: int, return_sequences: bool, number: int,
                     prefix: str = "") -> keras.layers.Layer:
    import keras

    layer_class = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU,
                   "simple_rnn": keras.layers.SimpleRNN}[config.cell]
    name = f"{prefix}{config.cell}_{number}"
    regularizer = (keras.regularizers.L1L2(l1=config.l1, l2=config.l2)
                   if config.l1 > 0 or config.l2 > 0 else None)
    layer = layer_class(units, return_sequences=return_sequences, kernel_regularizer=regularizer,
                        name=name, **_cell_arguments(config))
    if config.bidirectional:
        return keras.layers.Bidirectional(  # a seed stack's prefix first: copy_layers
            layer, name=f"{prefix}bidirectional_{config.cell}_{number}")
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


def _network(config: ModelConfig, inputs: Any, prefix: str = "") -> Any:
    """``config``'s layers on ``inputs``: stacked recurrent layers (all but the last return
    sequences), then the ``Dense(1)`` head, in float32 even under ``mixed_float16``."""
    import keras

    x = inputs
    last = len(config.units) - 1
    for number, units in enumerate(config.units):
        x = _recurrent_layer(config, units, return_sequences=number < last, number=number,
                             prefix=prefix)(x)
    activation = "sigmoid" if config.task == "direction" else None
    return keras.layers.Dense(1, activation=activation, dtype="float32",
                              name=f"{prefix}head")(x)


def jit_compile() -> bool:
    """XLA for a seed stack's training step on a CPU (2-3x faster epochs than without; for
    one network alone 1.2x, less than its compile time in one fit); on a GPU Keras's fused
    cuDNN kernel, which XLA would replace.
    Not with TensorFlow's op determinism (``train.deterministic``, the default), which XLA
    lacks: without XLA the demo's walk-forward takes 1.27x as long, a chain of 6 refits
    no longer (XLA's compile, once per chain, eats its gain; ``benchmarks/determinism.py``)."""
    from tensorflow.python.framework.config import is_op_determinism_enabled

    from pipelines.core.devices import detect_device

    return detect_device()["kind"] == "cpu" and not is_op_determinism_enabled()


def build_model(config: ModelConfig, input_shape: tuple[int, int]) -> keras.Model:
    """A compiled network for samples of ``input_shape`` = (window, features).

    Stacked recurrent layers (all but the last return sequences), then ``Dense(1)``:
    sigmoid for the direction task (binary cross-entropy and accuracy), linear for
    regression (the config's loss, MAE and MAPE). The head computes in float32 even
    under a ``mixed_float16`` policy, so probabilities and losses keep full precision.
    """
    import keras

    inputs = keras.Input(shape=tuple(int(n) for n in input_shape), name="window")
    model = keras.Model(inputs, _network(config, inputs), name=config.name)
    model.compile(optimizer=_optimizer(config), loss=_loss(config), metrics=_metrics(config),
                  steps_per_execution=STEPS_PER_EXECUTION)
    return model


def seed_output(seed: int) -> str:
    """The name of seed ``seed``'s output in a seed stack (its loss logs as NAME_loss)."""
    return f"seed_{seed}"


def build_seed_stack(config: ModelConfig, input_shape: tuple[int, int],
                     seeds: Sequence[int]) -> keras.Model:
    """``config``'s network once per seed, side by side in one compiled model.

    Every copy reads the same windows and has an output of its own (``seed_output``) and
    a loss of its own; the model's loss is their sum, so each copy's gradient comes from
    its own loss and regulariser only, and Adam's moments are per weight: each copy
    learns as it would alone, on the same batches. Copy k starts from the weights that
    ``build_model`` would draw after seeding with ``seeds[k]``. One model runs the seeds
    in one training step (on a CPU 2-3x faster than one model per seed, measured in
    ``benchmarks/train.py``). ``SeedStopping`` stops and restores each copy on its own.
    """
    import keras

    inputs = keras.Input(shape=tuple(int(n) for n in input_shape), name="window")
    outputs = {}
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        outputs[seed_output(seed)] = _network(config, inputs, prefix=f"{seed_output(seed)}_")
    model = keras.Model(inputs, outputs, name=f"{config.name}_seeds")
    model.compile(optimizer=_optimizer(config),
                  loss={name: _loss(config) for name in outputs},
                  steps_per_execution=STEPS_PER_EXECUTION, jit_compile=jit_compile())
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


def copy_layers(stack: keras.Model, seed: int) -> list[keras.layers.Layer]:
    """Seed ``seed``'s copy in a seed stack: its layers, in ``build_model``'s order."""
    return [layer for layer in stack.layers if layer.name.startswith(f"{seed_output(seed)}_")]


def network_from_copy(config: ModelConfig, input_shape: tuple[int, int],
                      weights: list[list[Any]]) -> keras.Model:
    """A network of its own (``build_model``) holding a seed stack copy's weights (one list
    per layer, as ``copy_layers`` gives them)."""
    model = build_model(config, input_shape)
    layers = model.layers[1:]  # the input layer has none
    if len(layers) != len(weights):
        raise ValueError(f"{config.name}: {len(weights)} layers of weights for a network "
                         f"of {len(layers)}")
    for layer, values in zip(layers, weights, strict=True):
        layer.set_weights(values)
    return model


def seed_stopping(config: ModelConfig, seeds: Sequence[int]) -> keras.callbacks.Callback:
    """``early_stopping`` for each copy of a seed stack on its own: a copy stops when its
    validation loss (its output's loss plus its regulariser, as ``val_loss`` is for one
    network) has not improved for ``patience`` epochs, and gets its best epoch's weights
    back at the end. Training stops when every copy has stopped (the ones that stopped
    earlier train on, and are then set back). ``epochs_run[seed]`` says how many epochs
    each copy had, as a fit of its own would have, and ``history[seed]`` its loss and
    val_loss per epoch."""
    import keras

    class SeedStopping(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.layers = {seed: copy_layers(self.model, seed) for seed in seeds}
            self.best = dict.fromkeys(seeds, math.inf)
            self.wait = dict.fromkeys(seeds, 0)
            self.best_weights: dict[int, list[Any] | None] = dict.fromkeys(seeds)
            self.epochs_run: dict[int, int] = dict.fromkeys(seeds, 0)
            self.history = {seed: {"loss": [], "val_loss": []} for seed in seeds}
            self.stopped: set[int] = set()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            for seed in seeds:
                if seed in self.stopped:
                    continue
                self.epochs_run[seed] = epoch + 1
                loss, current = _copy_losses(self.layers[seed], seed, logs,
                                             alone=len(seeds) == 1)
                self.history[seed]["loss"].append(loss)
                self.history[seed]["val_loss"].append(current)
                if self.best_weights[seed] is None:
                    self.best_weights[seed] = self._weights(seed)
                self.wait[seed] += 1
                if current < self.best[seed]:
                    self.best[seed], self.wait[seed] = current, 0
                    self.best_weights[seed] = self._weights(seed)
                elif self.wait[seed] >= config.patience and epoch > 0:
                    self.stopped.add(seed)
            if len(self.stopped) == len(seeds):
                self.model.stop_training = True

        def _weights(self, seed: int) -> list[Any]:
            return [layer.get_weights() for layer in self.layers[seed]]

        def on_train_end(self, logs: dict | None = None) -> None:
            for seed in seeds:
                for layer, weights in zip(self.layers[seed], self.best_weights[seed] or [],
                                          strict=False):
                    layer.set_weights(weights)

    return SeedStopping()


def _copy_losses(layers: list[Any], seed: int, logs: dict, alone: bool
                 ) -> tuple[float, float]:
    """A seed stack copy's (loss, val_loss) as one network's fit logs them: its output's
    losses plus its regulariser (``layers``' losses, at the epoch's end). A copy
    ``alone`` in its stack: the model's own."""
    import keras

    if alone:
        return float(logs["loss"]), float(logs["val_loss"])
    penalty = float(sum(float(keras.ops.sum(loss)) for layer in layers
                        for loss in layer.losses))
    name = seed_output(seed)
    return float(logs[f"{name}_loss"]) + penalty, float(logs[f"val_{name}_loss"]) + penalty


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
    """Load a ``.keras`` file in safe mode (no arbitrary code from the file runs), for
    prediction: not compiled, so the optimizer's saved state is not read (a network saved
    before any step of its own, as ``train`` saves a walk-forward's copy, would make Keras
    warn that it skips it).

    A missing, truncated or corrupt file raises ``StageCrash`` with one line naming it.
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise StageCrash(f"{path}: no model file; run tsepipe train (or dvc checkout) first")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many kinds for a damaged archive
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise StageCrash(f"{path}: the model file cannot be loaded ({path.stat().st_size} "
                         f"bytes; truncated or corrupt: {reason}); restore it with dvc "
                         "checkout, or retrain with tsepipe train") from None
    # batches per predict call as compiled (``build_model``): the same sums, to the last bit
    model.steps_per_execution = STEPS_PER_EXECUTION
    return model
