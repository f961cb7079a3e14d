"""Inline SVG charts for the HTML reports: no script, no request to any other host.

Each chart is returned as ``Markup`` for a Jinja2 template; every name drawn in it
(index and model names are untrusted) is escaped. Axes carry numbers at round steps
(``nice_ticks``: 0.5, 1, 1.5 ...) and dates at round days, months or years
(``date_ticks``); each line is a ``polyline.series`` with its name in ``data-name``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#57606a", "#bf3989",
           "#0a3069")


def nice_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """Round values from ``low`` to ``high`` for an axis, at most ``most`` of them: steps of
    1, 2, 2.5 or 5 times a power of ten (0, 0.2, 0.4 ...; 0.5, 1, 1.5 ...)."""
    span = high - low
    if not np.isfinite(span) or span <= 0:
        return [low]
    magnitude = 10.0 ** np.floor(np.log10(span / max(most - 1, 1)))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10, 20) if span / (m * magnitude)
                <= most - 1)
    first = np.ceil(low / step - 1e-9) * step
    count = int(np.floor((high - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(count)]


def tick_text(value: float, ticks: list[float]) -> str:
    """A tick's number with as many decimals as its axis's step needs, no trailing zeros."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    decimals = max(0, int(-np.floor(np.log10(step) + 1e-9)) + (1 if round(step / 10.0 ** np.floor(
        np.log10(step) + 1e-9), 6) == 2.5 else 0))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# (about how many days apart, pandas frequency, every n-th (month or year), label format),
# from the finest: months and years are counted from January and from year 0, so ticks
# fall on quarters, half-years and round years
_DATE_STEPS = ((1, "D", 1, "%Y-%m-%d"), (2, "2D", 1, "%Y-%m-%d"), (7, "W-MON", 1, "%Y-%m-%d"),
               (14, "2W-MON", 1, "%Y-%m-%d"), (30, "MS", 1, "%Y-%m"), (61, "MS", 2, "%Y-%m"),
               (91, "MS", 3, "%Y-%m"), (182, "MS", 6, "%Y-%m"), (365, "YS", 1, "%Y"),
               (730, "YS", 2, "%Y"), (1826, "YS", 5, "%Y"), (3652, "YS", 10, "%Y"))


def date_ticks(first: pd.Timestamp, last: pd.Timestamp, most: int = 8
               ) -> list[tuple[pd.Timestamp, str]]:
    """Dated ticks from ``first`` to ``last``, at least 2 and at most ``most``, on round
    dates (a month's, quarter's or year's first day for longer spans), each with its
    label; the two ends when no step gives that."""
    span = max((last - first).days, 1)
    for days, freq, every, fmt in _DATE_STEPS:
        if span / days > most * 2:
            continue
        ticks = pd.date_range(first.normalize(), last, freq=freq)
        ticks = ticks[ticks >= first]
        if freq == "MS":
            ticks = ticks[(ticks.month - 1) % every == 0]
        elif freq == "YS":
            ticks = ticks[ticks.year % every == 0]
        if 2 <= len(ticks) <= most:
            return [(tick, f"{tick:{fmt}}") for tick in ticks]
    return [(first, f"{first:%Y-%m-%d}"), (last, f"{last:%Y-%m-%d}")]


