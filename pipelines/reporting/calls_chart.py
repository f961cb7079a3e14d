"""The track record's chart: recent calls against what happened, as inline SVG.

``calls_chart`` draws the front page's strip of the published forecasts (a mark per call,
the outcome below it, hit or miss between); no script, no request to any other host, and
every value drawn (a champion's name is untrusted) is escaped. Apart from the accuracy
page's charts (``pipelines.reporting.charts``), so the front page's stage does not depend
on that page's code.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

CALL_COLOURS = {"up": "#1a7f37", "down": "#cf222e"}
NO_CALL_COLOUR = "#57606a"


def _call_mark(call: str, cx: float, cy: float, r: float, extra: str = "") -> str:
    """An SVG mark for a call, without its closing tag: a green triangle up, a red triangle
    down, or a grey hollow circle (no call)."""
    if call not in CALL_COLOURS:
        return (f'<circle{extra} cx="{cx:.1f}" cy="{cy:.1f}" r="{r * 0.8:.1f}" fill="none" '
                f'stroke="{NO_CALL_COLOUR}" stroke-width="1.5">')
    tip, base = (cy - r, cy + r * 0.8) if call == "up" else (cy + r, cy - r * 0.8)
    return (f'<polygon{extra} points="{cx:.1f},{tip:.1f} {cx - r:.1f},{base:.1f} '
            f'{cx + r:.1f},{base:.1f}" fill="{CALL_COLOURS[call]}">')


def _call_title(row: dict[str, Any]) -> Markup:
    """A forecast day's tooltip: date, call, P(up), outcome and champion, escaped."""
    proba = row.get("probability_up")
    outcome = row.get("outcome") or ("pending" if row.get("status") == "pending"
                                     else row.get("status") or "not known")
    hit = {True: ", hit", False: ", miss"}.get(row.get("hit"), "")
    text = (f"{row.get('as_of')}: call {row.get('call')}, P(up) "
            f"{'n/a' if proba is None else f'{proba:.2f}'}, outcome {outcome}{hit}, "
            f"champion {row.get('champion')}")
    return Markup("<title>{}</title>").format(text)


def _calls_legend(x: float, top: int) -> list[str]:
    """The legend of ``calls_chart``: the three call marks, then hit and miss ticks."""
    parts = []
    for i, call in enumerate(("up", "down", "no call")):
        y = top + 8 + 15 * i
        parts.append(_call_mark(call, x + 6, y - 4, 5) + (
            "</circle>" if call == "no call" else "</polygon>")
            + f'<text x="{x + 16}" y="{y}" font-size="11" fill="#1f2328">{call}</text>')
    for i, (name, colour, dash) in enumerate((("hit", "#1f2328", ""),
                                              ("miss", "#cf222e", ' stroke-dasharray="2 2"'))):
        y = top + 53 + 15 * i
        parts.append(f'<line x1="{x + 6}" x2="{x + 6}" y1="{y - 10}" y2="{y + 1}" '
                     f'stroke="{colour}" stroke-width="1.2"{dash}/>'
                     f'<text x="{x + 16}" y="{y}" font-size="11" fill="#1f2328">{name}</text>')
    return parts


def _calls_day(row: dict[str, Any], cx: float, rows_y: tuple[float, float], r: float
               ) -> list[str]:
    """One forecast day: the call mark, the outcome square, a hit/miss tick between."""
    call_y, outcome_y = rows_y
    title = _call_title(row)
    call = str(row.get("call"))
    close_tag = "</polygon>" if call in CALL_COLOURS else "</circle>"
    parts = []
    if row.get("hit") is not None:
        colour, dash = (("#1f2328", "") if row["hit"]
                        else ("#cf222e", ' stroke-dasharray="2 2"'))
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{call_y + r + 2:.1f}" '
                     f'y2="{outcome_y - r:.1f}" stroke="{colour}" stroke-width="1"{dash}/>')
    mark = _call_mark(call, cx, call_y, r, ' class="call"')
    parts.append(f"{mark}{title}{close_tag}")  # the mark is SVG: no Markup + str escaping
    if row.get("outcome") in CALL_COLOURS:
        side = r * 0.6
        parts.append(f'<rect class="outcome" x="{cx - side:.1f}" y="{outcome_y - side:.1f}" '
                     f'width="{2 * side:.1f}" height="{2 * side:.1f}" '
                     f'fill="{CALL_COLOURS[row["outcome"]]}">{title}</rect>')
    return parts


def calls_chart(rows: list[dict[str, Any]], width: int = 860, height: int = 120) -> Markup:
    """The recent forecasts, left to right by ``as_of``: each day's call (a green triangle
    up, a red triangle down, a grey hollow circle for no call) on the first line, the
    outcome (a square in the same colours; nothing while pending) on the second, joined by
    a thin tick: solid for a hit, dashed red for a miss. ``rows``: ``summarise``'s
    ``recent`` (``pipelines.modelling.track_record``); every value drawn is escaped."""
    if not rows:
        return Markup("<p class='muted'>no data to plot</p>")
    left, right, top, bottom = 60, 110, 10, 26
    plot_w = width - left - right
    rows = sorted(rows, key=lambda row: str(row.get("as_of")))
    step = plot_w / len(rows)
    r = max(min(6.0, step * 0.4), 1.5)
    lines_y = (top + (height - top - bottom) * 0.3, top + (height - top - bottom) * 0.8)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">']
    for label, y in zip(("call", "outcome"), lines_y, strict=True):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#d0d7de" stroke-width="1"/><text x="{left - 6}" '
                     f'y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#57606a">{label}</text>')
    for i, row in enumerate(rows):
        parts += _calls_day(row, left + step * (i + 0.5), lines_y, r)
    ends = ((0, "start"), (len(rows) - 1, "end")) if len(rows) > 1 else ((0, "middle"),)
    for i, anchor in ends:
        x = left + step * (i + 0.5) if anchor == "middle" else left + plot_w * (anchor == "end")
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}" '
                     f'font-size="11" fill="#57606a">{escape(rows[i].get("as_of"))}</text>')
    parts += _calls_legend(width - right + 14, top)
    parts.append("</svg>")
    return Markup("".join(parts))
