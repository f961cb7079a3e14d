"""Honest evaluation: chronological split, walk-forward validation and test, baselines.

The labelled days (a window is available and the next close is known) are split in
time order into train / validation / test. Both later spans are walked forward with the
same rule: every ``refit_every`` days each model is refitted on all labelled days before
the block minus a ``gap``, so that no training label reaches into it, and predicts each
day of the block once. Scalers are fitted on the same training rows only. Networks run
over several seeds (fitted together, one walk-forward per network, the networks in
parallel processes on Dask); their mean probability is the model's prediction, and the
per-seed metrics give the spread. With ``warm_start`` a network's refits after the first
continue from the previous block's weights (``pipelines.modelling.fitting``), and each
chain ends with one more refit on every labelled day, every seed of it: the networks
``tsepipe train`` saves, made as each evaluated forecast's model was.

This stage only forecasts: it writes every network's and baseline's out-of-sample P(up)
and class (``pipelines.modelling.results``) and the final fits. The combinations, the
scores, the champion and the calibration are the select stage's
(``pipelines.modelling.select``), which reads those files: changing the champion rule
needs no refit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pipelines.core.fileio import atomic_folder
from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import FILES, Paths
from pipelines.core.params.train import ModelConfig
from pipelines.modelling import metrics as m
from pipelines.modelling.baselines import baseline_walk_forward
from pipelines.modelling.features import (
    FeatureTable,
    chronological_split,
    dataset_table,
    labelled_sample_days,
)
from pipelines.modelling.fitting import (
    Chain,
    FinalFit,
    NetworkRun,
    chains_for,
    save_final,
    walk_forward_chains,
)
from pipelines.modelling.results import Evaluation, ModelResult, write_walk_forward
from pipelines.modelling.settings import EvaluationSettings
from pipelines.modelling.walkforward import walk_forward_blocks

# What each baseline reads, for the leaderboard.
BASELINE_INPUTS = {
    "majority": "the share of up days among the training labels",
    "always_up": "nothing",
    "persistence": "the direction of the move into the day",
    "logistic": "the target's last 5 log returns",
    "logistic_window": "the window of the feature set the networks read",
}


def evaluate(paths: Paths, data: DataSection, settings: EvaluationSettings,
             progress: Callable[[str], None] | None = None) -> Evaluation:
    """The evaluate stage: every network and baseline walked forward on the merged dataset;
    their forecasts, record and final fits written to ``paths.walk_forward_dir`` (the
    folder written aside and swapped in whole: a failed or killed run leaves the last good
    one)."""
    table, _ = dataset_table(paths, data, settings.features)
    evaluation = evaluate_models(table, settings, progress=progress, final=True)
    with atomic_folder(paths.walk_forward_dir) as staging:
        for name, result in evaluation.results.items():
            if result.final is not None:  # tsepipe train saves these as the networks
                save_final(staging / FILES["final_networks"], name,
                           settings.train.models[name], result.features, result.final)
        write_walk_forward(evaluation, staging / FILES["walk_forward"],
                           staging / FILES["walk_forward_record"])
    return evaluation


def evaluate_models(table: FeatureTable, settings: EvaluationSettings,
                    configs: dict[str, ModelConfig] | None = None,
                    progress: Callable[[str], None] | None = None, final: bool = False
                    ) -> Evaluation:
    """Walk-forward validation and test predictions of every network and baseline.

    ``table``: the feature table of the default set, ``features.set`` (its ``view`` reaches
    the others).
    ``configs``: model name -> ``ModelConfig``, the networks (default: ``train.models``;
    a sweep passes its own). ``progress`` gets one line per network refit: "lstm seed 2/3:
    refit 5/9 (...); ETA 1m20s".
    """
    say = progress or (lambda message: None)
    configs = settings.train.models if configs is None else configs
    window, walk, seeds = settings.features.window, settings.evaluate, settings.train.seeds
    labelled = labelled_sample_days(table, window)
    split = chronological_split(labelled, settings.split.validation_fraction,
                                settings.split.test_fraction)
    validation_blocks = walk_forward_blocks(labelled, split.validation, walk.refit_every,
                                            walk.gap) if len(split.validation) else None
    test_blocks = walk_forward_blocks(labelled, split.test, walk.refit_every, walk.gap)
    blocks = (validation_blocks + test_blocks) if validation_blocks else test_blocks
    n_validation = len(split.validation)
    default = table  # the view of features.set (dataset_table makes it so)
    results: dict[str, ModelResult] = {}
    for name in walk.baselines:
        proba, cls = baseline_walk_forward(name, default, blocks, window)
        results[name] = ModelResult(
            name, "baseline", proba[:n_validation], proba[n_validation:],
            validation_cls=cls[:n_validation], test_cls=cls[n_validation:],
            features=default.names if name == "logistic_window" else [],
            feature_set=default.set_name if name == "logistic_window" else "")
    chains = chains_for({name: (config, default.view(config.features or None))
                         for name, config in configs.items()}, seeds)
    if chains:
        say(f"{len(configs)} networks x {len(seeds)} seeds (fitted together), "
            f"{len(blocks)} refits each "
            f"({len(validation_blocks or [])} validation, {len(test_blocks)} test blocks), "
            f"{'warm' if walk.warm_start else 'cold'} refits")
    options = {"deterministic": settings.train.deterministic,
               "mixed_precision": settings.train.mixed_precision,
               "warm_start": walk.warm_start, "warm_epochs": walk.warm_epochs,
               "final_days": labelled if final and walk.warm_start else None}
    outcomes = walk_forward_chains(chains, window, blocks, options, walk.workers,
                                   progress=lambda m: say(_progress_line(m)),
                                   scheduler=walk.scheduler)
    results.update(_network_results(configs, chains, outcomes, seeds, n_validation))
    for result in results.values():
        result.reads = _reads(result.name, result, window)
        if result.kind == "network":
            result.summary = _network_summary(result, table.labels[split.test].astype(int))
    device = next((run.device for result in results.values() for run in result.runs
                   if run.device), None)  # the chains' own
    return Evaluation(table.dates, table.labels, split, split.validation, split.test, results,
                      settings, table.close, device)


def _network_results(configs: dict[str, ModelConfig], chains: list[Chain],
                     outcomes: list[tuple], seeds: Sequence[int], n_validation: int
                     ) -> dict[str, ModelResult]:
    """Each network's result from its chains' outcomes: the mean over seeds of the
    probabilities (validation days first, ``n_validation`` of them, then test days), each
    seed's test probabilities, the runs, and the final refit of every seed."""
    results = {}
    for name, config in configs.items():
        own = [(chain, outcome) for chain, outcome in zip(chains, outcomes, strict=True)
               if chain.name == name]
        rows = {seed: proba for chain, (probabilities, _, _) in own
                for seed, proba in zip(chain.seeds, probabilities, strict=True)}
        by_seed = [rows[seed] for seed in seeds]
        view = own[0][0].table
        finals = [outcome[2] for _, outcome in own]
        results[name] = ModelResult(
            name, "network", np.mean([p[:n_validation] for p in by_seed], axis=0),
            np.mean([p[n_validation:] for p in by_seed], axis=0),
            [p[n_validation:] for p in by_seed], [run for _, o in own for run in o[1]],
            config.to_dict(), features=view.names, feature_set=view.set_name,
            final=FinalFit.joined(finals) if all(finals) else None)
    return results


