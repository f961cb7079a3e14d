"""The walk-forward rule: blocks of days, each predicted by a fit on the days before it.

Every ``refit_every`` days a model is refitted on all labelled days before the block minus
a ``gap`` (so that no training label reaches into the block) and predicts each day of the
block once. ``evaluate`` walks the validation and test spans this way, ``drift`` walks a
baseline champion over the reference days, and ``fitting`` and ``baselines`` fit along
the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Blocks:
    """Walk-forward blocks: for each, the training days and the days it predicts."""

    train: list[np.ndarray]
    predict: list[np.ndarray]

    def __add__(self, other: Blocks) -> Blocks:
        return Blocks(self.train + other.train, self.predict + other.predict)

    def __len__(self) -> int:
        return len(self.predict)


def walk_forward_blocks(labelled_days: np.ndarray, test_days: np.ndarray, refit_every: int,
                        gap: int) -> Blocks:
    """Expanding window: block b trains on labelled days < start_b - gap."""
    if refit_every < 1 or gap < 0:
        raise ValueError("evaluate.refit_every must be >= 1 and evaluate.gap >= 0")
    starts = range(0, len(test_days), refit_every)
    predict = [test_days[i:i + refit_every] for i in starts]
    train = [labelled_days[labelled_days < block[0] - gap] for block in predict]
    return Blocks(train, predict)
