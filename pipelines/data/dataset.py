"""The merged dataset's file: one wide Parquet table, the index names in its metadata.

``pipelines.data.merge`` writes it; the modelling stages read it with ``read_dataset``
(the file is their input, not the merge's code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

METADATA_KEY = b"tsepipe"  # the Parquet schema metadata key of tsepipe's own record


def read_dataset(path: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a merged dataset; return (frame, tsepipe metadata)."""
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return table.to_pandas(), meta
