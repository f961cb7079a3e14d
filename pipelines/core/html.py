"""HTML pages from Jinja2 templates shipped in ``pipelines/core/templates``.

Autoescaping is on for every template: index names and file contents are untrusted.
Pages carry their own CSS and load nothing from any other host.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from pipelines.core.calendar import TEHRAN
from pipelines.core.fileio import atomic_path, write_text

_TEMPLATES = Path(__file__).with_name("templates")


def generated() -> dict[str, str]:
    """When a page is written: UTC (ISO 8601) and Tehran's wall clock, for its footer."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {"utc": now.isoformat(), "tehran": f"{now.astimezone(ZoneInfo(TEHRAN)):%Y-%m-%d %H:%M}"}


def header(page: Path | str, front_page: Path | str | None, what: str, *,
           model: str | None = None, data: str | None = None) -> dict[str, Any]:
    """The project's header of a page: what it shows, for which model and data version, and
    the link from ``page`` back to the front page (None on the front page itself).

    Every page the project writes carries it: the templates through ``base.html`` (pass it
    as ``header=``), pages written by other tools (Evidently's) through ``add_header``.
    """
    home = None
    if front_page is not None and Path(page).resolve() != Path(front_page).resolve():
        home = Path(os.path.relpath(Path(front_page).resolve(),
                                    Path(page).resolve().parent)).as_posix()
    return {"what": what, "model": model, "data": data, "home": home}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, target: Path | str, **context: Any) -> Path:
    """Render ``template`` with ``context`` and write it atomically to ``target``."""
    html = _environment().get_template(template).render(**context)
    return write_text(target, html)


_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)


def add_header(page: Path | str, page_header: dict[str, Any]) -> Path:
    """Put the project's header (``header(...)``, with its own styles) at the top of the
    body of an HTML page another tool wrote, in place and atomically."""
    path = Path(page)
    html = path.read_text(encoding="utf-8")
    found = _BODY.search(html)
    if found is None:
        raise ValueError(f"{path}: no <body> tag to put the header under")
    snippet = _environment().get_template("_header.html").render(
        header=page_header, standalone=True)
    with atomic_path(path) as tmp:
        tmp.write_text(html[:found.end()] + snippet + html[found.end():], encoding="utf-8")
    return path


def model_version(champion: dict[str, Any] | None) -> str | None:
    """The header's model line from a champion record (``models/champion.json``): which model
    forecasts, and on which labelled days of which dataset it was trained."""
    if not champion:
        return None
    trained = champion.get("trained_on") or {}
    line = f"{champion['champion']} ({champion.get('kind', 'model')})"
    if trained.get("last"):
        line += f", trained on {trained.get('days', 0):,} labelled days through {trained['last']}"
    if champion.get("data_version"):
        line += f" of dataset {champion['data_version'][:8]}"
    return line


def data_version(merge: dict[str, Any] | None) -> str | None:
    """The header's data line from a merge summary: the dataset's hash, days and indices."""
    if not merge or not merge.get("md5"):
        return None
    indices = merge.get("indices_included", 0)
    return (f"dataset {merge['md5'][:8]}: {merge.get('rows', 0):,} trading days, "
            f"{merge.get('first_date')} .. {merge.get('last_date')}, "
            f"{indices} {'index' if indices == 1 else 'indices'}")
