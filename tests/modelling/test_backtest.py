"""The backtest of forecasts: hand-worked returns, costs, drawdown and the equity curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.core.params.backtest import BacktestSection
from pipelines.modelling.backtest import (
    backtest,
    positions,
    strategy_returns,
    summary,
)


def test_positions_long_flat_and_long_short():
    up = np.array([1, 0, 1, 1])
    assert positions(up, "long_flat").tolist() == [1, 0, 1, 1]
    assert positions(up, "long_short").tolist() == [1, -1, 1, 1]
    with pytest.raises(ValueError, match="backtest.mode"):
        positions(up, "short_only")


def test_costs_are_charged_on_every_change_of_position():
    position = np.array([1.0, 1.0, 0.0, -1.0])
    next_return = np.array([0.01, -0.02, 0.03, -0.01])
    net = strategy_returns(position, next_return, cost_bps=10)
    # entry (1), hold (0), exit (1), flat to short (1) units changed; 10 bp each
    np.testing.assert_allclose(net, [0.01 - 0.001, -0.02, 0.0 - 0.001, 0.01 - 0.001])


def test_summary_hand_worked():
    returns = np.array([0.10, -0.20, 0.10])  # equity 1.1, 0.88, 0.968
    figures = summary(returns, np.array([1.0, 1.0, 1.0]), returns, days_per_year=3,
                      risk_free_rate=0.0)
    assert figures["cumulative_return"] == pytest.approx(-0.032)
    assert figures["annual_return"] == pytest.approx(-0.032)  # one year of 3 days
    assert figures["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1)
    assert figures["hit_rate"] == pytest.approx(2 / 3) and figures["trades"] == 1
    assert figures["days_in_market"] == 3


def test_backtest_of_forecasts_against_buy_and_hold():
    dates = pd.bdate_range("2021-01-01", periods=6)
    close = np.array([100.0, 110, 99, 99, 108.9, 100])
    days = np.arange(0, 5)  # each needs the next close
    perfect = (close[days + 1] > close[days]).astype(int)  # knows the next move
    result, equity = backtest(dates, close, days, {"oracle": perfect},
                              BacktestSection(mode="long_flat", cost_bps=0.0))
    oracle, hold = result["strategies"]["oracle"], result["strategies"]["buy_and_hold"]
    assert oracle["cumulative_return"] == pytest.approx(1.1 * 1.1 - 1)  # the two up days
    assert hold["cumulative_return"] == pytest.approx(100 / 100 - 1)
    assert oracle["max_drawdown"] == 0.0 and oracle["hit_rate"] == 1.0
    assert list(equity.columns) == ["oracle", "buy_and_hold"]
    assert equity.index[0] == dates[1] and equity.index[-1] == dates[5]
    assert equity["oracle"].iloc[-1] == pytest.approx(1.21)
    costly, _ = backtest(dates, close, days, {"oracle": perfect},
                         BacktestSection(mode="long_flat", cost_bps=100.0))
    assert costly["strategies"]["oracle"]["cumulative_return"] < oracle["cumulative_return"]
    assert "cannot itself be bought" in result["caveat"] and "100 bp" in costly["caveat"]
    with pytest.raises(ValueError, match="next day's close"):
        backtest(dates, close, np.arange(0, 6), {"oracle": np.ones(6)}, BacktestSection())