def _network_summary(result: ModelResult, y_test: np.ndarray) -> dict[str, Any]:
    """A network's record beside its forecasts: its fits (``training``) and the spread of
    its seeds' test scores (``test_by_seed``)."""
    return {"test_by_seed": m.summarise_seeds([m.classification_metrics(y_test, p)
                                               for p in result.test_proba_by_seed]),
            "training": _training(result.runs)}


def _progress_line(message: dict[str, Any]) -> str:
    eta = message.get("eta_seconds")
    eta_text = f"{int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else "?"
    seeds = message["seeds"]
    return (f"{message['model']} seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))}: refit "
            f"{message['refit']}/{message['refits']} ({message['epochs']} epochs, "
            f"{message['seconds']:.1f} s); {message['done']}/{message['total']} refits done, "
            f"ETA {eta_text}")


def _reads(name: str, result: ModelResult, window: int) -> str:
    if result.kind == "baseline":
        return BASELINE_INPUTS.get(name, "")
    return (f"the last {window} days of the feature set {result.feature_set} "
            f"({len(result.features)} features)")


def _training(runs: list[NetworkRun]) -> dict[str, Any]:
    cold = [r for r in runs if not r.warm]
    warm = [r for r in runs if r.warm]
    return {
        "fits": len(runs),
        "warm_fits": len(warm),
        "epochs_mean": float(np.mean([r.epochs for r in runs])),
        "epochs_mean_cold": float(np.mean([r.epochs for r in cold])) if cold else None,
        "epochs_mean_warm": float(np.mean([r.epochs for r in warm])) if warm else None,
        "seconds_total": float(sum(r.seconds for r in runs)),
        "seconds_per_epoch": float(sum(r.seconds for r in runs)
                                   / max(1, sum(r.epochs for r in runs))),
    }
