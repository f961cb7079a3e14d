"""The champion rule: which candidate forecasts, and why.

``choose_champion`` is the rule (``tsepipe select`` applies it to the leaderboard's rows).
Every candidate, baseline, network or combination (``evaluate.combinations``: the mean of
its members' forecasts), is scored on the pooled walk-forward validation days; those
within ``evaluate.promotion_margin`` of the best score are tied, since a validation span
of a few hundred days cannot tell them apart; a tie goes to a combination, else to the
best baseline, else to the best network. So a network must beat every baseline and
combination by the margin, and a combination need only be level with the best. The
reason it gives says which case it was, with numbers.

What the champion forecasts with is saved by ``tsepipe train`` and loaded by
``pipelines.modelling.forecaster``.
"""

from __future__ import annotations

import math
from typing import Any


def score(metrics: dict[str, Any], metric: str) -> float:
    """``metric`` from a row's metrics; missing or NaN ranks last."""
    value = metrics.get(metric)
    return float("-inf") if value is None or math.isnan(value) else float(value)


# A tie (candidates within the margin of the best validation score) goes to the first kind
# here: a combination (an average of good forecasts is hard to beat: the "forecast
# combination puzzle"), then a baseline (the simpler model), then a network.
PREFERENCE = ("combination", "baseline", "network")


def choose_champion(rows: dict[str, dict[str, Any]], baselines: list[str], metric: str,
                    margin: float) -> tuple[str, str, list[str]]:
    """(champion, why, notes) by the rule in the module's docstring."""
    scores = {name: score(row["validation"], metric) for name, row in rows.items()}
    best = max(scores, key=lambda n: scores[n])
    tied = [name for name in rows if scores[name] >= scores[best] - margin]
    champion = min(tied, key=lambda n: (PREFERENCE.index(rows[n]["kind"]), -scores[n]))
    bar_name = max(baselines, key=lambda n: scores[n])
    bar = scores[bar_name]
    networks = [n for n, row in rows.items() if row["kind"] == "network"]
    notes = [f"{name} not promoted: validation {metric} {scores[name]:.3f} does not beat "
             f"the best baseline {bar_name} ({bar:.3f}) by the margin {margin:g}"
             for name in networks if scores[name] < bar + margin]
    kind = rows[champion]["kind"]
    if kind == "combination":
        mean = f"{champion} (the mean of {', '.join(rows[champion].get('members', []))})"
        others = [f"{n} {scores[n]:.3f}" for n in tied if n != champion]
        if champion == best:
            reason = (f"{mean}: the best validation {metric}, {scores[champion]:.3f}"
                      + (f"; within the margin {margin:g} of it: {', '.join(others)} (a tie "
                         "goes to the combination)" if others else ""))
        else:
            reason = (f"{mean}: validation {metric} {scores[champion]:.3f}, within the margin "
                      f"{margin:g} of the best ({best} {scores[best]:.3f}); a tie goes to "
                      "the combination")
    elif kind == "network":
        reason = (f"{champion} beats the best baseline {bar_name} on the walk-forward "
                  f"validation days: {metric} {scores[champion]:.3f} against {bar:.3f}, more "
                  f"than the margin {margin:g}")
        promoted = [n for n in networks if scores[n] >= bar + margin]
        if len(promoted) > 1:
            reason += f"; the highest of the networks that do ({', '.join(promoted)})"
    elif networks:
        reason = (f"no network beats the best baseline {bar_name} (validation {metric} "
                  f"{bar:.3f}) by the margin {margin:g}: "
                  + ", ".join(f"{n} {scores[n]:.3f}" for n in networks)
                  + f"; {bar_name} is the champion")
    else:
        reason = f"{bar_name}: the best baseline on validation ({metric} {bar:.3f}); no networks"
    return champion, reason, notes
