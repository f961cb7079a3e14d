"""Tomorrow, index by index: every target's call and its evidence, a row each, for the front
page and the Prefect forecast artifact.

It reads select's targets table (``paths.targets_table``: each target's champion, test MCC
with its 95 % interval, the Pesaran-Timmermann p-value raw and adjusted for the number of
targets, and the pooled figures) and each target's own forecast
(``paths.for_target(target, headline).forecast``). A project of one target has no table (or
one row): ``read_tomorrow`` returns None and the pages stay as they are. A target whose forecast
is missing or unreadable (its predict failed) keeps its row, saying "no forecast".

Rows: the headline target (``data.target_index``) first, then by evidence: the adjusted
p-value ascending, then the test MCC descending.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.core.display import index_html, index_label, index_name
from pipelines.core.errors import DataError, printable
from pipelines.core.params.data import INDEX_ID_PATTERN
from pipelines.core.params.paths import Paths
from pipelines.reporting.call_text import the_call

NO_FORECAST = "no forecast"
ADJUSTMENTS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "fdr_bh": "Benjamini-Hochberg"}
# a no call's reasons (pipelines.modelling.call.decide, predict) in a few words
_SHORT_REASONS = (("no demonstrated skill", "no demonstrated skill"),
                  ("the scored direction", "direction and P(up) disagree"),
                  ("of the base rate", "near the base rate"),
                  ("of 0.5", "a coin flip"),
                  ("cannot forecast today", "a stand-in forecasts"))


@dataclass(frozen=True)
class Tomorrow:
    """Every target's row (``target_rows``), how the p-values were adjusted, the pooled
    figures (``pooled``: what and its MCC with interval), the targets not forecast."""
    rows: list[dict[str, Any]]
    adjustment: str  # the method's name in words: "Holm", "Benjamini-Hochberg"
    pooled: list[dict[str, Any]]
    pooled_targets: int | None
    pooled_days: int | None
    not_forecast: list[dict[str, Any]]

    @property
    def next_trading_day(self) -> str | None:
        """The day the calls are for (the headline's, else the first target's with one)."""
        return next((row["next_trading_day"] for row in self.rows
                     if row["next_trading_day"]), None)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        read = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return read if isinstance(read, dict) else None


def short_reason(reason: str) -> str:
    """A no call's reason in a few words (the full one stays beside it)."""
    for marker, short in _SHORT_REASONS:
        if marker in reason:
            return short
    first = reason.split(":")[0].strip()
    return first if len(first) <= 60 else first[:59] + "…"


def _signed(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:+.3f}"


