"""HTML pages from Jinja2 templates shipped in ``pipelines/core/templates``.

Autoescaping is on for every template: index names and file contents are untrusted.
Pages carry their own CSS and load nothing from any other host.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from pipelines.core.calendar import TEHRAN
from pipelines.core.fileio import write_text

_TEMPLATES = Path(__file__).with_name("templates")


def generated() -> dict[str, str]:
    """When a page is written: UTC (ISO 8601) and Tehran's wall clock, for its footer."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {"utc": now.isoformat(), "tehran": f"{now.astimezone(ZoneInfo(TEHRAN)):%Y-%m-%d %H:%M}"}


def render(template: str, target: Path | str, **context: Any) -> Path:
    """Render ``template`` with ``context`` and write it atomically to ``target``."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = environment.get_template(template).render(**context)
    return write_text(target, html)
