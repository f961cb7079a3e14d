"""Levels no index can take (issue 31): which day a bad close is charged to, that no day of
the real data in the repository is charged at all, and that an exogenous index's bad day
changes neither the dataset nor the forecast."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core.params.validate import ValidateSection
from pipelines.data.formats import LEVEL_FIELDS, read_export
from pipelines.data.validate import close_moves
from tests.conftest import BIN, ROOT, TARGET, run

BOUNDS = ValidateSection()
CALM = [100.0, 101.0, 100.5, 102.0, 101.5, 103.0, 102.5, 104.0, 103.5, 105.0]


def charged(closes: list[float]) -> list[int]:
    """The rows (0-based) whose close is too far from its neighbours' or moved too far."""
    judged = close_moves(pd.Series(closes, dtype="float64"), BOUNDS.max_price,
                         BOUNDS.max_daily_move)
    over = (judged["close_off_neighbours"] > BOUNDS.max_daily_move) | (
        judged["close_move"] > BOUNDS.max_daily_move)
    return [int(i) for i in np.flatnonzero(over.to_numpy())]


def with_closes(changes: dict[int, float]) -> list[float]:
    return [changes.get(i, close) for i, close in enumerate(CALM)]


@pytest.mark.parametrize(("closes", "rows"), [
    (CALM, []),
    (with_closes({4: 1015.0}), [4]),  # a typo: +900 % in, -90 % out: the day alone
    (with_closes({4: 10.15}), [4]),  # a typo the other way
    (with_closes({4: 1015.0, 5: 1030.0}), [4, 5]),  # a typo of two days
    (with_closes({0: 1000.0}), [0]),  # the first day
    (with_closes({9: 1050.0}), [9]),  # the last day (the newest: no day after it)
    ([*CALM[:5], *(c * 1.5 for c in CALM[5:])], [5]),  # a jump that stays: where it lands
    (with_closes({4: np.inf, 6: 1e308, 7: np.nan, 8: -5.0}), []),  # others' rules, not these
])
def test_a_bad_close_is_charged_to_its_own_day(closes: list[float], rows: list[int]) -> None:
    assert charged(closes) == rows


def test_no_day_of_the_real_data_is_implausible() -> None:
    """The real exports (17 files, 2008-2019) stay within the bounds with room to spare."""
    files = sorted((ROOT / "data" / "examples").glob("*/IRX*.*"))
    assert len(files) == 17
    largest = 0.0
    for path in files:
        frame = read_export(path).frame
        judged = close_moves(frame["close"].reset_index(drop=True), BOUNDS.max_price,
                             BOUNDS.max_daily_move)
        levels = frame[[f for f in LEVEL_FIELDS if f in frame]].to_numpy()
        off_close = np.abs(levels / judged[["close_reference"]].to_numpy() - 1)
        largest = max(largest, judged["close_move"].max(), judged["close_off_neighbours"].max(),
                      off_close.max())
        assert np.isfinite(levels).all() and levels.max() <= BOUNDS.max_price, path.name
    assert largest < BOUNDS.max_daily_move / 2, largest


def test_a_level_change_across_a_long_gap_is_not_a_bad_day() -> None:
    """Days missing from a file (a 282-day hole in the real exports): the move across the
    gap is judged per week begun, so a year's real change is not charged to the day after
    it; the same change from one trading day to the next is."""
    closes = pd.Series([*CALM[:5], *(c * 1.6 for c in CALM[5:])], dtype="float64")
    daily = pd.Series(pd.bdate_range("2019-01-01", periods=len(closes)))
    holed = daily.where(daily.index < 5, daily + pd.Timedelta(days=400))
    for dates, rows in ((daily, [5]), (holed, [])):
        judged = close_moves(closes, BOUNDS.max_price, BOUNDS.max_daily_move, dates)
        assert list(np.flatnonzero(judged["close_move"] > BOUNDS.max_daily_move)) == rows



def _exogenous_rows(path: Path, change: Callable[[list[str], list[str], int], list[str] | None]
                    ) -> None:
    """Rewrite an export (UTF-16, a header line): ``change(header, fields, line)`` applied
    to its data lines 100 and 200: the fields it returns, or the line deleted (None)."""
    lines = path.read_bytes()[2:].decode("utf-16-le").split("\n")
    header = [name.strip().strip("<>").upper() for name in lines[0].split(",")]
    for number in (200, 100):  # the later first: deleting it keeps the other's number
        changed = change(header, lines[number].split(","), number)
        if changed is None:
            del lines[number]
        else:
            lines[number] = ",".join(changed)
    path.write_bytes(b"\xff\xfe" + "\n".join(lines).encode("utf-16-le"))


def _stages_to_forecast(project: Path) -> tuple[pd.DataFrame, dict, str]:
    """ingest, validate, merge and predict: the dataset, the forecast, what they said."""
    said = ""
    for stage in ("ingest", "validate", "merge", "predict"):
        done = run([str(BIN / "tsepipe"), stage], project)
        said += done.stdout + done.stderr
    forecast = json.loads((project / "forecasts/latest.json").read_text(encoding="utf-8"))
    return pd.read_parquet(project / "data/processed/merged.parquet"), forecast, said


def _implausible(header: list[str], fields: list[str], line: int) -> list[str]:
    """Line 100: 1e308 as close, high and last; line 200: ten times its own."""
    for name in ("CLOSE", "HIGH", "LAST"):
        at = header.index(name)
        fields[at] = "1e308" if line == 100 else f"{float(fields[at]) * 10:.1f}"
    return fields


@pytest.mark.slow
def test_an_exogenous_bad_day_changes_neither_the_dataset_nor_the_forecast(trained_project):
    """The issue's cases, in an index that is not the target: one day of 1e308 (close, high
    and last alike), another day ten times its neighbours. Each row is dropped and named
    with its reason; the dataset and the forecast are those of the files without the two
    rows."""
    project = trained_project
    path = next(p for p in sorted((project / "data/raw").glob("*.csv")) if p.stem != TARGET)
    kept = path.read_bytes()
    _exogenous_rows(path, lambda header, fields, line: None)
    dataset_without, forecast_without, _ = _stages_to_forecast(project)
    path.write_bytes(kept)
    _exogenous_rows(path, _implausible)
    dataset, forecast, said = _stages_to_forecast(project)
    pd.testing.assert_frame_equal(dataset, dataset_without)
    for key in ("probability_up", "probability_up_raw", "call", "model_direction"):
        assert forecast[key] == forecast_without[key], key
    named = [line for line in said.splitlines() if line.startswith(f"warning: {path.name}")]
    assert any("line 101" in line and "close" in line and "validate.max_price" in line
               for line in named), said  # 1e308: not finite, or above the price bound
    assert any("line 201" in line and "close" in line and "validate.max_daily_move" in line
               for line in named), said  # ten times its neighbours: the daily move bound