def _number(value: Any) -> float | None:
    """A figure from a JSON file; None for a missing or non-finite one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _row(entry: dict[str, Any], headline: str, paths: Paths,
         given_names: dict[str, str]) -> dict[str, Any]:
    target = entry["target"]
    own = paths.for_target(target, headline)
    forecast = _read(Path(own.forecast))
    given = given_names.get(target)
    accuracy = Path(own.accuracy_page)
    row: dict[str, Any] = {
        "target": target, "headline": target == headline,
        "name": index_name(target, given), "label": index_label(target, given),
        "html": index_html(target, given),
        "accuracy_link": Path(os.path.relpath(accuracy, Path(paths.front_page).parent)
                              ).as_posix() if accuracy.exists() else None,
        "champion": entry.get("champion"), "champion_kind": entry.get("champion_kind"),
        "test_days": entry.get("test_days"), "test_mcc": _number(entry.get("test_mcc")),
        "mcc_lo": _number(entry.get("mcc_lo")), "mcc_hi": _number(entry.get("mcc_hi")),
        "pt_p": _number(entry.get("pt_p")), "pt_p_adjusted": _number(entry.get("pt_p_adjusted")),
        "best_baseline": entry.get("best_baseline"),
        "baseline_mcc": _number(entry.get("baseline_mcc")),
        "call": NO_FORECAST, "reasons": [], "reason": "", "probability_up": None,
        "probability_up_raw": None, "base_rate": None, "next_trading_day": None,
        "as_of": None, "stale": False,
    }
    if forecast is None:
        row["reason"] = ("its forecast is unreadable" if Path(own.forecast).exists()
                         else "its predict wrote none")
        row["reasons"] = [row["reason"]]
        return row
    reasons = [str(reason) for reason in forecast.get("no_call_reasons") or []]
    training = (forecast.get("base_rate") or {}).get("training") or {}
    return row | {
        "call": the_call(forecast), "reasons": reasons,
        "reason": "; ".join(dict.fromkeys(map(short_reason, reasons))),
        "probability_up": _number(forecast.get("probability_up")),
        "probability_up_raw": _number(forecast.get("probability_up_raw")),
        "base_rate": _number(training.get("share")),
        "next_trading_day": forecast.get("next_trading_day"), "as_of": forecast.get("as_of"),
        "stale": bool((forecast.get("staleness") or {}).get("stale")),
        # the forecast's own champion: a stand-in's name when the champion could not forecast
        "champion": forecast.get("champion") or row["champion"],
    }


def _by_evidence(row: dict[str, Any]) -> tuple[float, float]:
    p, mcc = row["pt_p_adjusted"], row["test_mcc"]
    return (math.inf if p is None else p, math.inf if mcc is None else -mcc)


def read_tomorrow(paths: Paths) -> Tomorrow | None:
    """The targets table and every target's forecast, from ``paths``; None when there is no
    targets table or it holds one target (the pages then show the headline alone). A
    damaged targets table is a DataError naming it."""
    table_path = Path(paths.targets_table)
    if not table_path.exists():
        return None
    table = _read(table_path)
    if table is None or not isinstance(table.get("targets"), list) or not all(
            isinstance(entry, dict) and re.match(INDEX_ID_PATTERN, str(entry.get("target")))
            for entry in table["targets"]):  # an id names a folder: no other text
        raise DataError(f"{printable(table_path)}: damaged, not a targets table; run tsepipe "
                        f"select again (dvc repro), or dvc checkout {printable(table_path)}")
    entries = table["targets"]
    if len(entries) <= 1:
        return None
    headline = table.get("headline") or entries[0]["target"]
    merge = _read(Path(paths.merge_summary)) or {}
    given_names = {i["index_id"]: i.get("index_name") for i in merge.get("indices", [])
                   if isinstance(i, dict) and i.get("index_id")}
    rows = [_row(entry, headline, paths, given_names) for entry in entries]
    rows.sort(key=lambda row: (not row["headline"], *_by_evidence(row)))
    pooled = table.get("pooled") or {}
    figures = [{"what": "champions", "name": None} | pooled["champions"]] \
        if isinstance(pooled.get("champions"), dict) else []
    figures += [{"what": "network", "name": name} | figures_of
                for name, figures_of in (pooled.get("per_network") or {}).items()
                if isinstance(figures_of, dict)]
    figures += [{"what": "against", "name": name} | compared  # global against per-target
                for name, compared in (pooled.get("global_against") or {}).items()
                if isinstance(compared, dict) and {"against", "difference", "lo", "hi"}
                <= set(compared)]
    adjustment = str(table.get("adjustment") or "")
    return Tomorrow(
        rows=rows, adjustment=ADJUSTMENTS.get(adjustment.lower(), adjustment),
        pooled=figures, pooled_targets=pooled.get("targets"), pooled_days=pooled.get("days"),
        not_forecast=[{"target": item.get("target"), "reason": item.get("reason"),
                       "label": index_label(item["target"], given_names.get(item["target"])),
                       "html": index_html(item["target"], given_names.get(item["target"]))}
                      for item in table.get("not_forecast") or []
                      if isinstance(item, dict) and item.get("target")])


def target_rows(paths: Paths) -> list[dict[str, Any]] | None:
    """Every target's row (``read_tomorrow``), headline first, then by evidence; None for a
    project of one target. Each row: ``target`` (ISIN), ``label`` (``NAME (ISIN)``, plain
    text), ``html`` (the same for a page, escaped), ``call`` ("up", "down", "no call" or
    "no forecast") and ``reason`` (a no call's reasons in a few words; ``reasons`` in
    full), ``probability_up`` (calibrated) and ``base_rate`` (the training days' share of
    up days), ``champion``, ``test_mcc`` with ``mcc_lo``/``mcc_hi`` (95 % interval),
    ``pt_p_adjusted`` and ``pt_p``, ``accuracy_link`` (relative to the front page; None
    when that page is missing)."""
    found = read_tomorrow(paths)
    return None if found is None else found.rows


def _fixed(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def interval_text(row: dict[str, Any]) -> str:
    """``[low, high]`` of a row's (or a pooled figure's) MCC interval; "" without one."""
    low, high = _number(row.get("mcc_lo")), _number(row.get("mcc_hi"))
    return "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def p_text(value: float | None) -> str:
    """A p-value as a reader takes it in: three decimals, "<0.001" below."""
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def call_text(row: dict[str, Any]) -> str:
    """The call, and a no call's reason in a few words: ``no call (a coin flip)``."""
    return f"{row['call']} ({row['reason']})" if row["reason"] else row["call"]


def pooled_over(found: Tomorrow) -> str:
    """What the pooled figures pool: ``Pooled over 16 targets (1,952 test days)``."""
    over = "Pooled"
    if found.pooled_targets:
        over += f" over {found.pooled_targets} targets"
    if found.pooled_days:
        over += f" ({found.pooled_days:,} test days)"
    return over


def pooled_lines(found: Tomorrow, name: Callable[[str], str] = str) -> list[str]:
    """The pooled test MCCs with their intervals, a line each: the champions', then each
    network's (global and per-target); ``name``: how a network's name is written (escaped
    for markdown, say)."""
    return [f"{name(figure['name'])} less {name(str(figure['against']))} "
            f"{_signed(figure['difference'])} [{_signed(figure['lo'])}, "
            f"{_signed(figure['hi'])}] (paired)" if figure["what"] == "against" else
            f"{'the champions' if figure['what'] == 'champions' else name(figure['name'])} "
            f"{_fixed(_number(figure.get('mcc')))} {interval_text(figure)}".rstrip()
            for figure in found.pooled]


def adjustment_text(found: Tomorrow) -> str:
    """``p adjusted for 16 targets (Holm)``."""
    method = f" ({found.adjustment})" if found.adjustment else ""
    return f"p adjusted for {len(found.rows)} targets{method}"


def plain_rows(rows: list[dict[str, Any]], name: Callable[[str], str] = str
               ) -> list[dict[str, str]]:
    """The rows as the table shows them, each cell text (the index's label and the model's
    name through ``name``: escaped for markdown, say), in the page's columns."""
    return [{
        "index": name(row["label"]) + (" (headline)" if row["headline"] else ""),
        "call": name(call_text(row)),
        "P(up)": _fixed(row["probability_up"]),
        "base rate": "–" if row["base_rate"] is None else f"{row['base_rate']:.0%}",
        "champion": name(row["champion"] or "–"),
        "test MCC": _fixed(row["test_mcc"]),
        "MCC 95% CI": interval_text(row),
        "p adjusted": name(p_text(row["pt_p_adjusted"])),
        "p": name(p_text(row["pt_p"])),
    } for row in rows]

