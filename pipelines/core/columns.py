"""The merged dataset's column names: ``<index_id>__<field>`` (``IRX6XTPI0009__close``).

The merge writes them, the features read them, ingest refuses a file name that would
break them, drift groups by them.
"""

from __future__ import annotations

COLUMN_SEPARATOR = "__"  # no index id may hold it


def column_name(index_id: str, field: str) -> str:
    """The dataset column of ``field`` (close, volume, a feature) of ``index_id``."""
    return f"{index_id}{COLUMN_SEPARATOR}{field}"


def field_of(column: str) -> str:
    """``IRX6XTPI0009__close`` -> ``close``."""
    return column.split(COLUMN_SEPARATOR)[-1]


def index_of(column: str) -> str:
    """``IRX6XTPI0009__close`` -> ``IRX6XTPI0009``."""
    return column.split(COLUMN_SEPARATOR)[0]
