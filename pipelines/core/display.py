"""How the pages name an index and write a time: TSETMC's own (Persian) index names with the
ISIN, and timestamps in Tehran time with the zone said.

An export names its index as its source chose ("Overall Index", or only the ISIN in a TSETMC
JSON history); ``index_label`` writes what TSETMC calls the index, then the ISIN:
``شاخص كل (IRX6XTPI0009)``. ``index_html`` is the same for a page, the Persian name in a
``<bdi>`` so that it reads right to left inside an English line. ``tehran_time`` turns a
stored UTC timestamp (ISO 8601) into ``2026-12-07 18:33 Tehran time (UTC+03:30)``.
Only the standard library and markupsafe: the CLI and every stage may import it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from markupsafe import Markup

from pipelines.core.calendar import TEHRAN

# What TSETMC calls each index (its ``lVal30``), spelt exactly as TSETMC writes it (Arabic
# kaf and yeh, as on tsetmc.com). The first 13: TSETMC's list of TSE indices in
# data/examples/tse-index-list/GetIndexB1LastAll_1.json, found by the insCode that
# params.yaml's fetch.indices gives each ISIN (tests/reporting/test_front_page.py checks them
# against both). The three Fara Bourse (OTC) indices are not in that list (TSETMC lists them
# under All/2): their names are as TSETMC's index titles read in other public clients.
TSETMC_NAMES = {
    "IRX6XTPI0009": "شاخص كل",
    "IRX6XTPI0025": "شاخص كل (هم وزن)",
    "IRXYXTPI0009": "شاخص قيمت(وزني-ارزشي)",
    "IRXYXTPI0025": "شاخص قيمت (هم وزن)",
    "IRX6XAFF0005": "شاخص آزاد شناور",
    "IRX6XTAL0001": "شاخص بازار اول",
    "IRX6XALS0002": "شاخص بازار دوم",
    "IRX6XSNT0009": "شاخص صنعت",
    "IRX6XS300003": "شاخص 30 شركت بزرگ",
    "IRX6XSLC0000": "شاخص قيمت 50 شركت",
    "IRX6XWAI0001": "شاخص50شركت فعالتر",
    "IRX6X27T0007": "27-فلزات اساسي",
    "IRX6X44T0006": "44-شيميايي",
    "IRXZXOCI0008": "شاخص كل فرابورس",
    "IRXZXOZ10008": "بازار اول فرابورس",
    "IRXZXOZ20007": "بازار دوم فرابورس",
}


def index_name(index_id: str, given: str | None = None) -> str | None:
    """The index's name: TSETMC's for a known ISIN, else the name its file gave (``given``)
    unless that is only the id again; None when there is none."""
    if index_id in TSETMC_NAMES:
        return TSETMC_NAMES[index_id]
    return given if given and given.strip() and given.strip() != index_id else None


def index_label(index_id: str, given: str | None = None) -> str:
    """``NAME (ISIN)``, or the id alone when no name is known (plain text: escape it for a
    page, or use ``index_html``)."""
    name = index_name(index_id, given)
    return f"{name} ({index_id})" if name else index_id


def index_html(index_id: str, given: str | None = None) -> Markup:
    """``index_label`` for a page (escaped): the name isolated in ``<bdi>`` (``lang="fa"``
    for TSETMC's), so a Persian name reads right to left and the ISIN stays after it."""
    name = index_name(index_id, given)
    if not name:
        return Markup('<span class="index-id">{}</span>').format(index_id)
    lang = Markup(' lang="fa"') if index_id in TSETMC_NAMES else ""
    return Markup('<bdi class="index-name"{}>{}</bdi> (<span class="index-id">{}</span>)'
                  ).format(lang, name, index_id)


def tehran_time(stamp: str | dt.datetime | None) -> str | None:
    """A timestamp as Tehran's wall clock, the zone said: ``2026-12-07 18:33 Tehran time
    (UTC+03:30)``. ``stamp``: ISO 8601 (as the run log and the pages' footers store it) or
    a datetime; one without a zone is taken as UTC. None stays None; a text that is not a
    timestamp is returned as it is."""
    if stamp is None:
        return None
    when = stamp
    if not isinstance(when, dt.datetime):
        try:
            when = dt.datetime.fromisoformat(str(stamp))
        except ValueError:
            return str(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    local = when.astimezone(ZoneInfo(TEHRAN))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} Tehran time (UTC{offset[:3]}:{offset[3:]})"
