"""The final networks: the evaluation's next refit of every seed, saved by tsepipe train, or
a fresh fit of every seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.core.fileio import file_md5
from pipelines.modelling.evaluate import evaluate_models
from pipelines.modelling.features import TrainOnlyScaler, labelled_sample_days
from pipelines.modelling.fitting import predict_network, read_final, save_final
from pipelines.modelling.models import load_model
from pipelines.modelling.train import train_final
from tests.modelling.test_evaluate import TINY, synthetic_table
from tests.support.stages import evaluation_settings


def test_train_saves_every_seed_of_the_walk_forwards_next_refit_else_fits_afresh(
        tmp_path: Path):
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
    save_final(folder, "gru", settings.train.models["gru"], table.names, final)
    meta, weights = read_final(folder, "gru")
    assert meta["seeds"] == [1, 2] and meta["days"] == len(days)
    assert all(meta["runs"][str(seed)]["epochs"] <= 2 for seed in (1, 2))

    cards = train_final(table, settings, tmp_path / "models", "v1", None, folder)
    card = cards["gru"]
    assert card["training"]["made"].startswith(
        "the walk-forward's last models (seeds 2, 1) continued for")
    assert [entry["seed"] for entry in card["seeds"]] == [2, 1]  # every seed, as evaluated
    saved = {}
    for entry in card["seeds"]:
        path = tmp_path / "models" / "gru" / entry["file"]
        assert entry["md5"] == file_md5(path)
        saved[entry["seed"]] = load_model(path)
        for layer, values in zip(saved[entry["seed"]].layers[1:], final.weights[entry["seed"]],
                                 strict=True):
            assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), values,
                                                            strict=True))
    # the two seeds differ: the forecast (their mean) is not one seed's
    scaler = TrainOnlyScaler.load(tmp_path / "models" / "gru" / "scaler.json")
    seeds = [predict_network(model, scaler, table, window, days[-20:]) for model in
             saved.values()]
    assert not np.allclose(seeds[0], seeds[1])

    other = settings.but(train={"models": {"gru": TINY | {"units": [5]}}})  # changed since
    cards = train_final(table, other, tmp_path / "models2", "v1", None, folder)
    assert cards["gru"]["training"]["made"] == ("a fit from scratch on every labelled day, "
                                                "every seed")
    assert len(cards["gru"]["seeds"]) == 2
    (folder / "gru.npz").write_bytes(b"damaged")
    cards = train_final(table, settings, tmp_path / "models3", "v1", None, folder)
    assert cards["gru"]["training"]["made"] == ("a fit from scratch on every labelled day, "
                                                "every seed")
