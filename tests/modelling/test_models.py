"""The model builder and device set-up: configs, layer counts, training, saving, seeding."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines.core import devices
from pipelines.core.params.train import ModelConfig
from pipelines.modelling.models import (
    build_model,
    build_seed_stack,
    copy_layers,
    count_params,
    cudnn_eligible,
    early_stopping,
    load_model,
    save_model,
    seed_output,
    seed_stopping,
)
from tests.conftest import ROOT

STUDY_INPUT = (4, 145)


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts and ends with the float32 policy (mixed precision is global)."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


def config(**overrides) -> ModelConfig:
    return ModelConfig.from_dict(overrides)


def random_data(n: int = 64, shape: tuple[int, int] = (4, 10), seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype("float32")
    y = (x[:, -1, 0] > 0).astype("float32")
    return x, y


# The study's printed summaries (direction task, input (4, 145)).
@pytest.mark.parametrize(("cell", "units", "recurrent", "head"), [
    ("lstm", 64, 53_760, 65),
    ("gru", 32, 17_184, 33),   # GRU with reset_after=True, Keras's default
    ("lstm", 128, 140_288, 129),
])
def test_parameter_counts_match_the_study(cell, units, recurrent, head):
    model = build_model(config(cell=cell, units=[units]), STUDY_INPUT)
    counts = count_params(model)
    assert counts["layers"] == {f"{cell}_0": recurrent, "head": head}
    assert counts["total"] == counts["trainable"] == recurrent + head
    assert counts["non_trainable"] == 0


def test_gru_count_is_the_reset_after_formula():
    units, features = 32, STUDY_INPUT[1]
    # reset_after=True keeps separate input and recurrent biases: 2 * units per gate.
    assert 3 * (units * (units + features) + 2 * units) == 17_184
    assert 3 * (units * (units + features) + units) == 17_088  # reset_after=False


def test_stacked_layers_return_sequences_but_the_last():
    model = build_model(config(cell="gru", units=[128, 64, 32]), STUDY_INPUT)
    recurrent = [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]
    assert [layer.units for layer in recurrent] == [128, 64, 32]
    assert [layer.return_sequences for layer in recurrent] == [True, True, False]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    assert model.output_shape == (None, 1)


def test_bidirectional_doubles_the_recurrent_parameters():
    plain = count_params(build_model(config(units=[16]), STUDY_INPUT))
    both = build_model(config(units=[16], bidirectional=True), STUDY_INPUT)
    assert isinstance(both.layers[1], keras.layers.Bidirectional)
    assert count_params(both)["layers"]["bidirectional_lstm_0"] == 2 * plain["layers"]["lstm_0"]


def test_regulariser_and_dropout_reach_every_recurrent_layer():
    model = build_model(config(units=[8, 4], l1=1e-3, dropout=0.2, recurrent_dropout=0.1),
                        STUDY_INPUT)
    for layer in model.layers[1:3]:
        regularizer = layer.kernel_regularizer
        assert isinstance(regularizer, keras.regularizers.L1L2)
        assert (regularizer.l1, regularizer.l2) == pytest.approx((1e-3, 0.0))
        assert (layer.dropout, layer.recurrent_dropout) == pytest.approx((0.2, 0.1))
    assert build_model(config(units=[8]), STUDY_INPUT).layers[1].kernel_regularizer is None


def test_direction_head_is_a_sigmoid_with_cross_entropy_and_accuracy():
    model = build_model(config(), STUDY_INPUT)
    head = model.layers[-1]
    assert head.activation is keras.activations.sigmoid
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    x, y = random_data(8, STUDY_INPUT)
    metrics = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(metrics) == {"loss", "accuracy"}  # ROC AUC is scored after the fit


@pytest.mark.parametrize(("loss", "expected"), [
    ("mse", "mean_squared_error"),
    ("mape", "mean_absolute_percentage_error"),
    ("huber", keras.losses.Huber),
])
def test_regression_head_is_linear_with_the_chosen_loss(loss, expected):
    model = build_model(config(task="regression", loss=loss, cell="simple_rnn", units=[8]),
                        (30, 1))
    assert model.layers[-1].activation is keras.activations.linear
    if isinstance(expected, str):
        assert model.loss == expected
    else:
        assert isinstance(model.loss, expected)
    x = np.random.default_rng(0).normal(size=(8, 30, 1)).astype("float32")
    assert set(model.evaluate(x, x[:, -1, 0] + 3, verbose=0, return_dict=True)) >= {
        "loss", "mae", "mape"}


def test_regression_loss_defaults_to_mse():
    assert config(task="regression").loss == "mse"
    assert config().loss == "binary_crossentropy"


@pytest.mark.parametrize(("name", "optimizer_class"), [
    ("adam", keras.optimizers.Adam),
    ("adagrad", keras.optimizers.Adagrad),
    ("rmsprop", keras.optimizers.RMSprop),
])
def test_optimiser_from_name_with_its_learning_rate(name, optimizer_class):
    model = build_model(config(optimizer=name, learning_rate=1e-4, units=[4]), STUDY_INPUT)
    assert isinstance(model.optimizer, optimizer_class)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"cell": "lstmm"}, "cell: expected one of lstm, gru, simple_rnn, got 'lstmm'"),
    ({"celll": "lstm"}, "celll: unknown key"),
    ({"units": []}, "units: expected a non-empty list"),
    ({"units": 64}, "units: expected a non-empty list"),
    ({"units": [64, 0]}, "units: expected an integer >= 1, got 0"),
    ({"units": [64.5]}, "units: expected an integer"),
    ({"dropout": 1.0}, "dropout: expected a number >= 0.0 and < 1.0, got 1.0"),
    ({"recurrent_dropout": -0.1}, "recurrent_dropout: expected a number"),
    ({"l1": float("nan")}, "l1: expected a number"),
    ({"l2": -1e-3}, "l2: expected a number >= 0.0"),
    ({"learning_rate": "1e-3"}, "learning_rate: expected a number, got '1e-3' (PyYAML"),
    ({"learning_rate": 0}, "learning_rate: expected a number > 0.0"),
    ({"epochs": 0}, "epochs: expected an integer >= 1"),
    ({"batch_size": True}, "batch_size: expected an integer"),
    ({"patience": -1}, "patience: expected an integer >= 0"),
    ({"bidirectional": "yes"}, "bidirectional: expected true or false"),
    ({"task": "classify"}, "task: expected one of direction, regression"),
    ({"task": "regression", "loss": "mae"}, "loss: expected one of mse, mape, huber"),
    ({"loss": "mse"}, "loss: the direction task uses binary_crossentropy"),
    ({"optimizer": "sgd"}, "optimizer: expected one of adam, adagrad, rmsprop, got 'sgd'"),
    ({"name": "a/b"}, "name: expected text without '/'"),
])
def test_a_bad_config_names_its_key(overrides, message):
    with pytest.raises(ValueError) as raised:
        ModelConfig.from_dict({"name": "bad"} | overrides)
    assert str(raised.value).startswith(message)


def test_config_round_trips_through_a_plain_dict():
    spec = {"name": "gru128-64", "cell": "gru", "units": [128, 64], "dropout": 0.2,
            "l1": 1e-3, "optimizer": "rmsprop", "learning_rate": 1e-4, "patience": 3}
    made = ModelConfig.from_dict(spec)
    assert made.units == (128, 64)
    plain = made.to_dict()
    assert plain["units"] == [128, 64] and plain["loss"] == "binary_crossentropy"
    assert ModelConfig.from_dict(plain) == made
    assert ModelConfig.from_dict({"cell": "gru", "units": [128, 64]}).name == "gru128-64"
    with pytest.raises(AttributeError):
        made.units = (1,)  # frozen


@pytest.mark.parametrize("overrides", [
    {"cell": "lstm", "units": [8, 4], "dropout": 0.1},
    {"cell": "gru", "units": [8], "task": "regression", "loss": "huber", "l2": 1e-4,
     "bidirectional": True},
])
def test_training_then_safe_mode_reload_predicts_the_same(tmp_path: Path, overrides):
    devices.configure(7, deterministic=False, mixed_precision=False)
    made = config(epochs=2, batch_size=16, patience=1, **overrides)
    x, y = random_data()
    model = build_model(made, x.shape[1:])
    stopper = early_stopping(made)
    assert (stopper.monitor, stopper.patience, stopper.restore_best_weights) == (
        "val_loss", 1, True)
    history = model.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=made.epochs,
                        batch_size=made.batch_size, verbose=0, callbacks=[stopper])
    assert 1 <= len(history.history["loss"]) <= 2 and "val_loss" in history.history

    target = tmp_path / "models" / made.name / "model.keras"
    assert save_model(model, target) == target
    save_model(model, target)  # overwriting an existing file is fine
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.keras"]
    loaded = load_model(target)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert count_params(loaded) == count_params(model)


def test_a_model_saved_before_its_first_step_loads_to_predict_without_a_warning(
        tmp_path: Path, recwarn: pytest.WarningsRecorder):
    """``train`` saves a walk-forward's copy that never stepped itself: loaded to forecast
    (not compiled), Keras reads no optimizer state, so it has none to skip and warn of."""
    x, _ = random_data()
    model = build_model(config(units=[2]), x.shape[1:])
    loaded = load_model(save_model(model, tmp_path / "model.keras"))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert not [w for w in recwarn if "optimizer" in str(w.message)], [
        str(w.message) for w in recwarn]


def test_save_model_wants_a_keras_suffix(tmp_path: Path):
    with pytest.raises(ValueError, match=r"\.keras"):
        save_model(build_model(config(units=[2]), (4, 3)), tmp_path / "model.h5")


def test_same_seed_same_initial_weights_and_same_fit():
    made = config(cell="gru", units=[8], epochs=2, batch_size=16)
    x, y = random_data()

    def fit_once(seed: int) -> tuple[list[np.ndarray], np.ndarray]:
        devices.configure(seed, deterministic=False, mixed_precision=False)
        model = build_model(made, x.shape[1:])
        initial = [w.copy() for w in model.get_weights()]
        model.fit(x, y, epochs=made.epochs, batch_size=made.batch_size, shuffle=True,
                  verbose=0)
        return initial, model.predict(x, verbose=0)

    first_weights, first_predictions = fit_once(11)
    again_weights, again_predictions = fit_once(11)
    other_weights, _ = fit_once(12)
    for first, again in zip(first_weights, again_weights, strict=True):
        np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first_predictions, again_predictions)
    assert not np.array_equal(first_weights[0], other_weights[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_default_lstm_and_gru_are_cudnn_eligible(cell):
    eligible, reason = cudnn_eligible(config(cell=cell, dropout=0.2))
    assert eligible and "cuDNN" in reason


def test_recurrent_dropout_rules_out_cudnn():
    eligible, reason = cudnn_eligible(config(cell="gru", recurrent_dropout=0.1))
    assert not eligible and "recurrent_dropout" in reason


def test_simple_rnn_has_no_cudnn_kernel():
    eligible, reason = cudnn_eligible(config(cell="simple_rnn"))
    assert not eligible and "simple_rnn" in reason


def test_detect_device_here_is_the_cpu():
    device = devices.detect_device()
    assert device["kind"] == "cpu"
    assert device["name"] and isinstance(device["name"], str)
    assert isinstance(device["count"], int) and device["count"] >= 1
    assert device["tensorflow"] == tf.__version__


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> list:
    """TensorFlow reports one GPU; returns the list of memory-growth calls made."""
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    real_list = tf.config.list_physical_devices
    growth = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [gpu] if kind == "GPU" else real_list(kind))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                        lambda device, enable: growth.append((device.name, enable)))
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"device_name": "NVIDIA H100 80GB HBM3"})
    return growth


def test_detect_device_takes_the_gpu_path_when_there_is_one(fake_gpu):
    device = devices.detect_device()
    assert device == {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "count": 1,
                      "tensorflow": tf.__version__}
    assert fake_gpu == [("/physical_device:GPU:0", True)]


def test_mixed_precision_on_a_gpu_keeps_the_head_in_float32(fake_gpu):
    devices.configure(0, deterministic=False, mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "mixed_float16"
    model = build_model(config(units=[8]), STUDY_INPUT)
    assert model.layers[1].compute_dtype == "float16"
    assert model.layers[-1].compute_dtype == "float32"
    assert model.outputs[0].dtype == "float32"


QUIET_START = """
import os
from pipelines.core import devices
import keras  # TensorFlow with it: its start-up lines dropped
keras.ops.add(1, 1)
with devices.startup_lines_dropped():  # what is not start-up noise comes through
    os.write(2, b"I0000 00:00:1796644045.5 26730 port.cc:153] oneDNN custom operations\\n")
    os.write(2, b"error: a real line\\n")
