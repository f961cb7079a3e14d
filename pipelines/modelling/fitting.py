"""Fitting networks: one fit, its predictions, and a walk-forward chain of refits.

``fit_network`` fits a network on some training days (the scaler on their rows only);
``predict_network`` reads windows up to the days it predicts and no further. A walk-forward
chain (``network_walk_forward``) refits at the start of every block on all labelled days
before it (less a gap) and predicts the block. With ``warm_start`` the first fit is cold
(all of ``config.epochs``, early stopping) and every later refit continues from the
previous block's weights for ``warm_epochs`` on the expanded window: the weights were
learned on earlier days only, so nothing leaks, and a refit costs a fraction of a cold
one. Without it every refit starts from scratch.

``walk_forward_chains`` runs the chains of several (network, seed) pairs in parallel
processes, one TensorFlow thread each where cores allow, and reports each refit to a
progress callback (for "model seed k/N, refit i/M, ETA" lines).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.core import devices
from pipelines.core.devices import TF_THREAD_ENV
from pipelines.core.processes import existing, stop_processes
from pipelines.modelling.features import FeatureTable, TrainOnlyScaler, windows
from pipelines.modelling.models import build_model, early_stopping
from pipelines.modelling.walkforward import Blocks

Progress = Callable[[dict[str, Any]], None]


@dataclass
class NetworkRun:
    """What one fit of a network did (for the model card and the benchmark)."""

    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    warm: bool = False  # continued from the previous block's weights


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
    scaler = TrainOnlyScaler().fit(table.features, int(train_days[-1]))
    samples = windows(scaler.transform(table.features[: int(train_days[-1]) + 1]), window)
    first_day = window - 1
    x = samples[train_days - first_day]
    y = table.labels[train_days]
    n_stop = max(1, len(train_days) // 10)
    warm = model is not None
    if not warm:
        model = build_model(config, samples.shape[1:])
    epochs = epochs or config.epochs
    started = time.perf_counter()
    history = model.fit(
        x[:-n_stop], y[:-n_stop], validation_data=(x[-n_stop:], y[-n_stop:]),
        epochs=epochs, batch_size=config.batch_size, shuffle=True, verbose=0,
        callbacks=[early_stopping(config)],
    )
    seconds = time.perf_counter() - started
    run = NetworkRun(len(history.history["loss"]), seconds,
                     {k: [float(v) for v in vs] for k, vs in history.history.items()}, warm)
    return model, scaler, run


def predict_network(model: Any, scaler: TrainOnlyScaler, table: FeatureTable, window: int,
                    days: np.ndarray) -> np.ndarray:
    """Probability of up for each of ``days`` (rows after ``days.max()`` are not read)."""
    last = int(days.max())
    samples = windows(scaler.transform(table.features[: last + 1]), window)
    x = samples[days - (window - 1)]
    return model.predict(x, batch_size=256, verbose=0).reshape(-1).astype("float64")


def network_walk_forward(config: Any, table: FeatureTable, window: int, blocks: Blocks,
                         seed: int, *, deterministic: bool, mixed_precision: bool,
                         warm_start: bool, warm_epochs: int,
                         on_refit: Callable[[int, NetworkRun], None] | None = None
                         ) -> tuple[np.ndarray, list[NetworkRun]]:
    """Out-of-sample probabilities for every predicted day of ``blocks``, and the runs.

    ``warm_start``: refits after the first continue from the previous block's weights for
    ``warm_epochs`` (at most ``config.epochs``). ``on_refit(i, run)`` is called after refit
    i (0-based).
    """
    import keras

    probabilities, runs = [], []
    model = None
    for number, (train_days, predict_days) in enumerate(
            zip(blocks.train, blocks.predict, strict=True)):
        if not warm_start and model is not None:
            keras.backend.clear_session(free_memory=True)
            model = None
        model, scaler, run = fit_network(
            config, table, window, train_days, seed, deterministic=deterministic,
            mixed_precision=mixed_precision, model=model if warm_start else None,
            epochs=min(warm_epochs, config.epochs) if warm_start and model is not None
            else None)
        probabilities.append(predict_network(model, scaler, table, window, predict_days))
        runs.append(run)
        if on_refit:
            on_refit(number, run)
    return np.concatenate(probabilities), runs


@dataclass(frozen=True)
class Chain:
    """One (network, seed) walk-forward: what a worker process needs to run it."""

    name: str
    config: Any  # models.ModelConfig
    table: FeatureTable  # the network's feature set
    seed: int
    seed_number: int  # 1-based, for progress
    seeds: int


def _leave_signals_to_the_parent() -> None:
    """A worker ignores Ctrl-C (which reaches the whole process group): the process
    that started it ends it (no half-trained tracebacks from each worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_chain(chain: Chain, window: int, blocks: Blocks, options: dict[str, Any],
               messages: Any) -> tuple[np.ndarray, list[NetworkRun]]:
    """A worker's job: one chain; each refit is reported on the ``messages`` queue."""
    devices.limit_tensorflow_threads()

    def report(number: int, run: NetworkRun) -> None:
        if messages is not None:
            messages.put({"model": chain.name, "seed": chain.seed_number,
                          "seeds": chain.seeds, "refit": number + 1, "refits": len(blocks),
                          "seconds": run.seconds, "epochs": run.epochs})

    return network_walk_forward(chain.config, chain.table, window, blocks, chain.seed,
                                on_refit=report, **options)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def walk_forward_chains(chains: list[Chain], window: int, blocks: Blocks,
                        options: dict[str, Any], workers: int,
                        progress: Progress | None = None,
                        ) -> list[tuple[np.ndarray, list[NetworkRun]]]:
    """Run every chain over ``blocks``; the results in the order of ``chains``.

    ``workers``: processes (0: one per usable core, at most one per chain). With one
    worker (or one chain) the chains run in this process. Each worker process holds
    TensorFlow to ``cores / workers`` threads. ``progress`` receives a dict per refit:
    model, seed, seeds, refit, refits, seconds, epochs, done, total, eta_seconds.
    """
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

    if workers <= 1:
        results = []
        for chain in chains:
            results.append(network_walk_forward(
                chain.config, chain.table, window, blocks, chain.seed, **options,
                on_refit=lambda number, run, c=chain: tell({
                    "model": c.name, "seed": c.seed_number, "seeds": c.seeds,
                    "refit": number + 1, "refits": len(blocks), "seconds": run.seconds,
                    "epochs": run.epochs})))
        return results

    return _in_worker_processes(chains, window, blocks, options, workers, tell)


def _in_worker_processes(chains: list[Chain], window: int, blocks: Blocks,
                         options: dict[str, Any], workers: int,
                         tell: Callable[[dict[str, Any]], None]
                         ) -> list[tuple[np.ndarray, list[NetworkRun]]]:
    """``walk_forward_chains`` on a pool of ``workers`` processes, each holding TensorFlow
    to its share of the cores; stopped or failed, the workers are killed at once."""
    threads = str(max(1, usable_cores() // workers))
    context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    manager = context.Manager()
    messages = manager.Queue()
    saved = {key: os.environ.get(key) for key in TF_THREAD_ENV}
    os.environ.update({key: threads for key in TF_THREAD_ENV})  # the workers inherit them
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_leave_signals_to_the_parent) as pool:
            try:
                futures = [pool.submit(_run_chain, chain, window, blocks, options, messages)
                           for chain in chains]
                while not all(future.done() for future in futures):
                    try:
                        tell(messages.get(timeout=0.5))
                    except queue.Empty:
                        continue
                while not messages.empty():
                    tell(messages.get())
                return [future.result() for future in futures]
            except BaseException:
                # stopped (Ctrl-C, SIGTERM) or failed: the workers end now, not after
                # their chains (the pool's exit would wait for them)
                stop_processes(existing(pool._processes or {}), signal.SIGKILL, grace=0)
                raise
    finally:
        with contextlib.suppress(Exception):
            manager.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
