"""Final models: everything the champion forecasts with, fitted on every labelled day.

``models/`` is DVC's ``tedpix-models`` artifact: what it holds is all ``predict`` needs,
so ``dvc artifacts get`` gives the forecast that was published.

- Each network of ``train.models``, every seed of ``train.seeds`` (the evaluation scored
  their mean, so the forecast is their mean): ``models/<name>/seed_<k>.keras`` (loads with
  Keras safe mode), ``scaler.json`` (the training-rows-only standardisation), ``card.json``
  (config, every seed with its file's MD5 and epochs, parameter count, cuDNN eligibility,
  data version, git commit, device, training time, walk-forward metrics) and ``dvclive/``
  (the final fit's loss and validation loss per epoch, the mean over the seeds, logged with
  DVCLive: ``dvclive/plots/metrics/*.tsv`` for ``dvc plots``, the last epoch's values in
  ``dvclive/metrics.json`` for ``dvc metrics`` and ``dvc exp show``). Each is the
  evaluation's own final fit when it matches (the walk-forward continued on every labelled
  day), else a fit from scratch.
- Each baseline of the leaderboard, fitted on the same days:
  ``models/<name>/baseline.json`` (``baselines.fit_baseline``: plain numbers).
- ``models/champion.json`` (``champion_record``): the champion, why, its test record with
  its interval, its calibration map and the reliability of its published probability, the
  stand-in baselines in order, and the share of up days in the training span.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core import devices
from pipelines.core.errors import DataError
from pipelines.core.fileio import atomic_folder, file_md5, write_json
from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import (
    BASELINE,
    CHAMPION,
    MODEL_CARD,
    SCALER,
    TARGETS,
    TRAINING_LOG,
    Paths,
    model_file,
)
from pipelines.core.provenance import git_commit
from pipelines.modelling.baselines import fit_baseline
from pipelines.modelling.features import (
    FeatureTable,
    TrainOnlyScaler,
    dataset_table,
    labelled_sample_days,
)
from pipelines.modelling.fitting import GLOBAL, NetworkRun, fit_seeds, read_final
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.modelling.models import (
    copy_layers,
    count_params,
    cudnn_eligible,
    network_from_copy,
    save_model,
)
from pipelines.modelling.settings import EvaluationSettings


def train(paths: Paths, data: DataSection, settings: EvaluationSettings
          ) -> dict[str, dict[str, Any]]:
    """The train stage: every network and baseline on the merged dataset, and the
    champion's record, into ``paths.models_dir``; the networks' cards. The folder is
    written aside and swapped in whole: a failed run leaves the last good models, and
    nothing of an older layout (a network or seed no longer trained) lingers in it."""
    table, data_version = dataset_table(paths, data, settings.features)
    board = Leaderboard.read(paths.leaderboard)
    days = labelled_sample_days(table, settings.features.window)
    with atomic_folder(paths.models_dir, keep=(TARGETS,)) as staging:
        cards = train_final(table, settings, staging, data_version, board,
                            paths.final_networks, data.target_index)
        for name in (n for n, row in board.models.items() if row.kind == "baseline"):
            write_json(staging / name / BASELINE,
                       fit_baseline(name, table, settings.features.window, days))
        write_json(staging / CHAMPION, champion_record(board, table, days, data_version))
    return cards


def train_final(table: FeatureTable, settings: EvaluationSettings, models_dir: Path | str,
                data_version: str, board: Leaderboard | None = None,
                finals: Path | None = None, target: str = "") -> dict[str, dict[str, Any]]:
    """Each network of ``train.models`` on all labelled days, every seed; write its folder.

    Each network is the evaluation's own next refit where ``finals`` (``tsepipe
    evaluate``'s final networks) has it for this config, features and seeds: its
    walk-forward continued on every labelled day, as each evaluated forecast's model was
    made (warm refits). Else (cold refits, or none there) a fit from scratch, the seeds
    fitted together as in the walk-forward. A global network (``global_NAME``) is the
    walk-forward's final fit, for ``target`` (its card's ``target_code``).
    """
    device, window, cards = devices.detect_device(), settings.features.window, {}
    days = labelled_sample_days(table, window)
    networks = dict(settings.train.models) | {
        name: settings.train.models[name.removeprefix(GLOBAL)]
        for name in (board.models if board else {}) if name.startswith(GLOBAL)}
    for name, config in networks.items():
        view = table.view(config.features or None)
        code = _target_code(name, target, finals)
        coded = len(code["targets"]) if code else 0
        seeds, runs, made = _final_network(name, config, view, window, days, settings, finals,
                                           coded)
        folder = Path(models_dir) / name
        for seed, model in seeds.items():
            save_model(model, folder / model_file(seed))
        TrainOnlyScaler().fit(view.features, int(days[-1])).save(folder / SCALER, view.names)
        eligible, reason = cudnn_eligible(config)
        evaluated = (board.models[name].model_dump(mode="json", exclude_unset=True)
                     if board and name in board.models else {})
        files = {seed: file_md5(folder / model_file(seed)) for seed in seeds}
        card = {
            "name": name,
            "config": config.to_dict(),
            "input_shape": [window, len(view.names) + coded],
            "target_code": code,  # a global network's: the targets of its code, and this one
            "feature_set": view.set_name,
            "features": list(view.names),  # per index, from the fields its file has
            "params": count_params(next(iter(seeds.values()))),  # of one seed's network
            "cudnn_eligible": eligible,
            "cudnn_note": reason,
            "data_version": data_version,
            "git_commit": git_commit(),
            "device": device,
            "trained_on": {"days": len(days), "first": f"{table.dates[days[0]]:%Y-%m-%d}",
                           "last": f"{table.dates[days[-1]]:%Y-%m-%d}"},
            # the forecast is the mean of these networks' P(up), as the evaluation scored it
            "seeds": [{"seed": seed, "file": model_file(seed), "md5": files[seed],
                       "epochs": runs[seed].epochs} for seed in seeds],
            "training": {"epochs": max(run.epochs for run in runs.values()),
                         "seconds": round(sum(run.seconds for run in runs.values()), 3),
                         "made": made},
            "walk_forward": {k: evaluated.get(k) for k in ("test", "test_by_seed", "training")},
            "model_md5": hashlib.md5("".join(files[s] for s in seeds).encode()).hexdigest(),
        }
        write_json(folder / MODEL_CARD, card)
        log_training([run.history for run in runs.values()], folder / TRAINING_LOG)
        cards[name] = card
    return cards


def _target_code(name: str, target: str, finals: Path | None) -> dict[str, Any] | None:
    """A global network's ``target_code`` (its targets, in the order of its one-hot code,
    and the one this copy forecasts), from the walk-forward's final fit; None for others."""
    if not name.startswith(GLOBAL):
        return None
    found = read_final(finals, name) if finals is not None else None
    if found is None or target not in (found[0].get("targets") or []):
        raise DataError(f"{name}: no final fit of this global network for {target} in "
                        f"{finals}: a global network is trained by tsepipe evaluate (with "
                        "evaluate.warm_start: true); run it again")
    return {"targets": found[0]["targets"], "target": target}


