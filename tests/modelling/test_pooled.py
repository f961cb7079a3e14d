"""The pooled MCC across targets and the paired difference of two forecasters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import matthews_corrcoef

from pipelines.modelling.metrics import pooled_mcc, pooled_mcc_difference


def panel(seed: int, targets: int = 4, days: int = 120, right: float = 0.6):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(targets, days))
    hits = rng.random((targets, days)) < right
    return labels, np.where(hits, labels, 1 - labels)


def test_the_pooled_mcc_is_the_mcc_of_every_target_s_days_together():
    labels, predicted = panel(1)
    pooled = pooled_mcc(labels, predicted, 10, 500)
    assert pooled["mcc"] == pytest.approx(matthews_corrcoef(labels.ravel(), predicted.ravel()))
    assert pooled["mcc_lo"] < pooled["mcc"] < pooled["mcc_hi"] and pooled["n"] == labels.size
    assert pooled == pooled_mcc(labels, predicted, 10, 500)  # seeded: the same every run
    assert pooled_mcc(labels, labels, 10, 200) == {"mcc": 1.0, "mcc_lo": 1.0, "mcc_hi": 1.0,
                                                   "n": labels.size}


def test_days_are_resampled_for_every_target_at_once():
    # sixteen copies of one target are one target's evidence, not sixteen: the interval
    # stays as wide as one target's (days resampled apart would shrink it by four)
    labels, predicted = panel(2, targets=1)
    one = pooled_mcc(labels, predicted, 10, 500)
    copies = pooled_mcc(np.repeat(labels, 16, axis=0), np.repeat(predicted, 16, axis=0), 10, 500)
    assert copies["mcc_hi"] - copies["mcc_lo"] == pytest.approx(one["mcc_hi"] - one["mcc_lo"])


def test_the_difference_is_paired_and_its_interval_holds_it():
    labels, better = panel(3, right=0.7)
    _, worse = panel(3, right=0.55)
    worse = np.where(np.random.default_rng(9).random(labels.shape) < 0.55, labels, 1 - labels)
    compared = pooled_mcc_difference(labels, better, worse, 10, 500)
    assert compared["difference"] == pytest.approx(
        pooled_mcc(labels, better, 10, 500)["mcc"] - pooled_mcc(labels, worse, 10, 500)["mcc"])
    assert compared["lo"] < compared["difference"] < compared["hi"]
    assert compared["lo"] > 0  # 0.7 against 0.55 right on 480 days: clearly apart
    same = pooled_mcc_difference(labels, better, better, 10, 500)
    assert same == {"difference": 0.0, "lo": 0.0, "hi": 0.0}
    with pytest.raises(ValueError):
        pooled_mcc(labels, better[:, :10], 10, 100)