"""


def test_tensorflow_starts_without_its_start_up_lines_and_real_lines_stay():
    done = subprocess.run([sys.executable, "-c", QUIET_START], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stderr == "error: a real line\n"


def test_mixed_precision_on_a_cpu_stays_float32(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING, logger="pipelines.core.devices"):
        devices.configure(0, deterministic=False, mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "no GPU" in caplog.text
    keras.mixed_precision.set_global_policy("mixed_float16")
    devices.configure(0, deterministic=False, mixed_precision=False)
    assert keras.mixed_precision.global_policy().name == "float32"


def _copy(model: keras.Model, seed: int) -> list[list[np.ndarray]]:
    """The weights of seed ``seed``'s copy in a seed stack, layer by layer."""
    return [layer.get_weights() for layer in copy_layers(model, seed)]


def test_each_copy_of_a_seed_stack_starts_as_its_seed_alone():
    made = config(cell="lstm", units=[8, 4], l1=1e-3)
    stack = build_seed_stack(made, (4, 10), (3, 7))
    assert list(stack.predict(np.zeros((2, 4, 10)), verbose=0)) == ["seed_3", "seed_7"]
    for seed in (3, 7):
        devices.configure(seed, deterministic=False, mixed_precision=False)
        alone = [layer.get_weights() for layer in build_model(made, (4, 10)).layers[1:]]
        copy = _copy(stack, seed)
        assert len(copy) == len(alone) == 3  # two recurrent layers and the head
        for mine, its in zip(copy, alone, strict=True):
            assert all(np.array_equal(a, b) for a, b in zip(mine, its, strict=True))
    assert not np.array_equal(_copy(stack, 3)[0][0], _copy(stack, 7)[0][0])