def _final_network(name: str, config: Any, view: FeatureTable, window: int,
                   days: Any, settings: EvaluationSettings, finals: Path | None,
                   coded: int) -> tuple[dict[int, Any], dict[int, NetworkRun], str]:
    """({seed: model}, {seed: run}, how they were made) for one network: the evaluation's
    final fit when it matches, else a fresh fit of every seed (a global network, reading
    ``coded`` more inputs, has only the evaluation's)."""
    seeds = list(settings.train.seeds)
    shape = (window, len(view.names) + coded)
    found = read_final(finals, name) if finals is not None else None
    if found is not None:
        meta, weights = found
        if (meta["config"] == config.to_dict() and meta["features"] == list(view.names)
                and meta["seeds"] == sorted(seeds) and meta["days"] == len(days)):
            try:
                models = {seed: network_from_copy(config, shape, weights[seed])
                          for seed in seeds}
            except ValueError:
                models = None
            if models is not None:
                runs = {seed: NetworkRun(meta["runs"][str(seed)]["epochs"],
                                         meta["runs"][str(seed)]["seconds"],
                                         meta["runs"][str(seed)]["history"], True, seed)
                        for seed in seeds}
                epochs = max(run.epochs for run in runs.values())
                return models, runs, (
                    f"the walk-forward's last models (seeds {', '.join(map(str, seeds))}) "
                    f"continued for {epochs} epochs on every labelled day (tsepipe evaluate)")
    stack, _, stack_runs = fit_seeds(config, view, window, days, seeds,
                                     deterministic=settings.train.deterministic,
                                     mixed_precision=settings.train.mixed_precision)
    models = {seed: network_from_copy(config, shape, [layer.get_weights() for layer in
                                                      copy_layers(stack, seed)])
              for seed in seeds}
    return models, {run.seed: run for run in stack_runs}, (
        "a fit from scratch on every labelled day, every seed")


def champion_record(board: Leaderboard, table: FeatureTable, days: np.ndarray,
                    data_version: str) -> dict[str, Any]:
    """What ``models/champion.json`` says: which model forecasts and why, its record on the
    walk-forward test days (with its interval), its calibration (the map, and how often its
    out-of-sample forecasts in each band went up), the baselines that stand in for it (best
    on validation first), and the training span with its share of up days (the base rate
    the call is measured against). The models folder is DVC's ``tedpix-models`` artifact,
    so whoever fetches it with ``dvc artifacts get`` has what ``predict`` forecasts with."""
    row = board.models[board.champion]
    labels = table.labels[days]
    return {"champion": board.champion, "kind": row.kind,
            "members": row.members,  # a combination's: the mean of their probabilities
            "member_kinds": {member: board.models[member].kind for member in row.members},
            "reason": board.champion_reason, "metric": board.champion_metric,
            "test": row.test, "validation": row.validation,
            "test_span": {"days": board.days.test, "first": board.days.test_first,
                          "last": board.days.test_last},
            "calibration": board.calibration,
            "stand_ins": board.baselines_by_validation or [board.stand_in],
            "trained_on": {"days": len(days), "first": f"{table.dates[days[0]]:%Y-%m-%d}",
                           "last": f"{table.dates[days[-1]]:%Y-%m-%d}",
                           "share_up": float(np.mean(labels))},
            "data_version": data_version}


LOGGED = ("loss", "val_loss")  # per epoch; DVCLive also writes each one's last value


def log_training(histories: list[dict[str, list[float]]], folder: Path) -> None:
    """Log a final fit's loss and validation loss per epoch with DVCLive, in ``folder`` (one
    step per epoch): the mean over the seeds that ran that epoch. DVCLive only writes files
    here: no experiment, no dvc.yaml (the project's declares these plots and metrics), no
    report."""
    from dvclive import Live

    epochs = max((len(history.get("loss", [])) for history in histories), default=0)
    with Live(dir=str(folder), save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for epoch in range(epochs):
            for key in LOGGED:
                values = [h[key][epoch] for h in histories if len(h.get(key, [])) > epoch]
                if values:
                    live.log_metric(key, round(float(np.mean(values)), 6))
            live.next_step()
