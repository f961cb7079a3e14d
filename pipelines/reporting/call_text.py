"""The daily call in words, for the CLI, the flows' messages and the Prefect artifact.

It reads a forecast as ``pipelines.modelling.predict.forecast`` writes it
(``forecasts/latest.json``) and imports nothing heavy, so ``tsepipe run`` can answer from
the last run in a fraction of a second. Forecasts written before calls existed (with
``direction`` only) read as that direction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def the_call(forecast: dict[str, Any]) -> str:
    """"up", "down" or "no call"."""
    return forecast.get("call") or forecast.get("direction") or "no call"


def headline(forecast: dict[str, Any], reason: bool = False) -> str:
    """``forecast for DAY: CALL (P(up) = P) by MODEL``; with ``reason``, the first reason
    of a no call after it (for a one-line message)."""
    line = (f"forecast for {forecast['next_trading_day']}: {the_call(forecast)} "
            f"(P(up) = {forecast['probability_up']:.4f}) by {forecast['champion']}")
    reasons = forecast.get("no_call_reasons") or []
    if reasons and reason:
        line += f": {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")
    return line


def summary_lines(forecast: dict[str, Any]) -> list[str]:
    """The headline, then the evidence indented: what ``tsepipe run`` prints."""
    return [headline(forecast)] + [f"  {line}" for line in evidence_lines(forecast)]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def evidence_lines(forecast: dict[str, Any], name: Callable[[str], str] = str) -> list[str]:
    """The call's evidence, a line each: why no call, the probability against its base
    rates and its band's record, the members and the best baseline (stale data and a
    stand-in's note are said apart: ``forecast["staleness"]["message"]``,
    ``forecast["note"]``). ``name``: how a model's name is written (escaped for
    markdown, say: names come from params.yaml)."""
    lines = [f"why no call: {reason}" for reason in forecast.get("no_call_reasons") or []]
    rates = forecast.get("base_rate")
    if rates:
        training, recent = rates["training"], rates["recent"]
        lines.append(f"base rate: {_share(training['share'])} of the {training['days']:,} "
                     f"training days went up ({training['first']} .. {training['last']}); "
                     f"{_share(recent['share'])} of the last {recent['days']}")
    band = forecast.get("band")
    if band and band["n"]:
        low, high = band["interval"]
        lines.append(f"P(up) {forecast['probability_up']:.2f} ({forecast.get('calibration')} "
                     f"calibration; raw {forecast.get('probability_up_raw', 0):.2f}): of "
                     f"{band['n']} out-of-sample days the champion put in {band['low']:.1f}-"
                     f"{band['high']:.1f}, {_share(band['share'])} went up "
                     f"[{low:.0%}, {high:.0%}]")
    others = opinions(forecast)
    if others:
        lines.append(f"{name(forecast['champion'])}'s own direction: "
                     f"{forecast['model_direction']}; "
                     + "; ".join(f"{name(o['model'])} {o['probability_up']:.2f} {o['direction']}"
                                 for o in others) + f" ({agreement(forecast, name)})")
    return lines


def opinions(forecast: dict[str, Any]) -> list[dict[str, Any]]:
    """The members' and the best baseline's forecasts, each model once, with its ``role``."""
    rows = [member | {"role": f"member ({member['kind']})"}
            for member in forecast.get("members") or []]
    best = forecast.get("best_baseline")
    if best:
        same = next((row for row in rows if row["model"] == best["model"]), None)
        if same is not None:
            same["role"] += "; best baseline on validation"
        else:
            rows.append(best | {"role": "best baseline on validation"})
    return rows


def agreement(forecast: dict[str, Any], name: Callable[[str], str] = str) -> str:
    """Whether the members and the best baseline point the way of the champion's own
    direction, in words."""
    others = opinions(forecast)
    if not others:
        return ""
    against = [row["model"] for row in others if not row["agrees"]]
    if not against:
        return f"{'both' if len(others) == 2 else 'all'} the others agree"
    return f"{len(against)} of {len(others)} disagree: {', '.join(map(name, against))}"


def staleness_today(forecast: dict[str, Any], closures: Any, public_holidays: bool
                    ) -> str | None:
    """The stale-data warning as of today (not as of when the forecast was made), or None:
    for an answer from the last run, which may be days old."""
    import datetime as dt

    from pipelines.core.calendar import data_age, tehran_today

    age = data_age(dt.date.fromisoformat(forecast["as_of"]), tehran_today(), closures,
                   public_holidays=public_holidays,
                   max_age=(forecast.get("staleness") or {}).get("max_age", 1))
    return age["message"] or None
