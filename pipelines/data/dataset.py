"""The merged dataset's file: one wide Parquet table, the index names in its metadata.

``pipelines.data.merge`` writes it; the modelling stages read it with ``read_dataset``
(the file is their input, not the merge's code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.errors import DataError

METADATA_KEY = b"tsepipe"  # the Parquet schema metadata key of tsepipe's own record


def read_dataset(path: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a merged dataset; return (frame, tsepipe metadata)."""
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no merged dataset; run tsepipe merge (or dvc checkout "
                        f"{path})") from None
    except (OSError, pa.ArrowException) as exc:  # zeroed blocks, a cut file, not Parquet
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: the merged dataset is damaged ({reason}); rebuild it with "
                        f"tsepipe merge, or dvc checkout {path}") from None
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    return table.to_pandas(), meta
