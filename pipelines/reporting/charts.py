"""Inline SVG charts for the HTML reports: no script, no request to any other host.

Each chart is returned as ``Markup`` for a Jinja2 template; every name drawn in it
(index and model names are untrusted) is escaped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#57606a", "#bf3989",
           "#0a3069")


def line_chart(series: dict[str, pd.Series], width: int = 860, height: int = 260,
               y_range: tuple[float, float] = (0.0, 1.0), reference: float | None = 0.5,
               highlight: tuple[str, ...] = (), colours: dict[str, str] | None = None,
               markers: bool = False, legend: bool = True) -> Markup:
    """An inline SVG line chart of date-indexed series (names escaped), with a legend
    (``legend=False``: none, the page shows its own); ``markers``: a dot on each point."""
    left, right, top, bottom = 44, (150 if legend else 16), 10, 28
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
    for tick in np.linspace(low, high, 5):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#d0d7de" stroke-width="1"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#57606a">{tick:.2f}</text>')
    if reference is not None:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(reference):.1f}" '
                     f'y2="{y(reference):.1f}" stroke="#57606a" stroke-dasharray="4 3"/>')
    for day, anchor in ((first, "start"), (last, "end")):
        parts.append(f'<text x="{x(day):.1f}" y="{height - 8}" text-anchor="{anchor}" '
                     f'font-size="11" fill="#57606a">{day:%Y-%m-%d}</text>')
    for i, (name, values) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        values = values.dropna()
        if values.empty:
            continue
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in values.items())
        weight = 2.5 if name in highlight else 1.3
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{weight}" '
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


def calibration_chart(curves: dict[str, list[dict[str, Any]]], size: int = 300,
                      colours: dict[str, str] | None = None) -> Markup:
    """Reliability diagram: observed share of up days against the mean probability."""
    pad = 36
    inner = size - 2 * pad

    def xy(p: float, q: float) -> tuple[float, float]:
        return pad + inner * p, size - pad - inner * q

    parts = [f'<svg class="chart" viewBox="0 0 {size + 140} {size}" width="{size + 140}" '
             f'height="{size}" role="img" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="none" '
             f'stroke="#d0d7de"/>',
             f'<line x1="{pad}" y1="{size - pad}" x2="{size - pad}" y2="{pad}" '
             f'stroke="#57606a" stroke-dasharray="4 3"/>',
             f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="11" '
             f'fill="#57606a">mean predicted probability of up</text>',
             f'<text x="12" y="{size / 2}" font-size="11" fill="#57606a" '
             f'transform="rotate(-90 12 {size / 2})" text-anchor="middle">observed share up</text>']
    for i, (name, bins) in enumerate(curves.items()):
        colour = (colours or {}).get(name, PALETTE[i % len(PALETTE)])
        points = [xy(b["mean_predicted"], b["observed"]) for b in bins if b["n"]]
        if points:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
            parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>'
                      for a, b in points]
        parts.append(f'<rect x="{size + 8}" y="{pad + 16 * i - 9}" width="12" height="4" '
                     f'fill="{colour}"/><text x="{size + 26}" y="{pad + 16 * i}" '
                     f'font-size="12" fill="#1f2328">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
