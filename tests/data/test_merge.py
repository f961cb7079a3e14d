"""The merge policy: target calendar, forward fill only, coverage, counts, atomic output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.core.errors import DataError
from pipelines.core.fileio import file_md5
from pipelines.core.params.merge import MergeSection
from pipelines.data.dataset import read_dataset
from pipelines.data.merge import merge_tables
from tests.support.stages import merge_files

TARGET = "IRX6XTPI0009"


def table(index_id: str, days: list[str], closes: list[float]) -> pd.DataFrame:
    values = np.asarray(closes, dtype=float)
    return pd.DataFrame({
        "date": pd.to_datetime(days), "index_id": index_id, "index_name": f"name {index_id}",
        "open": values, "high": values + 1, "low": values - 1, "close": values,
        "volume": values * 10,
    })


LOOSE = MergeSection(min_coverage=0.5, max_fill_days=5, max_target_days_lost=0.5)
DAYS = ["2024-01-06", "2024-01-07", "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-13"]


def test_missing_days_take_the_last_known_value_never_a_later_one():
    tables = {
        TARGET: table(TARGET, DAYS, [1, 2, 3, 4, 5, 6]),
        # missing 01-07 and 01-08; publishes on Thursday 01-11, a non-trading day
        "EXO": table("EXO", ["2024-01-06", "2024-01-09", "2024-01-10", "2024-01-11"],
                     [10, 40, 50, 55]),
    }
    wide, summary = merge_tables(tables, TARGET, LOOSE)
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
    wide, summary = merge_tables(tables, TARGET, LOOSE)
    assert wide["date"].iloc[0] == pd.Timestamp(DAYS[2])  # days before EXO existed: dropped
    assert summary["leading_rows_dropped"] == 2
    assert list(wide["EXO__close"]) == [30, 40, 50, 60]


def test_low_coverage_index_is_left_out_and_counted():
    tables = {TARGET: table(TARGET, DAYS, range(6)),
              "LATE": table("LATE", DAYS[4:], [1, 2])}
    wide, summary = merge_tables(tables, TARGET, LOOSE)
    assert not any(c.startswith("LATE__") for c in wide.columns)
    assert len(wide) == 6 and summary["indices_excluded"] == 1
    late = next(s for s in summary["indices"] if s["index_id"] == "LATE")
    assert not late["included"] and "min_coverage" in late["reason"]


def test_gaps_longer_than_the_fill_limit_drop_those_days():
    tables = {TARGET: table(TARGET, DAYS, range(6)),
              "EXO": table("EXO", [DAYS[0], DAYS[5]], [1, 6])}
    wide, summary = merge_tables(tables, TARGET, MergeSection(
        min_coverage=0.5, max_fill_days=2, max_target_days_lost=0.5))
    assert list(wide["date"].dt.strftime("%m-%d")) == ["01-06", "01-07", "01-08", "01-13"]
    assert summary["rows_dropped_gaps"] == 2
    exo = next(s for s in summary["indices"] if s["index_id"] == "EXO")
    assert exo["included"] and exo["days_lost"] == 2 and exo["days_filled"] == 2


def test_real_data_merges_to_417_days(tmp_path, real_dir):
    import os
    import subprocess
    import sys

    from pipelines.data.ingest import ingest

    ingest(real_dir, tmp_path / "tables", tmp_path / "ingest.json")
    validation = {"passed": True,
                  "usable_index_ids": [p.stem for p in sorted(real_dir.glob("*.csv"))]}
    (tmp_path / "validation.json").write_text(json.dumps(validation))
    # what writers killed mid-write left (a process that has ended; the old naming), and
    # what a running one is writing now (this process): the merge removes the first two
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    left = [tmp_path / f".d.parquet.{ended}.k1ll3d.tmp", tmp_path / ".d.parquet.ab12cd.tmp"]
    writing = tmp_path / f".d.parquet.{os.getpid()}.wr1t3s.tmp"
    for path in [*left, writing]:
        path.write_bytes(b"half a dataset")
    summary = merge_files(tmp_path / "tables", tmp_path / "validation.json",
                          tmp_path / "d.parquet", tmp_path / "s.json", TARGET)
    frame, meta = read_dataset(tmp_path / "d.parquet")
    assert summary["rows"] == len(frame) == 417 and summary["indices_included"] == 16
    assert meta["index_names"][TARGET] == "Overall Index"
    assert summary["md5"] == file_md5(tmp_path / "d.parquet")
    assert frame["date"].dtype == "datetime64[ns]"
    assert all(str(t) == "float64" for t in frame.dtypes.iloc[1:])
    assert not any(path.exists() for path in left) and writing.exists()


def test_failed_merge_leaves_the_previous_dataset(tmp_path):
    dataset = tmp_path / "d.parquet"
    dataset.write_bytes(b"previous good dataset")
    (tmp_path / "validation.json").write_text(json.dumps({"passed": True,
                                                          "usable_index_ids": ["MISSING"]}))
    with pytest.raises(Exception):  # noqa: B017 (the table file is missing: any I/O error)
        merge_files(tmp_path, tmp_path / "validation.json", dataset, tmp_path / "s.json",
                    TARGET)
    (tmp_path / "validation.json").write_text(json.dumps({"passed": False,
                                                          "usable_index_ids": []}))
    with pytest.raises(DataError, match="validation did not pass"):
        merge_files(tmp_path, tmp_path / "validation.json", dataset, tmp_path / "s.json",
                    TARGET)
    assert dataset.read_bytes() == b"previous good dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "validation.json"]


def test_outputs_get_the_usual_file_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from pipelines.core.fileio import write_text

    umask = os.umask(0o022)
    os.umask(umask)
    path = write_text(tmp_path / "report.html", "<p>ok</p>")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# --- the merge never silently loses the present --------------------------------------

def trading_days(n: int, start: str = "2024-01-06") -> list[str]:
    """``n`` Saturday-Wednesday days from ``start``."""
    days = pd.bdate_range(start, periods=n * 2, freq="C", weekmask="Sat Sun Mon Tue Wed")
    return [f"{d:%Y-%m-%d}" for d in days[:n]]


def test_a_stale_index_is_left_out_and_the_dataset_ends_on_the_targets_last_day():
    days = trading_days(200)
    tables = {TARGET: table(TARGET, days, range(200)),
              "FRESH": table("FRESH", days[:-3], range(197)),  # 3 days behind: filled
              "STALE": table("STALE", days[:-40], range(160))}  # not refreshed for 40 days
    wide, summary = merge_tables(tables, TARGET, MergeSection(max_fill_days=5))
    assert wide["date"].iloc[-1] == pd.Timestamp(days[-1]) and len(wide) == 200
    stale = next(s for s in summary["indices"] if s["index_id"] == "STALE")
    assert not stale["included"]
    assert stale["reason"].startswith(f"stale: its last day {days[-41]} is 40 trading days "
                                      f"before the target's last day {days[-1]}")
    assert not any(c.startswith("STALE__") for c in wide.columns)
    fresh = next(s for s in summary["indices"] if s["index_id"] == "FRESH")
    assert fresh["included"] and fresh["days_filled"] == 3
    assert summary["warnings"] == [f"STALE (name STALE): left out of the merge: {stale['reason']}"]


def test_an_index_whose_gaps_cost_more_than_the_limit_is_left_out():
    days = trading_days(300)
    holed = days[:100] + days[130:]  # a 30-day hole: 25 days beyond the fill limit
    small = days[:50] + days[57:]  # a 7-day hole: 2 days lost, within 1 % of 300
    tables = {TARGET: table(TARGET, days, range(300)),
              "HOLE": table("HOLE", holed, range(len(holed))),
              "SMALL": table("SMALL", small, range(len(small)))}
    wide, summary = merge_tables(tables, TARGET, MergeSection(max_target_days_lost=0.01))
    by_id = {s["index_id"]: s for s in summary["indices"]}
    assert not by_id["HOLE"]["included"] and by_id["HOLE"]["days_lost"] == 25
    assert "would cost the target 25 of its 300 trading days (8.3%)" in by_id["HOLE"]["reason"]
    assert by_id["SMALL"]["included"] and by_id["SMALL"]["days_lost"] == 2
    assert len(wide) == 298 and summary["rows_dropped_gaps"] == 2
    assert wide["date"].iloc[-1] == pd.Timestamp(days[-1])


def test_kept_indices_that_together_cost_too_much_lose_the_costliest():
    days = trading_days(300)
    # each loses 3 different days (1 % of 300 each), together 6: over the limit
    a = days[:50] + days[58:]
    b = days[:150] + days[158:]
    tables = {TARGET: table(TARGET, days, range(300)),
              "A": table("A", a, range(len(a))), "B": table("B", b, range(len(b)))}
    wide, summary = merge_tables(tables, TARGET, MergeSection(max_target_days_lost=0.01))
    included = [s["index_id"] for s in summary["indices"] if s["included"]]
    assert included == [TARGET, "A"]
    # a tie in cost: the later id goes, so that the outcome does not depend on file order
    assert "with the indices kept" in next(s for s in summary["indices"]
                                           if s["index_id"] == "B")["reason"]
    assert len(wide) == 297


def test_too_few_indices_left_stops_the_merge_naming_each_and_why():
    days = trading_days(100)
    tables = {TARGET: table(TARGET, days, range(100)),
              "OLD": table("OLD", days[:50], range(50))}
    with pytest.raises(DataError) as raised:
        merge_tables(tables, TARGET, MergeSection(), 2)
    lines = raised.value.lines
    assert lines[0] == ("merge: only 1 of 2 indices can be merged, at least 2 needed "
                        "(validate.min_usable_files)")
    assert lines[1].startswith("OLD (name OLD): left out: stale: its last day")


def test_rows_dropped_by_validation_are_not_merged_and_a_target_day_leaves_the_calendar(
        tmp_path):
    days = trading_days(10)
    target = table(TARGET, days, range(1, 11))
    target.index = pd.Index(range(2, 12), name="line")  # line numbers, as ingest keeps them
    exo = table("EXO", days, range(11, 21))
    exo.index = pd.Index(range(2, 12), name="line")
    target.to_parquet(tmp_path / f"{TARGET}.parquet")
    exo.to_parquet(tmp_path / "EXO.parquet")
    validation = {"passed": True, "usable_index_ids": [TARGET, "EXO"],
                  "files": [{"index_id": TARGET, "dropped_lines": [5]},
                            {"index_id": "EXO", "dropped_lines": [7]}]}
    (tmp_path / "validation.json").write_text(json.dumps(validation))
    summary = merge_files(tmp_path, tmp_path / "validation.json", tmp_path / "d.parquet",
                          tmp_path / "s.json", TARGET, MergeSection(max_target_days_lost=0.5))
    frame, _ = read_dataset(tmp_path / "d.parquet")
    # line 5 of the target is the 4th day: not a trading day any more
    assert days[3] not in set(frame["date"].dt.strftime("%Y-%m-%d"))
    assert summary["target_trading_days"] == 9 and len(frame) == 9
    # line 7 of EXO (6th day) takes the 5th day's value, never a later one
    sixth = frame[frame["date"] == pd.Timestamp(days[5])]
    assert float(sixth["EXO__close"].iloc[0]) == 15.0
    assert frame[f"{TARGET}__close"].tolist() == [1, 2, 3, 5, 6, 7, 8, 9, 10]


@pytest.fixture(scope="module")
def real_tables(real_dir, tmp_path_factory):
    from pipelines.data.ingest import ingest

    folder = tmp_path_factory.mktemp("real-tables")
    ingest(real_dir, folder / "tables", folder / "ingest.json")
    return {p.stem: pd.read_parquet(p) for p in (folder / "tables").glob("*.parquet")}


def test_real_files_with_one_index_117_days_short_still_end_on_2019_12_18(real_tables):
    tables = dict(real_tables)
    cut = "IRX6XSNT0009"
    tables[cut] = tables[cut].iloc[:-117]
    wide, summary = merge_tables(tables, TARGET, MergeSection(), 12)
    assert len(wide) == 417
    assert wide["date"].iloc[-1] == pd.Timestamp("2019-12-18")
    left_out = [s for s in summary["indices"] if not s["included"]]
    assert [s["index_id"] for s in left_out] == [cut]
    assert left_out[0]["reason"].startswith("stale: its last day 2019-06-24 ")
    assert "117 trading days before the target's last day 2019-12-18" in left_out[0]["reason"]
    assert summary["warnings"] and cut in summary["warnings"][0]


def test_real_files_with_a_282_day_hole_lose_at_most_1_percent(real_tables):
    tables = dict(real_tables)
    holed = "IRX6X44T0006"
    frame = tables[holed]
    tables[holed] = pd.concat([frame.iloc[:60], frame.iloc[60 + 282:]])
    wide, summary = merge_tables(tables, TARGET, MergeSection(), 12)
    assert len(wide) >= 417 * 0.99
    assert wide["date"].iloc[-1] == pd.Timestamp("2019-12-18")
    entry = next(s for s in summary["indices"] if s["index_id"] == holed)
    assert not entry["included"] and "gaps longer than merge.max_fill_days" in entry["reason"]


@pytest.mark.parametrize("damage", ["zeroed", "cut", "not parquet"])
def test_a_damaged_dataset_is_one_line_naming_the_file_and_the_way_out(tmp_path, real_dir,
                                                                       damage):
    from pipelines.data.ingest import ingest

    ingest(real_dir, tmp_path / "tables", tmp_path / "ingest.json")
    validation = {"passed": True,
                  "usable_index_ids": [p.stem for p in sorted(real_dir.glob("*.csv"))]}
    (tmp_path / "validation.json").write_text(json.dumps(validation))
    dataset = tmp_path / "d.parquet"
    merge_files(tmp_path / "tables", tmp_path / "validation.json", dataset,
                tmp_path / "s.json", TARGET)
    data = bytearray(dataset.read_bytes())
    if damage == "zeroed":  # 4 KB of zeros in the middle, as a failing disk leaves them
        middle = len(data) // 2
        data[middle:middle + 4096] = bytes(4096)
    elif damage == "cut":
        data = data[:len(data) // 2]
    else:
        data = bytearray(b"date,close\n2019-01-01,1\n")
    dataset.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        read_dataset(dataset)
    assert len(caught.value.lines) == 1
    line = caught.value.lines[0]
    assert line.startswith(f"{dataset}: the merged dataset is damaged (")
    assert line.endswith(f"rebuild it with tsepipe merge, or dvc checkout {dataset}")
    assert "\n" not in line
