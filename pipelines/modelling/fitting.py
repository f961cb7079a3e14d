"""Fitting networks: one fit, its predictions, and a walk-forward chain of refits.

``fit_network`` fits a network on some training days (the scaler on their rows only);
``fit_seeds`` fits it once per seed at the same time, as one seed stack
(``models.build_seed_stack``: each copy learns as it would alone, on the same batches).
``predict_network`` reads windows up to the days it predicts and no further. A walk-forward
chain (``network_walk_forward``, every seed of one network) refits at the start of every
block on all labelled days before it (less a gap) and predicts the block. With
``warm_start`` the first fit is cold (all of ``config.epochs``, early stopping) and every
later refit continues from the previous block's weights for ``warm_epochs`` on the
expanded window: the weights were learned on earlier days only, so nothing leaks, and a
refit costs a fraction of a cold one. Without it every refit starts from scratch. A chain
can end with one more warm refit on every labelled day (``FinalFit``): the network
``tsepipe train`` saves (``save_final``, ``read_final``).

``walk_forward_chains`` runs the chains (one per network) as Dask tasks, on a local
cluster (one worker process per core, one TensorFlow thread each where cores allow) or on
an existing cluster (``evaluate.scheduler``: GPU workers elsewhere can take the chains),
and reports each refit to a progress callback (for "model seeds 1, 2, 3: refit i/M, ETA"
lines).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core import devices
from pipelines.core.devices import TF_THREAD_ENV
from pipelines.core.fileio import write_json
from pipelines.core.processes import descendants, stop_processes
from pipelines.modelling.features import FeatureTable, TrainOnlyScaler, windows
from pipelines.modelling.models import (
    build_model,
    build_seed_stack,
    copy_layers,
    early_stopping,
    seed_output,
    seed_stopping,
)
from pipelines.modelling.walkforward import Blocks

Progress = Callable[[dict[str, Any]], None]
CONNECT_TIMEOUT_S = 30  # to an existing Dask scheduler


class _SchedulerGone(logging.Filter):
    """A Dask worker whose scheduler went away (its stage stopped or killed: the worker is
    stopped next) says so in its one line, without the traceback of the closed connection
    that Dask logs with it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith(
                "Failed to communicate with scheduler"):
            record.exc_info, record.exc_text = None, None
        return True


# in each worker process too: it imports this module to run the chains (``_run_chain``)
logging.getLogger("distributed.worker").addFilter(_SchedulerGone())
DASHBOARD_ENV = "TSEPIPE_DASK_DASHBOARD"  # e.g. :8787: a local cluster serves its dashboard there


