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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core.errors import DataError
from pipelines.core.fileio import atomic_folder, write_json
from pipelines.core.params.data import DataSection
from pipelines.core.params.paths import FILES, Paths
from pipelines.core.params.train import ModelConfig
from pipelines.modelling import metrics as m
from pipelines.modelling.baselines import baseline_walk_forward
from pipelines.modelling.features import (
    FeatureTable,
    chronological_split,
    labelled_sample_days,
    target_tables,
)
from pipelines.modelling.fitting import (
    GLOBAL,
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
             progress: Callable[[str], None] | None = None) -> dict[str, Evaluation]:
    """The evaluate stage: every network and baseline walked forward on the merged dataset,
    for each target (``data.targets``), and the global networks over all of them; each
    target's forecasts, record and final fits written to its ``walk_forward_dir``
    (``Paths.for_target``; the folder written aside and swapped in whole, the further
    targets' inside it: a failed or killed run leaves the last good one)."""
    tables, missing = target_tables(paths, data, settings.features)
    if missing and progress:
        progress(f"warning: data.targets: {', '.join(missing)} not in the merged dataset "
                 "(left out by validation or the merge): not forecast")
    evaluations = evaluate_targets(tables, settings, progress=progress, final=True,
                                   cache=paths.chain_cache)
    targets = list(evaluations)
    with atomic_folder(paths.walk_forward_dir) as staging:
        write_json(staging / FILES["targets_table"], {
            "headline": data.target_index, "targets": targets,
            "not_forecast": [{"target": target, "reason": "not in the merged dataset (left "
                              "out by validation or the merge)"} for target in missing]})
        for target, evaluation in evaluations.items():
            folder = staging if target == data.target_index else \
                staging / FILES["targets_dir"] / target
            for name, result in evaluation.results.items():
                if result.final is not None:  # tsepipe train saves these as the networks
                    is_global = name.startswith(GLOBAL)
                    config = settings.train.models[name.removeprefix(GLOBAL) if is_global
                                                   else name]
                    save_final(folder / FILES["final_networks"], name, config,
                               result.features, result.final,
                               targets if is_global else ())
            write_walk_forward(evaluation, folder / FILES["walk_forward"],
                               folder / FILES["walk_forward_record"])
    return evaluations


def evaluate_models(table: FeatureTable, settings: EvaluationSettings,
                    configs: dict[str, ModelConfig] | None = None,
                    progress: Callable[[str], None] | None = None, final: bool = False
                    ) -> Evaluation:
    """Walk-forward validation and test predictions of every network and baseline of one
    target (``evaluate_targets`` of one table; a sweep passes its own ``configs``)."""
    return evaluate_targets({"": table}, settings, configs, progress, final)[""]


def evaluate_targets(tables: dict[str, FeatureTable], settings: EvaluationSettings,
                     configs: dict[str, ModelConfig] | None = None,
                     progress: Callable[[str], None] | None = None, final: bool = False,
                     cache: Path | None = None) -> dict[str, Evaluation]:
    """Walk-forward validation and test predictions of every network and baseline, for
    each target of ``tables`` (target -> its feature table of the default set,
    ``features.set``, whose ``view`` reaches the others; the tables share their days and
    features), and, with several targets, of each global network (``train.global_networks``,
    one over every target's windows, a candidate for each). Every (target, network) chain
    and global network is one Dask task: W workers keep min(W, chains) busy.

    ``configs``: the networks (default: ``train.models``; a sweep passes its own).
    ``progress``: a line per refit. ``cache``: chains run before, reused where unchanged.
    """
    say = progress or (lambda _: None)
    configs = settings.train.models if configs is None else configs
    window, walk, seeds = settings.features.window, settings.evaluate, settings.train.seeds
    targets, (labelled, split, validation_blocks, test_blocks) = list(tables), _walk(
        tables, settings)
    blocks = (validation_blocks + test_blocks) if validation_blocks else test_blocks
    n_validation = len(split.validation)
    results = {target: _baseline_results(default, walk.baselines, blocks, window, n_validation)
               for target, default in tables.items()}  # the view of features.set
    many = len(targets) > 1
    panels = {f"{GLOBAL}{name}": configs[name] for name in settings.train.global_networks
              if name in configs} if many else {}
    chains = _chains(tables, configs, panels, seeds)
    if chains:
        say(f"{len(configs)} networks x {len(seeds)} seeds (fitted together)"
            + (f" for each of {len(targets)} targets, and {len(panels)} global: "
               f"{len(chains)} chains" if many else "")
            + f", {len(blocks)} refits each ({len(validation_blocks or [])} validation, "
            f"{len(test_blocks)} test blocks), {'warm' if walk.warm_start else 'cold'} refits")
    options = {"deterministic": settings.train.deterministic,
               "mixed_precision": settings.train.mixed_precision,
               "warm_start": walk.warm_start, "warm_epochs": walk.warm_epochs,
               "final_days": labelled if final and walk.warm_start else None}
    outcomes = walk_forward_chains(chains, window, blocks, options, walk.workers,
                                   progress=lambda m: say(_progress_line(m)),
                                   scheduler=walk.scheduler, cache=cache)
    evaluations = {}
    for number, (target, own) in enumerate(results.items()):
        done = [(chain, outcome) for chain, outcome in zip(chains, outcomes, strict=True)
                if chain.panel is None and chain.target == (target if many else "")]
        done += [(replace(chain, panel=None), (outcome[0][..., number], *outcome[1:]))
                 for chain, outcome in zip(chains, outcomes, strict=True)
                 if chain.panel is not None]  # a global network: this target's slice
        own.update(_network_results(configs | panels, done, seeds, n_validation))
        for result in own.values():
            result.reads = _reads(result.name, result, window, len(targets))
            if result.kind == "network":
                result.summary = _network_summary(
                    result, tables[target].labels[split.test].astype(int))
        device = next((run.device for result in own.values() for run in result.runs
                       if run.device), None)  # the chains' own
        target_table = tables[target]
        evaluations[target] = Evaluation(target_table.dates, target_table.labels, split,
                                         split.validation, split.test, own, settings,
                                         target_table.close, device)
    return evaluations


