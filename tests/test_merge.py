"""The merge policy: target calendar, forward fill only, coverage, counts, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.fileio import file_md5
from pipelines.merge import merge, merge_tables, read_dataset

TARGET = "IRX6XTPI0009"


def table(index_id: str, days: list[str], closes: list[float]) -> pd.DataFrame:
    values = np.asarray(closes, dtype=float)
    return pd.DataFrame({
        "date": pd.to_datetime(days), "index_id": index_id, "index_name": f"name {index_id}",
        "open": values, "high": values + 1, "low": values - 1, "close": values,
        "volume": values * 10,
    })


DAYS = ["2024-01-06", "2024-01-07", "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-13"]


def test_missing_days_take_the_last_known_value_never_a_later_one():
    tables = {
        TARGET: table(TARGET, DAYS, [1, 2, 3, 4, 5, 6]),
        # missing 01-07 and 01-08; publishes on Thursday 01-11, a non-trading day
        "EXO": table("EXO", ["2024-01-06", "2024-01-09", "2024-01-10", "2024-01-11"],
                     [10, 40, 50, 55]),
    }
    wide, summary = merge_tables(tables, TARGET, min_coverage=0.5, max_fill_days=5)
    assert list(wide["EXO__close"]) == [10, 10, 10, 40, 50, 55]
    assert list(wide[f"{TARGET}__close"]) == [1, 2, 3, 4, 5, 6]
    exo = next(s for s in summary["indices"] if s["index_id"] == "EXO")
    assert exo["days_filled"] == 3 and exo["longest_fill"] == 2
    assert exo["rows_off_calendar"] == 1
    assert summary["values_filled"] == 3
    assert list(wide.columns[:3]) == ["date", f"{TARGET}__open", f"{TARGET}__high"]
    assert wide["date"].is_monotonic_increasing and wide["date"].is_unique


def test_a_later_value_never_fills_an_earlier_day():
    tables = {TARGET: table(TARGET, DAYS, range(6)),
              "EXO": table("EXO", DAYS[2:], [30, 40, 50, 60])}
    wide, summary = merge_tables(tables, TARGET, min_coverage=0.5, max_fill_days=5)
    assert wide["date"].iloc[0] == pd.Timestamp(DAYS[2])  # days before EXO existed: dropped
    assert summary["leading_rows_dropped"] == 2
    assert list(wide["EXO__close"]) == [30, 40, 50, 60]


def test_low_coverage_index_is_left_out_and_counted():
    tables = {TARGET: table(TARGET, DAYS, range(6)),
              "LATE": table("LATE", DAYS[4:], [1, 2])}
    wide, summary = merge_tables(tables, TARGET, min_coverage=0.5, max_fill_days=5)
    assert not any(c.startswith("LATE__") for c in wide.columns)
    assert len(wide) == 6 and summary["indices_excluded"] == 1
    late = next(s for s in summary["indices"] if s["index_id"] == "LATE")
    assert not late["included"] and "min_coverage" in late["reason"]


def test_gaps_longer_than_the_fill_limit_drop_those_days():
    tables = {TARGET: table(TARGET, DAYS, range(6)),
              "EXO": table("EXO", [DAYS[0], DAYS[5]], [1, 6])}
    wide, summary = merge_tables(tables, TARGET, min_coverage=0.5, max_fill_days=2)
    assert list(wide["date"].dt.strftime("%m-%d")) == ["01-06", "01-07", "01-08", "01-13"]
    assert summary["rows_dropped_stale"] == 2


def test_real_data_merges_to_417_days(tmp_path, real_dir):
    from pipelines.ingest import ingest

    ingest(real_dir, tmp_path / "tables", tmp_path / "ingest.json")
    validation = {"passed": True,
                  "usable_index_ids": [p.stem for p in sorted(real_dir.glob("*.csv"))]}
    (tmp_path / "validation.json").write_text(json.dumps(validation))
    summary = merge(tmp_path / "tables", tmp_path / "validation.json", tmp_path / "d.parquet",
                    tmp_path / "s.json", TARGET, min_coverage=0.9, max_fill_days=5)
    frame, meta = read_dataset(tmp_path / "d.parquet")
    assert summary["rows"] == len(frame) == 417 and summary["indices_included"] == 16
    assert meta["index_names"][TARGET] == "Overall Index"
    assert summary["md5"] == file_md5(tmp_path / "d.parquet")
    assert frame["date"].dtype == "datetime64[ns]"
    assert all(str(t) == "float64" for t in frame.dtypes.iloc[1:])


def test_failed_merge_leaves_the_previous_dataset(tmp_path):
    dataset = tmp_path / "d.parquet"
    dataset.write_bytes(b"previous good dataset")
    (tmp_path / "validation.json").write_text(json.dumps({"passed": True,
                                                          "usable_index_ids": ["MISSING"]}))
    with pytest.raises(Exception):  # noqa: B017 (the table file is missing: any I/O error)
        merge(tmp_path, tmp_path / "validation.json", dataset, tmp_path / "s.json", TARGET,
              min_coverage=0.9, max_fill_days=5)
    (tmp_path / "validation.json").write_text(json.dumps({"passed": False,
                                                          "usable_index_ids": []}))
    with pytest.raises(DataError, match="validation did not pass"):
        merge(tmp_path, tmp_path / "validation.json", dataset, tmp_path / "s.json", TARGET,
              min_coverage=0.9, max_fill_days=5)
    assert dataset.read_bytes() == b"previous good dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "validation.json"]


def test_outputs_get_the_usual_file_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from pipelines.fileio import write_text

    umask = os.umask(0o022)
    os.umask(umask)
    path = write_text(tmp_path / "report.html", "<p>ok</p>")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