def dashboard_options() -> dict[str, Any]:
    """A local Dask cluster's keywords for its dashboard: at the address ``TSEPIPE_DASK_DASHBOARD``
    names (``:8787``, ``127.0.0.1:8787``; Bokeh must be installed), else none. Dask's scheduler
    serves HTTP either way; without a dashboard it listens on a free port of 127.0.0.1, so
    it never reports "Port 8787 is already in use" when another cluster holds that port."""
    asked = os.environ.get(DASHBOARD_ENV, "").strip()
    if asked:
        return {"dashboard_address": asked}
    return {"dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False}}
PREDICT_BATCH = 256
GLOBAL = "global_"  # a global network's name: global_NAME, NAME a network of train.models


@dataclass
class NetworkRun:
    """What one fit of a network did (for the model card and the benchmark)."""

    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    warm: bool = False  # continued from the previous block's weights
    seed: int | None = None
    stacked: int = 1  # seeds fitted together in one seed stack (seconds: its share)
    device: dict[str, Any] | None = None  # where it ran (devices.detect_device)
    worker: str | None = None  # the Dask worker that ran its chain (its address), if any


def with_code(x: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Window samples (n, window, F) with a target's one-hot ``code`` (K,) added to every
    day of each: what a global network reads for that target."""
    codes = np.broadcast_to(np.asarray(code, dtype=x.dtype), (*x.shape[:2], len(code)))
    return np.concatenate([x, codes], axis=2)


def panel_samples(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A global network's samples: each of the n days' window ``x`` (n, window, F) once
    per target, tagged with the target's one-hot code, day by day (day 1's K targets, then
    day 2's, ...: the held-out last tenth of a fit is its latest days); the labels (K, n)
    in the same order."""
    targets = len(labels)
    codes = np.tile(np.eye(targets, dtype=x.dtype), (len(x), 1))[:, None, :]
    repeated = np.repeat(x, targets, axis=0)
    tagged = np.concatenate([repeated, np.broadcast_to(
        codes, (len(repeated), x.shape[1], targets))], axis=2)
    return tagged, np.asarray(labels).T.reshape(-1)


def _training_data(table: FeatureTable, window: int, train_days: np.ndarray, batch: int,
                   panel: np.ndarray | None = None
                   ) -> tuple[TrainOnlyScaler, tuple[np.ndarray, ...]]:
    """The scaler fitted on ``train_days``'s rows only, and (x, y, x_stop, y_stop): the last
    tenth of the training days (in time order) held out for early stopping.

    Both parts are whole batches of ``batch`` where there are enough days: the held-out
    part rounded to whole batches, and the oldest days (fewer than ``batch``) left out of
    the fit. Every batch then has one shape, so XLA compiles a seed stack's step once per
    walk-forward instead of once per refit (about 3 s each, half of a warm refit).

    ``panel``: a global network's labels, one row per target (K, days): each day's window
    once per target, tagged with its code (``panel_samples``). The scaler is the features'
    (every target reads the same features), fitted on the training days' rows only.
    """
    scaler = TrainOnlyScaler().fit(table.features, int(train_days[-1]))
    samples = windows(scaler.transform(table.features[: int(train_days[-1]) + 1]), window)
    x = samples[train_days - (window - 1)]
    y = table.labels[train_days]
    if panel is not None:
        x, y = panel_samples(x, panel[:, train_days])
    n_stop = max(1, len(y) // 10)
    if len(y) >= 4 * batch:
        n_stop = max(batch, round(n_stop / batch) * batch)
        first = (len(y) - n_stop) % batch
        x, y = x[first:], y[first:]
    return scaler, (x[:-n_stop], y[:-n_stop], x[-n_stop:], y[-n_stop:])


def fit_network(config: Any, table: FeatureTable, window: int, train_days: np.ndarray,
                seed: int, *, deterministic: bool, mixed_precision: bool,
                model: Any = None, epochs: int | None = None,
                ) -> tuple[Any, TrainOnlyScaler, NetworkRun]:
    """Fit one network on ``train_days`` (scaler on their rows only); return it and its run.

    ``model``: continue training this model (a warm start) instead of building a new one,
    for ``epochs`` (default ``config.epochs``). The last tenth of the training days (in
    time order) is held out for early stopping.
    """
    if model is None:
        devices.configure(seed, deterministic=deterministic, mixed_precision=mixed_precision)
    scaler, (x, y, x_stop, y_stop) = _training_data(table, window, train_days,
                                                        config.batch_size)
    warm = model is not None
    if not warm:
        model = build_model(config, x.shape[1:])
    started = time.perf_counter()
    history = model.fit(x, y, validation_data=(x_stop, y_stop), epochs=epochs or config.epochs,
                        batch_size=config.batch_size, shuffle=True, verbose=0,
                        callbacks=[early_stopping(config)])
    seconds = time.perf_counter() - started
    run = NetworkRun(len(history.history["loss"]), seconds,
                     {k: [float(v) for v in vs] for k, vs in history.history.items()}, warm,
                     seed)
    return model, scaler, run


def fit_seeds(config: Any, table: FeatureTable, window: int, train_days: np.ndarray,
              seeds: Sequence[int], *, deterministic: bool, mixed_precision: bool,
              model: Any = None, epochs: int | None = None, panel: np.ndarray | None = None,
              ) -> tuple[Any, TrainOnlyScaler, list[NetworkRun]]:
    """``fit_network`` for every seed of ``seeds`` at once, as one seed stack
    (``models.build_seed_stack``: each seed's copy learns as it would alone, on the same
    batches, and stops early on its own); a run per seed.

    ``model``: continue this stack (a warm start) for ``epochs``. ``panel``: a global
    network's labels per target (``_training_data``).
    """
    scaler, (x, y, x_stop, y_stop) = _training_data(table, window, train_days,
                                                        config.batch_size, panel)
    warm = model is not None
    if not warm:
        import keras

        devices.configure(seeds[0], deterministic=deterministic,
                          mixed_precision=mixed_precision)
        model = build_seed_stack(config, x.shape[1:], seeds)  # seeds each copy's weights
        keras.utils.set_random_seed(seeds[0])  # the batches' order: as the first seed's
    names = [seed_output(seed) for seed in seeds]
    stopping = seed_stopping(config, seeds)
    started = time.perf_counter()
    model.fit(x, dict.fromkeys(names, y), validation_data=(x_stop, dict.fromkeys(names, y_stop)),
              epochs=epochs or config.epochs, batch_size=config.batch_size, shuffle=True,
              verbose=0, callbacks=[stopping])
    seconds = time.perf_counter() - started
    return model, scaler, [NetworkRun(stopping.epochs_run[seed], seconds / len(seeds),
                                      stopping.history[seed], warm, seed, len(seeds))
                           for seed in seeds]


def predict_network(model: Any, scaler: TrainOnlyScaler, table: FeatureTable, window: int,
                    days: np.ndarray, seeds: Sequence[int] = (), *,
                    code: np.ndarray | None = None, panel: int = 0) -> np.ndarray:
    """Probability of up for each of ``days`` (rows after ``days.max()`` are not read):
    for a seed stack of ``seeds``, one row per seed in that order; else a vector.

    A global network's: ``code``, the one-hot code of the target forecast; or ``panel``,
    the number of targets: every day for every target, an extra last axis (days, targets).
    """
    last = int(days.max())
    samples = windows(scaler.transform(table.features[: last + 1]), window)
    x = samples[days - (window - 1)]
    if panel:
        x, _ = panel_samples(x, np.zeros((panel, len(x))))
    elif code is not None:
        x = with_code(x, code)
    # padded to whole PREDICT_BATCHes, run as one batch: a walk-forward's blocks all have
    # one shape, compiled once, and many days are one call (several batches would retrace
    # Keras's multi-step predict function: 0.8 s against 0.2 s for 2,666 days)
    padded = -len(x) % PREDICT_BATCH
    x = np.concatenate([x, np.zeros((padded, *x.shape[1:]), dtype=x.dtype)]) if padded else x
    predicted = model.predict(x, batch_size=len(x), verbose=0)
    if padded:
        predicted = ({name: value[:-padded] for name, value in predicted.items()}
                     if isinstance(predicted, dict) else predicted[:-padded])
    if isinstance(predicted, dict):  # a seed stack: {seed_output(seed): (n, 1)}
        proba = np.stack([np.asarray(predicted[seed_output(seed)]).reshape(-1)
                          for seed in seeds]).astype("float64")
    else:
        proba = predicted.reshape(-1).astype("float64")
    return proba.reshape(*proba.shape[:-1], len(days), panel) if panel else proba


@dataclass
class FinalFit:
    """A walk-forward's next refit, on every labelled day: the networks ``tsepipe train``
    saves (each seed's copy: its weights per layer, and its run)."""

    weights: dict[int, list[list[np.ndarray]]]
    runs: list[NetworkRun]
    days: int  # labelled days it was fitted on

    @classmethod
    def joined(cls, finals: Sequence[FinalFit]) -> FinalFit:
        """One network's final fits of several chains (each some of its seeds) as one."""
        return cls({seed: weights for final in finals for seed, weights in final.weights.items()},
                   [run for final in finals for run in final.runs], finals[0].days)


def network_walk_forward(config: Any, table: FeatureTable, window: int, blocks: Blocks,
                         seeds: Sequence[int], *, deterministic: bool, mixed_precision: bool,
                         warm_start: bool, warm_epochs: int,
                         final_days: np.ndarray | None = None,
                         on_refit: Callable[[int, list[NetworkRun]], None] | None = None,
                         panel: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, list[NetworkRun], FinalFit | None]:
    """Out-of-sample probabilities for every predicted day of ``blocks``, one row per seed
    of ``seeds`` (fitted together, ``fit_seeds``), the runs (a run per seed and block), and
    the final fit.

    ``warm_start``: refits after the first continue from the previous block's weights for
    ``warm_epochs`` (at most ``config.epochs``). ``final_days`` (with ``warm_start``): one
    more refit, on these days (every labelled day), made as every evaluated refit was;
    None: no final fit. ``on_refit(i, runs)`` is called after refit i (0-based).
    ``panel``: a global network's labels per target (K, days), trained on every target's
    windows; its probabilities are then (seeds, days, K).
    """
    import keras

    probabilities, runs = [], []
    model = None
    device = devices.detect_device()  # this process's: a worker's on a cluster elsewhere
    warm_epochs = min(warm_epochs, config.epochs)
    for number, (train_days, predict_days) in enumerate(
            zip(blocks.train, blocks.predict, strict=True)):
        if not warm_start and model is not None:
            keras.backend.clear_session(free_memory=True)
            model = None
        model, scaler, block_runs = fit_seeds(
            config, table, window, train_days, seeds, deterministic=deterministic,
            mixed_precision=mixed_precision, model=model if warm_start else None,
            epochs=warm_epochs if warm_start and model is not None else None, panel=panel)
        probabilities.append(predict_network(model, scaler, table, window, predict_days,
                                             seeds, panel=0 if panel is None else len(panel)))
        for run in block_runs:
            run.device = device
        runs.extend(block_runs)
        if on_refit:
            on_refit(number, block_runs)
    final = None
    if warm_start and final_days is not None and model is not None:
        model, _, final_runs = fit_seeds(config, table, window, final_days, seeds,
                                         deterministic=deterministic,
                                         mixed_precision=mixed_precision, model=model,
                                         epochs=warm_epochs, panel=panel)
        final = FinalFit({seed: [layer.get_weights() for layer in copy_layers(model, seed)]
                          for seed in seeds}, final_runs, len(final_days))
    return np.concatenate(probabilities, axis=1), runs, final


def save_final(folder: Path, name: str, config: Any, features: list[str], final: FinalFit,
               targets: Sequence[str] = ()) -> None:
    """Every seed's copy of a final fit as ``folder/NAME.npz`` (the weights, per seed and
    layer) and ``NAME.json`` (config, features, the seeds and their layers' sizes, days, and
    per seed its epochs, seconds and loss history)."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = sorted(final.weights)
    np.savez(folder / f"{name}.npz", **{f"seed{seed}_layer{i}_{j}": array for seed in seeds
                                        for i, layer in enumerate(final.weights[seed])
                                        for j, array in enumerate(layer)})
    runs = {run.seed: run for run in final.runs}
    write_json(folder / f"{name}.json", {
        "config": config.to_dict(), "features": list(features), "seeds": seeds,
        "layers": [len(layer) for layer in final.weights[seeds[0]]], "days": final.days,
        "targets": list(targets),  # a global network's, in the order of its code
        "runs": {str(seed): {"epochs": runs[seed].epochs, "seconds": runs[seed].seconds,
                             "history": runs[seed].history} for seed in seeds}})


def read_final(folder: Path, name: str
               ) -> tuple[dict[str, Any], dict[int, list[list[np.ndarray]]]] | None:
    """What ``save_final`` wrote for ``name``: (meta, weights per seed and layer), or None
    (missing, damaged, or written by an older version)."""
    meta_path, weights_path = folder / f"{name}.json", folder / f"{name}.npz"
    if not (meta_path.is_file() and weights_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(weights_path) as arrays:
            weights = {int(seed): [[arrays[f"seed{seed}_layer{i}_{j}"] for j in range(count)]
                                   for i, count in enumerate(meta["layers"])]
                       for seed in meta["seeds"]}
    except (OSError, ValueError, KeyError, TypeError):  # damaged: the caller fits afresh
        return None
    return meta, weights


@dataclass(frozen=True)
class Chain:
    """One network's walk-forward over some of its seeds (fitted together, a seed stack):
    what a worker process needs to run it."""

    name: str
    config: Any  # models.ModelConfig
    table: FeatureTable  # the network's feature set
    seeds: tuple[int, ...]
    target: str = ""  # the index it forecasts ("": the only one, or every one of a panel)
    panel: np.ndarray | None = None  # a global network's labels per target (K, days)

    @property
    def key(self) -> str:
        """Its name in Dask and in progress lines: target/network seeds."""
        return (f"{self.target}/" if self.target else "") + self.name

    def message(self, number: int, refits: int, runs: list[NetworkRun]) -> dict[str, Any]:
        """The progress message of refit ``number`` (0-based) of ``refits``."""
        return {"model": self.key, "seeds": list(self.seeds), "refit": number + 1,
                "refits": refits, "seconds": sum(run.seconds for run in runs),
                "epochs": max(run.epochs for run in runs)}


def chains_for(networks: dict[str, tuple[Any, FeatureTable]], seeds: Sequence[int]
               ) -> list[Chain]:
    """One chain per network of ``networks`` (name -> (config, feature table)), all its
    seeds in one stack: the same chains on any number of workers, so the predictions do
    not depend on where they run (a seed stack's copies share their batches' order)."""
    return [Chain(name, config, table, tuple(seeds))
            for name, (config, table) in networks.items()]


PROGRESS = "tsepipe-refit "  # a chain process's progress lines on its stdout


def _run_chain(chain: Chain, window: int, blocks: Blocks, options: dict[str, Any],
               queue_name: str) -> tuple[np.ndarray, list[NetworkRun], FinalFit | None]:
    """A Dask task: one chain, in a fresh Python process of its own; each refit is passed
    on to the Dask queue ``queue_name``.

    Its own process, because a Dask worker's event loop draws from Python's global random
    generator while it talks to the scheduler, and Keras draws from it too during a fit:
    in the worker itself a seeded chain would depend on the timing of that traffic. The
    child holds nothing else (and leaves TensorFlow's memory behind when it ends).
    """
    from distributed import Queue

    messages = Queue(queue_name)
    with tempfile.TemporaryDirectory(prefix="tsepipe-chain-") as folder:
        request, result, errors = (Path(folder) / name for name in
                                   ("request.pkl", "result.pkl", "stderr.txt"))
        request.write_bytes(pickle.dumps((chain, window, blocks, options)))
        # this code, not whatever the working folder holds (-P: no cwd on sys.path)
        root = str(Path(__file__).resolve().parents[2])
        env = os.environ | {"PYTHONPATH": os.pathsep.join(
            filter(None, [root, os.environ.get("PYTHONPATH")]))}
        with errors.open("w") as stderr, subprocess.Popen(
                [sys.executable, "-P", "-m", "pipelines.modelling.fitting", str(request),
                 str(result)], stdout=subprocess.PIPE, stderr=stderr, text=True,
                env=env) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith(PROGRESS):
                    with contextlib.suppress(Exception):  # progress only
                        messages.put(json.loads(line[len(PROGRESS):]))
        if child.returncode != 0 or not result.exists():
            tail = "\n".join(errors.read_text(errors="replace").strip().splitlines()[-15:])
            raise RuntimeError(f"{chain.key} seeds {list(chain.seeds)}: the walk-forward "
                               f"process "
                               f"exited {child.returncode}:\n{tail}")
        outcome = pickle.loads(result.read_bytes())
    with contextlib.suppress(ValueError):  # not on a worker (a test calls it directly)
        from distributed import get_worker

        for run in outcome[1]:
            run.worker = get_worker().address
    return outcome


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.modelling.fitting REQUEST.pkl RESULT.pkl``: one chain (what
    ``_run_chain`` starts); a line on stdout per refit."""
    args = sys.argv[1:] if argv is None else argv
    if __name__ == "__main__":  # run as a script: the results must pickle as the package's
        from pipelines.modelling import fitting

        return fitting.main(args)
    chain, window, blocks, options = pickle.loads(Path(args[0]).read_bytes())
    devices.limit_tensorflow_threads()

    def report(number: int, runs: list[NetworkRun]) -> None:
        print(PROGRESS + json.dumps(chain.message(number, len(blocks), runs)), flush=True)

    outcome = network_walk_forward(chain.config, chain.table, window, blocks, chain.seeds,
                                   on_refit=report, panel=chain.panel, **options)
    Path(args[1]).write_bytes(pickle.dumps(outcome))
    return 0


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


CACHE_DAYS = 30  # a cached chain not used for this long is removed


def chain_key(chain: Chain, window: int, blocks: Blocks, options: dict[str, Any]) -> str:
    """A hash of everything a chain's outcome depends on: the network, its features and
    labels (a global network's every target's), its seeds, the blocks, the fitting
    options, the code that fits and TensorFlow's version. Chains are deterministic, so an
    equal key is an equal outcome."""
    import tensorflow as tf

    digest = hashlib.sha256()
    code = Path(__file__).parent
    for name in ("fitting.py", "models.py", "features.py"):
        digest.update((code / name).read_bytes())
    digest.update((code.parent / "core" / "devices.py").read_bytes())
    digest.update(repr((chain.name, sorted(chain.config.to_dict().items()), chain.table.names,
                        chain.seeds, window, tf.__version__,
                        sorted((k, v) for k, v in options.items() if k != "final_days"))
                       ).encode())
    for array in (chain.table.features, chain.table.labels, chain.panel,
                  options.get("final_days"), *blocks.train, *blocks.predict):
        digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]


def _cached(cache: Path, key: str) -> Any:
    path = cache / f"{key}.pkl"
    try:
        outcome = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    path.touch()
    return outcome


def _keep(cache: Path, key: str, outcome: Any) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        tmp = cache / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(pickle.dumps(outcome))
        tmp.replace(cache / f"{key}.pkl")
    old = time.time() - CACHE_DAYS * 86400
    for entry in cache.glob("*.pkl"):
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < old:
                entry.unlink()


def walk_forward_chains(chains: list[Chain], window: int, blocks: Blocks,
                        options: dict[str, Any], workers: int,
                        progress: Progress | None = None, *, scheduler: str,
                        cache: Path | None = None,
                        ) -> list[tuple[np.ndarray, list[NetworkRun], FinalFit | None]]:
    """Run every chain over ``blocks``; the results in the order of ``chains``.

    The chains are Dask tasks (``_on_dask``): on the cluster of ``scheduler`` (an
    address, ``evaluate.scheduler``) when given, else on a local cluster of ``workers``
    processes (0: one per usable core, at most one per chain), each holding TensorFlow
    to ``cores / workers`` threads. With one local worker (or one chain) the chains run
    in this process. ``progress`` receives a dict per refit of a chain: model, seeds (the
    chain's), refit, refits, seconds, epochs (its seeds' most), done, total, eta_seconds.
    ``cache``: a folder of chains already run (``chain_key``): those whose inputs are
    unchanged are read from it instead of run again, and every chain run is kept there.
    """
    if cache is not None:
        keys = [chain_key(chain, window, blocks, options) for chain in chains]
        found = [_cached(cache, key) for key in keys]
        missing = [i for i, outcome in enumerate(found) if outcome is None]
        if progress and len(missing) < len(chains):
            progress({"cached": len(chains) - len(missing), "total_chains": len(chains)})
        ran = walk_forward_chains([chains[i] for i in missing], window, blocks, options,
                                  workers, progress, scheduler=scheduler) if missing else []
        for i, outcome in zip(missing, ran, strict=True):
            _keep(cache, keys[i], outcome)
            found[i] = outcome
        return found
    total = len(chains) * len(blocks)
    workers = min(workers or usable_cores(), len(chains))
    started = time.perf_counter()
    done = 0

    def tell(message: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        elapsed = time.perf_counter() - started
        eta = elapsed / done * (total - done) if done else None
        if progress:
            progress(message | {"done": done, "total": total, "eta_seconds": eta})

    if workers <= 1 and not scheduler:
        results = []
        for chain in chains:
            results.append(network_walk_forward(
                chain.config, chain.table, window, blocks, chain.seeds, **options,
                panel=chain.panel,
                on_refit=lambda number, runs, c=chain: tell(c.message(number, len(blocks),
                                                                      runs))))
        return results

    return _on_dask(chains, window, blocks, options, workers, tell, scheduler)


def _on_dask(chains: list[Chain], window: int, blocks: Blocks, options: dict[str, Any],
             workers: int, tell: Callable[[dict[str, Any]], None], scheduler: str
             ) -> list[tuple[np.ndarray, list[NetworkRun], FinalFit | None]]:
    """``walk_forward_chains`` as Dask tasks, one per chain: on the cluster whose scheduler
    is at ``scheduler`` (its workers need this project installed), or else on a local
    cluster of ``workers`` processes, each holding TensorFlow to its share of the cores.
    Each refit is reported on a Dask queue. Stopped or failed, the tasks are cancelled and
    a local cluster's processes are killed at once. A local cluster's workers and their
    walk-forward processes keep their temporary files in one folder of this process
    (their ``TMPDIR``), removed at the end however it ends, a kill of the workers
    included."""
    import dask
    from distributed import Client, LocalCluster, Queue

    threads = str(max(1, usable_cores() // max(workers, 1)))
    scratch = None if scheduler else tempfile.mkdtemp(prefix="tsepipe-evaluate-")
    inherited = {key: threads for key in TF_THREAD_ENV} | ({"TMPDIR": scratch} if scratch else {})
    saved = {key: os.environ.get(key) for key in inherited}
    os.environ.update(inherited)  # a local worker and its walk-forward processes inherit them
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        else:
            with dask.config.set({"temporary-directory": scratch}):  # its scheduler's too
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, silence_logs=logging.ERROR,
                                       local_directory=scratch, **dashboard_options())
            client = Client(cluster)
        with client:
            return _gather(client, Queue(f"tsepipe-refits-{uuid.uuid4().hex}", client=client),
                           chains, window, blocks, options, tell)
    except BaseException:
        if cluster is not None:  # stopped (Ctrl-C, SIGTERM) or failed: no worker outlives it
            stop_processes(descendants(), signal.SIGKILL, grace=0)
        raise
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _gather(client: Any, messages: Any, chains: list[Chain], window: int, blocks: Blocks,
            options: dict[str, Any], tell: Callable[[dict[str, Any]], None]
            ) -> list[tuple[np.ndarray, list[NetworkRun], FinalFit | None]]:
    """Submit one task per chain; pass on each refit's message while they run."""
    futures = [client.submit(_run_chain, chain, window, blocks, options, messages.name,
                             pure=False, key=f"walk-forward-{chain.key.replace('/', '-')}-seeds"
                                             f"{'-'.join(map(str, chain.seeds))}-"
                                             f"{uuid.uuid4().hex[:8]}")
               for chain in chains]
    try:
        while not all(future.done() for future in futures):
            for message in messages.get(batch=True):  # what has come, without waiting
                tell(message)
            time.sleep(0.5)
        for message in messages.get(batch=True):
            tell(message)
        return client.gather(futures)
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(futures)
        raise


if __name__ == "__main__":
    sys.exit(main())