def _walk(tables: dict[str, FeatureTable], settings: EvaluationSettings
          ) -> tuple[np.ndarray, Any, Any, Any]:
    """(the labelled days, their split, the validation blocks or None, the test blocks):
    the same for every target (their tables share their days)."""
    window, walk = settings.features.window, settings.evaluate
    labelled = labelled_sample_days(next(iter(tables.values())), window)
    for target, other in tables.items():
        if not np.array_equal(labelled_sample_days(other, window), labelled):
            raise DataError(f"target {target}: its labelled days are not the headline "
                            f"target's (a dataset the merge did not write?)")
    split = chronological_split(labelled, settings.split.validation_fraction,
                                settings.split.test_fraction)
    validation_blocks = walk_forward_blocks(labelled, split.validation, walk.refit_every,
                                            walk.gap) if len(split.validation) else None
    return (labelled, split, validation_blocks,
            walk_forward_blocks(labelled, split.test, walk.refit_every, walk.gap))


def _baseline_results(table: FeatureTable, baselines: Sequence[str], blocks: Any, window: int,
                      n_validation: int) -> dict[str, ModelResult]:
    """Every baseline walked forward on one target's table (validation days first)."""
    results = {}
    for name in baselines:
        proba, cls = baseline_walk_forward(name, table, blocks, window)
        results[name] = ModelResult(
            name, "baseline", proba[:n_validation], proba[n_validation:],
            validation_cls=cls[:n_validation], test_cls=cls[n_validation:],
            features=table.names if name == "logistic_window" else [],
            feature_set=table.set_name if name == "logistic_window" else "")
    return results


def _chains(tables: dict[str, FeatureTable], configs: dict[str, ModelConfig],
            panels: dict[str, ModelConfig], seeds: Sequence[int]) -> list[Chain]:
    """The walk-forward chains: each global network of ``panels`` over every target (its
    labels stacked, first: the longest chains start first), then one per (target,
    network); a single target's chains name no target."""
    targets = list(tables)
    table = tables[targets[0]]
    labels = np.stack([tables[target].labels for target in targets])
    chains = [Chain(name, config, table.view(config.features or None), tuple(seeds),
                    panel=labels) for name, config in panels.items()]
    for target, default in tables.items():
        chains += [replace(chain, target=target if len(targets) > 1 else "")
                   for chain in chains_for({name: (config, default.view(config.features or None))
                                            for name, config in configs.items()}, seeds)]
    return chains


def _network_results(configs: dict[str, ModelConfig], done: list[tuple[Chain, tuple]],
                     seeds: Sequence[int], n_validation: int) -> dict[str, ModelResult]:
    """Each network's result from its chains' outcomes (one target's): the mean over seeds
    of the probabilities (validation days first, ``n_validation`` of them, then test days),
    each seed's test probabilities, the runs, and the final refit of every seed."""
    results = {}
    for name, config in configs.items():
        own = [(chain, outcome) for chain, outcome in done if chain.name == name]
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
    if "cached" in message:
        return (f"{message['cached']} of {message['total_chains']} chains from the last runs "
                "(their inputs unchanged: paths.walk_forward_dir's .walk_forward_cache)")
    eta = message.get("eta_seconds")
    eta_text = f"{int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else "?"
    seeds = message["seeds"]
    return (f"{message['model']} seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, seeds))}: refit "
            f"{message['refit']}/{message['refits']} ({message['epochs']} epochs, "
            f"{message['seconds']:.1f} s); {message['done']}/{message['total']} refits done, "
            f"ETA {eta_text}")


def _reads(name: str, result: ModelResult, window: int, targets: int) -> str:
    if result.kind == "baseline":
        return BASELINE_INPUTS.get(name, "")
    reads = (f"the last {window} days of the feature set {result.feature_set} "
             f"({len(result.features)} features)")
    if name.startswith(GLOBAL):
        reads += (f" and which index it forecasts: one network trained on all {targets} "
                  "targets' windows")
    return reads


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
