"""What a forecast is worth: a backtest of the champion's walk-forward test-day forecasts.

A forecast made at the close of day t is acted on at that close and held to the close of
the next trading day t + 1, so its return is close[t + 1] / close[t] - 1 (the day the
label looks at). Strategies, each a position per test day:

- the champion: long (1) when it forecasts up, flat (0) otherwise (``long_flat``), or
  short (-1) instead of flat (``long_short``);
- persistence: the same rule with persistence's forecasts;
- buy and hold: always long (one entry, no other trade).

A change of position costs ``cost_bps`` basis points of the position changed (long to
flat: 1 unit; long to short: 2), charged on the day of the change; the first day's entry
counts as a change from flat. Figures: cumulative return, annualised return and
volatility (by the number of trading days per calendar year the test span actually has),
the Sharpe ratio over a yearly ``risk_free_rate``, maximum drawdown, hit rate (the share
of days in the market whose return had the position's sign) and the number of trades.

This is a backtest of an index, which cannot itself be bought; the costs are assumed, not
observed, and there is no slippage, no price impact and no limit on daily moves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.params.backtest import BacktestSection

MODES = ("long_flat", "long_short")  # the values BacktestSection.mode allows
CAVEAT = ("A backtest of TEDPIX, an index that cannot itself be bought: costs are assumed "
          "({cost_bps:g} bp per change of position), with no slippage, no price impact and no "
          "daily price limits. Past returns on a rising market say little about the next "
          "ones; compare the strategies with each other.")


def positions(up: np.ndarray, mode: str) -> np.ndarray:
    """Position per day from forecasts of up (1) / down (0)."""
    if mode not in MODES:
        raise ValueError(f"backtest.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    up = np.asarray(up, dtype="int64")
    return np.where(up == 1, 1.0, -1.0 if mode == "long_short" else 0.0)


def strategy_returns(position: np.ndarray, next_return: np.ndarray, cost_bps: float
                     ) -> np.ndarray:
    """Daily net returns: position x the next day's return, less the cost of trading."""
    position = np.asarray(position, dtype="float64")
    changes = np.abs(np.diff(np.concatenate([[0.0], position])))
    return position * np.asarray(next_return, dtype="float64") - changes * cost_bps / 1e4


def summary(returns: np.ndarray, position: np.ndarray, next_return: np.ndarray,
            days_per_year: float, risk_free_rate: float) -> dict[str, Any]:
    """The figures of one strategy's daily net returns."""
    returns = np.asarray(returns, dtype="float64")
    equity = np.cumprod(1 + returns)
    years = len(returns) / days_per_year
    cumulative = float(equity[-1] - 1)
    annual = float(equity[-1] ** (1 / years) - 1) if years > 0 and equity[-1] > 0 else None
    volatility = float(returns.std(ddof=1) * np.sqrt(days_per_year)) if len(returns) > 1 \
        else None
    daily_rf = (1 + risk_free_rate) ** (1 / days_per_year) - 1
    excess = returns - daily_rf
    sharpe = (float(excess.mean() / excess.std(ddof=1) * np.sqrt(days_per_year))
              if len(returns) > 1 and excess.std(ddof=1) > 0 else None)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))
    drawdown = float((np.concatenate([[1.0], equity]) / peak - 1).min())
    position = np.asarray(position, dtype="float64")
    in_market = position != 0
    hits = np.sign(position[in_market]) == np.sign(np.asarray(next_return)[in_market])
    changes = np.abs(np.diff(np.concatenate([[0.0], position]))) > 0
    return {"cumulative_return": cumulative, "annual_return": annual,
            "annual_volatility": volatility, "sharpe": sharpe, "max_drawdown": drawdown,
            "hit_rate": float(hits.mean()) if hits.size else None,
            "days_in_market": int(in_market.sum()), "trades": int(changes.sum())}


def backtest(dates: pd.DatetimeIndex, close: np.ndarray, days: np.ndarray,
             forecasts: dict[str, np.ndarray], settings: BacktestSection,
             ) -> tuple[dict[str, Any], pd.DataFrame]:
    """Backtest forecasts of up/down on ``days`` (indices into ``dates`` and ``close``).

    ``forecasts``: strategy name -> classes (1 up, 0 down) per day, e.g. the champion's
    and persistence's; buy and hold is added. Every day needs a next close (the test days
    do). Returns (figures per strategy and the settings, daily equity curves by date).
    """
    close = np.asarray(close, dtype="float64")
    days = np.asarray(days, dtype="int64")
    if days.size == 0 or days.max() + 1 >= len(close):
        raise ValueError("backtest: every day needs the next day's close")
    next_return = close[days + 1] / close[days] - 1
    span = (dates[days[-1] + 1] - dates[days[0]]).days / 365.25
    days_per_year = len(days) / span if span > 0 else 240.0
    strategies = {name: positions(cls, settings.mode) for name, cls in forecasts.items()}
    strategies["buy_and_hold"] = np.ones(len(days))
    figures, curves = {}, {}
    for name, position in strategies.items():
        net = strategy_returns(position, next_return, settings.cost_bps)
        figures[name] = summary(net, position, next_return, days_per_year,
                                settings.risk_free_rate)
        curves[name] = np.cumprod(1 + net)
    # the equity on each day's close after acting on it: indexed by the day it is realised
    equity = pd.DataFrame(curves, index=pd.DatetimeIndex(dates[days + 1], name="date"))
    result = {"mode": settings.mode, "cost_bps": settings.cost_bps,
              "risk_free_rate": settings.risk_free_rate,
              "days": len(days), "days_per_year": round(days_per_year, 1),
              "first_date": f"{dates[days[0]]:%Y-%m-%d}",
              "last_date": f"{dates[days[-1] + 1]:%Y-%m-%d}",
              "caveat": CAVEAT.format(cost_bps=settings.cost_bps),
              "strategies": figures}
    return result, equity
