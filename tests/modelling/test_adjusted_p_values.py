"""The p-values of many targets adjusted for their number (issue 34: sixteen tries are not
sixteen findings), checked against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from pipelines.modelling.metrics import adjusted_p_values

STATSMODELS = {"holm": "holm", "bh": "fdr_bh"}


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_adjusted_p_values_equal_statsmodels(method):
    rng = np.random.default_rng(34)
    cases = [rng.uniform(size=16), rng.uniform(size=16) ** 4, rng.uniform(0, 0.05, size=5),
             np.array([0.01, 0.01, 0.04, 0.04, 0.2, 1.0, 0.0]),  # ties, both ends
             np.array([0.3])]
    for p in cases:
        expected = multipletests(p, method=STATSMODELS[method])[1]
        got = adjusted_p_values(p.tolist(), method)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert all(a >= b - 1e-15 for a, b in zip(got, p, strict=True))  # never smaller


def test_adjusting_keeps_the_order_of_the_targets_and_tells_holm_from_bh():
    p = [0.04, 0.001, 0.03, 0.02]
    holm, bh = adjusted_p_values(p, "holm"), adjusted_p_values(p, "bh")
    assert holm == pytest.approx([0.06, 0.004, 0.06, 0.06])
    assert bh == pytest.approx([0.04, 0.004, 0.04, 0.04])
    assert adjusted_p_values([], "bh") == []


@pytest.mark.parametrize("bad", [[0.2, float("nan")], [1.5], [-0.1]])
def test_a_value_that_is_no_p_value_is_refused(bad):
    with pytest.raises(ValueError, match="each in"):
        adjusted_p_values(bad, "holm")


def test_an_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown p-value adjustment 'bonf'"):
        adjusted_p_values([0.1], "bonf")