def line_chart(series: dict[str, pd.Series], width: int = 860, height: int = 260,
               y_range: tuple[float, float] = (0.0, 1.0), reference: float | None = 0.5,
               highlight: tuple[str, ...] = (), colours: dict[str, str] | None = None,
               markers: bool = False, legend: bool = True, y_label: str | None = None
               ) -> Markup:
    """An inline SVG line chart of date-indexed series (names escaped), with a legend
    (``legend=False``: none, the page shows its own); ``markers``: a dot on each point.
    Both axes carry numbers: round values up the side (``nice_ticks``), round dates along
    the bottom (``date_ticks``); ``y_label``: the quantity, written up the left side."""
    left, right, top, bottom = (62 if y_label else 44), (150 if legend else 16), 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    dates = sorted({d for s in series.values() for d in s.index})
    if not dates:
        return Markup("<p class='muted'>no data to plot</p>")
    first, last = dates[0], dates[-1]
    span = max((last - first).days, 1)
    low, high = y_range

    def x(day: pd.Timestamp) -> float:
        return left + plot_w * (day - first).days / span

    def y(value: float) -> float:
        return top + plot_h * (1 - (min(max(value, low), high) - low) / (high - low))

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    parts += _axes(x, y, (left, left + plot_w, top, top + plot_h), (low, high),
                   (first, last), y_label)
    if reference is not None:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(reference):.1f}" '
                     f'y2="{y(reference):.1f}" stroke="#57606a" stroke-dasharray="4 3"/>')
    for i, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        values = values.dropna()
        if values.empty:
            continue
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in values.items())
        weight = 2.5 if name in highlight else 1.3
        parts.append(f'<polyline class="series" data-name="{escape(name)}" fill="none" '
                     f'stroke="{colour}" stroke-width="{weight}" '
                     f'points="{points}"><title>{escape(name)}</title></polyline>')
        if markers:
            parts += [f'<circle cx="{x(d):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
                      for d, v in values.items()]
        if not legend:
            continue
        legend_y = top + 14 + 16 * i
        parts.append(f'<rect x="{width - right + 12}" y="{legend_y - 9}" width="12" height="4" '
                     f'fill="{colour}"/><text x="{width - right + 30}" y="{legend_y}" '
                     f'font-size="12" fill="#1f2328">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(x: Any, y: Any, box: tuple[int, int, int, int], y_range: tuple[float, float],
          span: tuple[pd.Timestamp, pd.Timestamp], y_label: str | None) -> list[str]:
    """A line chart's axes: round numbers up the side with their grid lines, the bottom
    axis with dated ticks, and the quantity's name (``y_label``) written up the left.
    ``x``, ``y``: the chart's scales; ``box``: the plot's left, right, top and bottom."""
    left, right, top, bottom = box
    parts = []
    ticks = nice_ticks(*y_range)
    for tick in ticks:
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#d0d7de" stroke-width="1"/>'
                     f'<text class="tick y" x="{left - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end" font-size="11" fill="#57606a">'
                     f'{tick_text(tick, ticks)}</text>')
    if y_label:
        middle = (top + bottom) / 2
        parts.append(f'<text x="12" y="{middle:.1f}" font-size="11" fill="#57606a" '
                     f'transform="rotate(-90 12 {middle:.1f})" text-anchor="middle">'
                     f'{escape(y_label)}</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" '
                 f'stroke="#57606a" stroke-width="1"/>')
    for day, label in date_ticks(*span, most=max(2, min(8, (right - left) // 80))):
        near = 3.2 * len(label)  # half a label's width: kept inside the plot's ends
        anchor = ("end" if x(day) > right - near else "start" if x(day) < left + near
                  else "middle")
        parts.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{bottom}" '
                     f'y2="{bottom + 4}" stroke="#57606a"/>'
                     f'<text class="tick x" x="{x(day):.1f}" y="{bottom + 18}" '
                     f'text-anchor="{anchor}" font-size="11" fill="#57606a">{label}</text>')
    return parts


def calibration_chart(curves: dict[str, list[dict[str, Any]]], size: int = 300,
                      colours: dict[str, str] | None = None) -> Markup:
    """Reliability diagram: observed share of up days against the mean probability, both
    axes numbered 0 to 1."""
    pad = 44
    inner = size - 2 * pad

    def xy(p: float, q: float) -> tuple[float, float]:
        return pad + inner * p, size - pad - inner * q

    ticks = nice_ticks(0.0, 1.0)
    axes = []
    for tick in ticks:
        (tx, ty), label = xy(tick, tick), tick_text(tick, ticks)
        axes.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{size - pad}" y2="{size - pad + 4}" '
                    f'stroke="#57606a"/><text class="tick x" x="{tx:.1f}" '
                    f'y="{size - pad + 16}" text-anchor="middle" font-size="11" '
                    f'fill="#57606a">{label}</text>'
                    f'<line x1="{pad - 4}" x2="{pad}" y1="{ty:.1f}" y2="{ty:.1f}" '
                    f'stroke="#57606a"/><text class="tick y" x="{pad - 6}" y="{ty + 4:.1f}" '
                    f'text-anchor="end" font-size="11" fill="#57606a">{label}</text>')

    parts = [f'<svg class="chart" viewBox="0 0 {size + 140} {size}" width="{size + 140}" '
             f'height="{size}" role="img" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" '
             f'stroke="#d0d7de"/>',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" '
             f'stroke="#57606a" stroke-dasharray="4 3"/>',
             f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="11" '
             f'fill="#57606a">mean predicted probability of up</text>',
             f'<text x="12" y="{size / 2}" font-size="11" fill="#57606a" '
             f'transform="rotate(-90 12 {size / 2})" text-anchor="middle">observed share up</text>',
             *axes]
    for i, (name, bins) in enumerate(curves.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        points = [xy(b["mean_predicted"], b["observed"]) for b in bins if b["n"]]
        if points:
            parts.append(f'<polyline class="series" data-name="{escape(name)}" fill="none" '
                         f'stroke="{colour}" stroke-width="1.6" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
            parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>'
                      for a, b in points]
        parts.append(f'<rect x="{size + 8}" y="{pad + 16 * i - 9}" width="12" height="4" '
                     f'fill="{colour}"/><text x="{size + 26}" y="{pad + 16 * i}" '
                     f'font-size="12" fill="#1f2328">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
