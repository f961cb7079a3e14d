"""The final networks: the evaluation's next refit, saved by tsepipe train, or a fresh fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import labelled_sample_days
from pipelines.modelling.fitting import read_final, save_final
from pipelines.modelling.models import load_model
from pipelines.modelling.train import train_final
from tests.modelling.test_evaluate import TINY, synthetic_table
from tests.support.stages import evaluation_settings


def test_train_saves_the_walk_forwards_next_refit_else_fits_afresh(tmp_path: Path):
    table, window = synthetic_table(n=200), 5
    settings = evaluation_settings(window=window, refit_every=40, seeds=(2, 1),
                                   bootstrap_samples=50, warm_epochs=2, workers=1,
                                   deterministic=True).but(train={"models": {"gru": TINY}})
    evaluation = evaluate_models(table, settings, final=True)
    final = evaluation.results["gru"].final
    days = labelled_sample_days(table, window)
    assert final is not None and final.days == len(days)
    assert [run.seed for run in final.runs] == [2, 1] and all(r.warm for r in final.runs)
    assert evaluate_models(table, settings).results["gru"].final is None  # only if asked
    folder = tmp_path / "final_networks"
    save_final(folder, "gru", settings.train.models["gru"], table.names, 2, final)
    meta, weights = read_final(folder, "gru")
    assert meta["seed"] == 2 and meta["days"] == len(days) and meta["epochs"] <= 2

    cards = train_final(table, settings, tmp_path / "models", "v1", None, folder)
    assert cards["gru"]["training"]["made"].startswith(
        "the walk-forward's last model (seed 2) continued for")
    saved = load_model(tmp_path / "models" / "gru" / "model.keras")
    for layer, values in zip(saved.layers[1:], final.weights[2], strict=True):
        assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), values,
                                                        strict=True))

    other = settings.but(train={"models": {"gru": TINY | {"units": [5]}}})  # changed since
    cards = train_final(table, other, tmp_path / "models2", "v1", None, folder)
    assert cards["gru"]["training"]["made"] == "a fit from scratch on every labelled day"
    (folder / "gru.npz").write_bytes(b"damaged")
    cards = train_final(table, settings, tmp_path / "models3", "v1", None, folder)
    assert cards["gru"]["training"]["made"] == "a fit from scratch on every labelled day"
