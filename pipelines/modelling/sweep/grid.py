"""The sweep's grid: the configs it evaluates, each a checked and named ``ModelConfig`` mapping.

``study_grid`` is the grid the course studies explored: LSTM and GRU, one layer of
32 / 64 / 80 / 128 / 180 units or a stack of 2-4 layers (128-64, 128-64-32,
128-64-32-16), the optimisers Adam, Adagrad and RMSprop, dropout off (0.0) and on
(0.2): 2 x 8 x 3 x 2 = 96 configs. ``grid_from_params`` reads ``params.yaml``'s
``sweep`` section (the study grid, or a grid of its own); ``expand_grid`` makes every
combination of a grid's axes.
"""

from __future__ import annotations

import itertools
from typing import Any

from pipelines.core.params.train import OPTIMIZERS, ModelConfig

STUDY_CELLS = ("lstm", "gru")  # the study swept these two of models.CELLS
SINGLE_LAYER_UNITS = (32, 64, 80, 128, 180)
STACKS = ((128, 64), (128, 64, 32), (128, 64, 32, 16))
DROPOUTS = (0.0, 0.2)
# What every config of the study grid shares unless params.yaml says otherwise: the
# study's L1 kernel regulariser and Adam learning rate; epochs, batch size and patience
# as train.models (the study's 200 epochs without early stopping overfit).
STUDY_FIXED: dict[str, Any] = {"l1": 0.001, "learning_rate": 0.001, "epochs": 40,
                               "batch_size": 32, "patience": 6}
# The keys a grid may vary; the name of a config spells out each one that varies.
GRID_KEYS = ("cell", "units", "optimizer", "dropout")
NAME_ABBREVIATIONS = {"learning_rate": "lr", "l1": "l1", "l2": "l2", "epochs": "e",
                      "batch_size": "b", "patience": "p", "recurrent_dropout": "rd",
                      "bidirectional": "bi", "task": "", "loss": ""}


def config_name(config: dict[str, Any], varied: tuple[str, ...] = ()) -> str:
    """``<cell>-<units joined by ->-<optimizer>-d<dropout>``, e.g. ``lstm-128-64-adam-d0.2``.

    ``varied``: further keys that differ between the configs of a grid; each adds
    ``-<abbreviation><value>`` (e.g. ``-lr0.0001``) so that names stay unique.
    """
    units = config.get("units", [64])
    units = [units] if isinstance(units, int) else units
    parts = [str(config.get("cell", "lstm")), *(str(u) for u in units),
             str(config.get("optimizer", "adam")), f"d{_number(config.get('dropout', 0.0))}"]
    for key in varied:
        if key in GRID_KEYS or key == "name":
            continue
        parts.append(f"{NAME_ABBREVIATIONS.get(key, key)}{_number(config.get(key))}")
    return "-".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:g}"


def study_grid(fixed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The study's grid (96 configs), each a ``ModelConfig`` mapping with a unique name.

    ``fixed``: settings every config shares (epochs, batch_size, patience,
    learning_rate, l1, ...), over ``STUDY_FIXED``.
    """
    units = [[u] for u in SINGLE_LAYER_UNITS] + [list(s) for s in STACKS]
    return expand_grid({"cell": list(STUDY_CELLS), "units": units, "optimizer": list(OPTIMIZERS),
                        "dropout": list(DROPOUTS)}, STUDY_FIXED | dict(fixed or {}))


def expand_grid(axes: dict[str, list[Any]], fixed: dict[str, Any] | None = None
                ) -> list[dict[str, Any]]:
    """Every combination of ``axes`` (key -> list of values), with ``fixed`` added.

    ``axes["units"]`` is a list of layer lists (``[[64], [128, 64]]``); a bare integer
    in it is one layer. Configs are checked (``ModelConfig.from_dict``) and named by
    ``config_name``; a duplicate name is a ValueError.
    """
    fixed = dict(fixed or {})
    overlap = sorted(set(axes) & set(fixed))
    if overlap:
        raise ValueError(f"sweep.grid: {overlap[0]} is both a grid axis and a fixed value")
    axes = dict(axes)
    if "units" in axes:
        axes["units"] = [_layers(value) for value in axes["units"]]
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"sweep.grid.{key}: expected a non-empty list of values, "
                             f"got {values!r}")
    varied = tuple(key for key, values in axes.items() if len(values) > 1)
    keys = list(axes)
    configs, seen = [], {}
    for combination in itertools.product(*(axes[k] for k in keys)):
        spec = fixed | dict(zip(keys, combination, strict=True))
        spec.pop("name", None)
        name = config_name(spec, varied)
        if name in seen:
            raise ValueError(f"sweep.grid: two configs are both named {name!r}: "
                             f"{seen[name]} and {spec}")
        seen[name] = spec
        configs.append(ModelConfig.from_dict({"name": name} | spec).to_dict())
    return configs


def _layers(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list | tuple) and value:
        return list(value)
    raise ValueError(f"sweep.grid.units: expected a list of layer lists such as "
                     f"[[64], [128, 64]], got the entry {value!r}")


def grid_from_params(sweep_params: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The configs of ``params.yaml``'s ``sweep`` section.

    ``grid: study`` (or no grid): ``study_grid``. Otherwise ``grid`` is a mapping: a key
    with a list value is an axis (``units``: a list of layer lists), a key with a single
    value is shared by every config. ``fixed`` (a mapping) is shared by every config of
    either kind of grid. For example::

        sweep:
          grid: {cell: [lstm, gru], units: [[32], [128, 64]], optimizer: [adam],
                 dropout: [0.0, 0.2], learning_rate: 0.001}
          fixed: {epochs: 40, batch_size: 32, patience: 6, l1: 0.001}
    """
    sweep_params = dict(sweep_params or {})
    fixed = sweep_params.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ValueError(f"sweep.fixed: expected a mapping, got {fixed!r}")
    grid = sweep_params.get("grid", "study")
    if grid in (None, "study"):
        return study_grid(fixed)
    if not isinstance(grid, dict):
        raise ValueError(f"sweep.grid: expected 'study' or a mapping of lists, got {grid!r}")
    axes = {k: v for k, v in grid.items() if isinstance(v, list)}
    shared = {k: v for k, v in grid.items() if not isinstance(v, list)}
    if "units" in shared:
        raise ValueError("sweep.grid.units: expected a list of layer lists such as [[64]]")
    return expand_grid(axes, fixed | shared)
