"""Final models: each network refitted on every labelled day, saved with a model card.

``models/<name>/model.keras`` (loads with Keras safe mode), ``scaler.json`` (the
training-rows-only standardisation), ``card.json`` (config, parameter count, cuDNN
eligibility, data version, git commit, device, training time, walk-forward metrics) and
``dvclive/``: the training's loss and validation loss per epoch, logged with DVCLive
(``dvclive/plots/metrics/*.tsv`` for ``dvc plots``, the last epoch's values in
``dvclive/metrics.json`` for ``dvc metrics`` and ``dvc exp show``). Beside the folders,
``champion.json`` names the leaderboard's champion (``champion_record``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core import devices
from pipelines.core.fileio import file_md5, write_json
from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import (
    CHAMPION,
    MODEL_CARD,
    MODEL_FILE,
    SCALER,
    TRAINING_LOG,
    Paths,
)
from pipelines.core.provenance import git_commit
from pipelines.modelling.features import (
    FeatureTable,
    TrainOnlyScaler,
    dataset_table,
    labelled_sample_days,
)
from pipelines.modelling.fitting import NetworkRun, fit_network, read_final
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.modelling.models import (
    count_params,
    cudnn_eligible,
    network_from_copy,
    save_model,
)
from pipelines.modelling.settings import EvaluationSettings


def train(paths: Paths, data: DataSection, settings: EvaluationSettings
          ) -> dict[str, dict[str, Any]]:
    """The train stage: every network refitted on the merged dataset, into
    ``paths.models_dir`` (with the evaluation's figures on its card when there are some)."""
    table, data_version = dataset_table(paths, data, settings.features)
    board = Leaderboard.read(paths.leaderboard) if paths.leaderboard.exists() else None
    return train_final(table, settings, paths.models_dir, data_version, board,
                       paths.final_networks)


def train_final(table: FeatureTable, settings: EvaluationSettings, models_dir: Path | str,
                data_version: str, board: Leaderboard | None = None,
                finals: Path | None = None) -> dict[str, dict[str, Any]]:
    """Each network of ``train.models`` on all labelled days with the first seed; write its
    folder.

    The network is the evaluation's own next refit where ``finals`` (``tsepipe evaluate``'s
    final networks) has it for this config and features: its walk-forward continued on
    every labelled day, as each evaluated forecast's model was made (warm refits). Else
    (cold refits, or none there) a fit from scratch.
    """
    device = devices.detect_device()
    window = settings.features.window
    days = labelled_sample_days(table, window)
    cards = {}
    for name, config in settings.train.models.items():
        view = table.view(config.features or None)
        model, scaler, run, made = _final_network(name, config, view, window, days,
                                                  settings, finals)
        folder = Path(models_dir) / name
        save_model(model, folder / MODEL_FILE)
        scaler.save(folder / SCALER, view.names)
        eligible, reason = cudnn_eligible(config)
        row = board.models.get(name) if board else None
        evaluated = row.model_dump(mode="json", exclude_unset=True) if row else {}
        card = {
            "name": name,
            "config": config.to_dict(),
            "input_shape": [settings.features.window, len(view.names)],
            "feature_set": view.set_name,
            "features": list(view.names),  # per index, from the fields its file has
            "params": count_params(model),
            "cudnn_eligible": eligible,
            "cudnn_note": reason,
            "data_version": data_version,
            "git_commit": git_commit(),
            "device": device,
            "trained_on": {"days": len(days), "first": f"{table.dates[days[0]]:%Y-%m-%d}",
                           "last": f"{table.dates[days[-1]]:%Y-%m-%d}",
                           "seed": settings.train.seeds[0]},
            "training": {"epochs": run.epochs, "seconds": round(run.seconds, 3),
                         "seconds_per_epoch": round(run.seconds / max(run.epochs, 1), 4),
                         "made": made},
            "walk_forward": {k: evaluated.get(k) for k in ("test", "test_by_seed", "training")},
            "model_md5": file_md5(folder / MODEL_FILE),
        }
        write_json(folder / MODEL_CARD, card)
        log_training(run.history, folder / TRAINING_LOG)
        cards[name] = card
    if board is not None:
        write_json(Path(models_dir) / CHAMPION, champion_record(board, data_version))
    return cards


def _final_network(name: str, config: Any, view: FeatureTable, window: int,
                   days: Any, settings: EvaluationSettings, finals: Path | None
                   ) -> tuple[Any, TrainOnlyScaler, NetworkRun, str]:
    """(model, scaler, run, how it was made) for one network: the evaluation's final fit
    when it matches, else a fresh fit."""
    seed = settings.train.seeds[0]
    found = read_final(finals, name) if finals is not None else None
    if found is not None:
        meta, weights = found
        if (meta["config"] == config.to_dict() and meta["features"] == list(view.names)
                and meta["seed"] == seed and meta["days"] == len(days)):
            try:
                model = network_from_copy(config, (window, len(view.names)), weights)
            except ValueError:
                model = None
            if model is not None:
                run = NetworkRun(meta["epochs"], meta["seconds"], meta["history"], True, seed)
                scaler = TrainOnlyScaler().fit(view.features, int(days[-1]))
                return model, scaler, run, (
                    f"the walk-forward's last model (seed {seed}) continued for "
                    f"{meta['epochs']} epochs on every labelled day (tsepipe evaluate)")
    model, scaler, run = fit_network(config, view, window, days, seed,
                                     deterministic=settings.train.deterministic,
                                     mixed_precision=settings.train.mixed_precision)
    return model, scaler, run, "a fit from scratch on every labelled day"


def champion_record(board: Leaderboard, data_version: str) -> dict[str, Any]:
    """What ``models/champion.json`` says: which model forecasts, and why. The models
    folder is DVC's ``tedpix-models`` artifact (dvc.yaml), so whoever fetches it with
    ``dvc artifacts get`` knows which of its networks (or which baseline) to use."""
    row = board.models[board.champion]
    return {"champion": board.champion, "kind": row.kind,
            "folder": board.champion if row.kind == "network" else None,
            "members": row.members,  # a combination's: the mean of their probabilities
            "reason": board.champion_reason, "test": row.test,
            "data_version": data_version}


LOGGED = ("loss", "val_loss")  # per epoch; DVCLive also writes each one's last value


def log_training(history: dict[str, list[float]], folder: Path) -> None:
    """Log a fit's loss and validation loss per epoch with DVCLive, in ``folder`` (one step
    per epoch). DVCLive only writes files here: no experiment, no dvc.yaml (the project's
    declares these plots and metrics), no report."""
    from dvclive import Live

    with Live(dir=str(folder), save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for epoch in range(len(history.get("loss", []))):
            for key in LOGGED:
                if key in history:
                    live.log_metric(key, round(float(history[key][epoch]), 6))
            live.next_step()
