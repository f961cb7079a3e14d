"""The daily call: what is published beside the champion's probability, and when nothing is.

The champion's P(up) is published through its calibration map (``calibration.apply_map``:
fitted on the walk-forward's validation days, ``none`` unless chosen), and read beside:

- the base rate: the share of up days in the champion's training span, and in the last
  ``forecast.base_rate_days`` days (``base_rates``);
- what that band of probability has meant: how often the champion's out-of-sample
  forecasts in the same band (0.6-0.7, say) went up on the walk-forward's validation and
  test days, with n and a Wilson interval (``band_meaning``);
- how old the data is (``staleness``).

``decide`` is the stated rule. The call is the direction the walk-forward scored (a
network's or combination's P(up) >= 0.5, a rule's own class), unless one of these holds,
when there is no call, with every reason that holds:

1. ``forecast.require_skill`` and the champion's 95 % interval of its test MCC holds 0: no
   demonstrated skill on the walk-forward test days;
2. the published probability is on the other side of 0.5 from the scored direction (a
   rule whose calibrated odds disagree with its class, or a calibration map that moves
   P across 0.5): a published call never contradicts its published probability;
3. the published probability is within ``forecast.no_call_band`` of the training span's
   base rate (no more than the usual odds of an up day) or of 0.5 (a coin flip).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from pipelines.core.calendar import data_age
from pipelines.core.params.calendar import CalendarSection
from pipelines.core.params.forecast import ForecastSection
from pipelines.modelling.calibration import apply_map, band_of, wilson_interval
from pipelines.modelling.features import FeatureTable

NO_CALL = "no call"


def published_probability(calibration: dict[str, Any], raw: float) -> float:
    """The probability published for ``raw``: through the champion's map, if it has one."""
    mapping = (calibration or {}).get("map") or {"method": "none"}
    return float(apply_map(mapping, np.array([raw]))[0])


def base_rates(table: FeatureTable, labelled: np.ndarray, trained_on: dict[str, Any],
               recent_days: int) -> dict[str, Any]:
    """The share of up days in the champion's training span (``trained_on``: the record's,
    with its ``share_up``) and in the last ``recent_days`` of ``labelled`` (today's
    labelled days)."""
    recent = labelled[-recent_days:]
    return {
        "training": {"share": trained_on["share_up"], "days": trained_on["days"],
                     "first": trained_on["first"], "last": trained_on["last"]},
        "recent": {"share": float(np.mean(table.labels[recent])) if len(recent) else None,
                   "days": len(recent),
                   "first": f"{table.dates[recent[0]]:%Y-%m-%d}" if len(recent) else None,
                   "last": f"{table.dates[recent[-1]]:%Y-%m-%d}" if len(recent) else None},
    }


def band_meaning(calibration: dict[str, Any], probability: float) -> dict[str, Any] | None:
    """How often the champion's out-of-sample forecasts in ``probability``'s band went up:
    ``low``, ``high``, ``n``, ``up``, ``share``, its Wilson ``interval``, and the counts of
    the ``validation`` and ``test`` days apart (None without the record's reliability)."""
    reliability = (calibration or {}).get("reliability")
    if not reliability:
        return None
    band = int(band_of([probability])[0])
    spans = {split: reliability[split][band] for split in ("validation", "test")
             if split in reliability}
    n = sum(row["n"] for row in spans.values())
    up = sum(row["up"] for row in spans.values())
    first = next(iter(spans.values()))
    return {"low": first["low"], "high": first["high"], "n": n, "up": up,
            "share": up / n if n else None, "interval": wilson_interval(up, n),
            **{split: {"n": row["n"], "up": row["up"]} for split, row in spans.items()}}


def skill(record: dict[str, Any]) -> dict[str, Any]:
    """The champion's test MCC, its interval and whether the interval is above 0."""
    test = record.get("test") or {}
    interval = test.get("mcc_ci")
    return {"metric": "mcc", "test": test.get("mcc"), "interval": interval,
            "days": (record.get("test_span") or {}).get("days"),
            "demonstrated": bool(interval and interval[0] > 0)}


def decide(probability: float, direction: str, evidence: dict[str, Any], base_rate: float,
           settings: ForecastSection) -> tuple[str, list[str]]:
    """(the call: "up", "down" or ``NO_CALL``; the reasons when there is none), by the rule
    in the module's docstring. ``direction``: what the walk-forward scored; ``evidence``:
    ``skill``'s; ``base_rate``: the training span's share of up days."""
    reasons = []
    band = settings.no_call_band
    if settings.require_skill and not evidence["demonstrated"]:
        low, high = evidence["interval"] or (None, None)
        shown = f"[{low:.3f}, {high:.3f}]" if low is not None else "(none)"
        reasons.append(f"no demonstrated skill: the champion's test MCC interval {shown} "
                       f"on {evidence['days']} walk-forward days holds 0")
    if (probability >= 0.5) != (direction == "up"):
        reasons.append(f"the scored direction ({direction}) and the published P(up) "
                       f"{probability:.3f} disagree")
    if abs(probability - base_rate) < band:
        reasons.append(f"P(up) {probability:.3f} is within {band:g} of the base rate "
                       f"{base_rate:.3f} (the training span's share of up days): no more "
                       "than the usual odds")
    if abs(probability - 0.5) < band:
        reasons.append(f"P(up) {probability:.3f} is within {band:g} of 0.5: a coin flip")
    return (NO_CALL if reasons else direction), reasons


def staleness(as_of: dt.date, today: dt.date, calendar: CalendarSection, max_age: int
              ) -> dict[str, Any]:
    """How old the data is on ``today``: ``trading_days`` (after ``as_of`` up to today),
    ``stale`` (more than ``max_age``: the forecast is for a past day) and a ``message``."""
    return data_age(as_of, today, calendar.closures, public_holidays=calendar.public_holidays,
                    max_age=max_age)