def _logs(val: dict[int, list[float]], epoch: int) -> dict[str, float]:
    return {f"{prefix}{seed_output(seed)}_loss": val[seed][epoch]
            for seed in val for prefix in ("", "val_")}


def test_seed_stopping_stops_and_restores_each_copy_on_its_own():
    made = config(units=[4], patience=2, l1=0.0)
    stack = build_seed_stack(made, (4, 10), (1, 2))
    stopping = seed_stopping(made, (1, 2))
    stopping.set_model(stack)
    stopping.on_train_begin()
    best_of_2 = _copy(stack, 2)
    val = {1: [1.0, 0.9, 0.8, 0.7, 0.6], 2: [1.0, 1.1, 1.2, 1.3, 1.4]}
    for epoch in range(5):
        if epoch:  # the copies move on after their first epoch
            for layer in stack.layers[1:]:
                layer.set_weights([w + 1.0 for w in layer.get_weights()])
        stopping.on_epoch_end(epoch, _logs(val, epoch))
        assert stack.stop_training is False  # copy 1 still improves
    assert stopping.epochs_run == {1: 5, 2: 3}  # copy 2 stopped after 2 epochs of no gain
    last_of_1 = _copy(stack, 1)
    stopping.on_train_end()
    for mine, its in zip(_copy(stack, 2), best_of_2, strict=True):  # its first epoch's
        assert all(np.array_equal(a, b) for a, b in zip(mine, its, strict=True))
    for mine, its in zip(_copy(stack, 1), last_of_1, strict=True):  # its last: the best
        assert all(np.array_equal(a, b) for a, b in zip(mine, its, strict=True))
    val[1] = [0.5, 0.6, 0.7]
    stopping.on_train_begin()
    for epoch in range(3):
        stopping.on_epoch_end(epoch, _logs(val, epoch))
    assert stack.stop_training is True and stopping.epochs_run == {1: 3, 2: 3}
    assert stopping.history[1]["val_loss"] == [0.5, 0.6, 0.7]  # l1 0: no regulariser
