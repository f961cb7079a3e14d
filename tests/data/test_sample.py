"""The embedded sample data looks and behaves like the study's exports."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from pipelines.data import sample
from pipelines.data.formats import read_export
from tsepipe.cli import app


def digest(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_sixteen_layout_a_utf16_files(sample_dir):
    files = sorted(sample_dir.iterdir())
    assert len(files) == 16
    for path in files:
        raw = path.read_bytes()
        assert raw[:2] == b"\xff\xfe"
        header = raw[2:].decode("utf-16-le").split("\r\n")[0]
        assert header == sample.LAYOUT_A_HEADER
        assert header.count("<OPENINT>") == 3 and len(header.split(",")) == 13


def test_deterministic_and_seeded(tmp_path, sample_dir):
    again = tmp_path / "again"
    sample.generate(again)
    assert digest(again) == digest(sample_dir)
    other = tmp_path / "other"
    sample.generate(other, seed=1)
    assert digest(other) != digest(sample_dir)


def test_prices_volumes_and_calendar_are_plausible(sample_dir):
    exports = {p.stem: read_export(p) for p in sorted(sample_dir.iterdir())}
    target = exports[sample.TARGET_ISIN].frame
    assert 1150 <= len(target) <= 1200
    span_years = (target["date"].iloc[-1] - target["date"].iloc[0]).days / 365.25
    assert 4.5 < span_years < 5.5
    assert set(target["date"].dt.dayofweek) == {5, 6, 0, 1, 2}  # Saturday .. Wednesday
    assert target["date"].iloc[-1] <= pd.Timestamp.today()
    nowruz = target["date"][(target["date"].dt.month == 3) & (target["date"].dt.day >= 21)]
    assert nowruz.empty
    for export in exports.values():
        frame = export.frame
        assert export.index_name and not export.index_name.isascii()  # Persian names
        assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
        assert (frame[["open", "close"]].max(axis=1) <= frame["high"]).all()
        assert (frame["volume"] > 0).all() and (frame["trades"] > 0).all()


def test_overall_index_returns_are_positively_autocorrelated(sample_dir):
    close = read_export(sample_dir / f"{sample.TARGET_ISIN}.csv").frame["close"].to_numpy()
    returns = np.diff(np.log(close))
    lag1 = np.corrcoef(returns[:-1], returns[1:])[0, 1]
    assert 0.2 < lag1 < 0.5
    assert 0.5 < (returns > 0).mean() < 0.7  # a rising market, like the real one


def test_realistic_flaws(sample_dir):
    rows = {p.stem: len(read_export(p).frame) for p in sorted(sample_dir.iterdir())}
    full = rows[sample.TARGET_ISIN]
    for isin in sample.GAPPY_ISINS:
        assert full - 40 < rows[isin] < full
    late = read_export(sample_dir / f"{sample.LATE_ISIN}.csv").frame
    first = read_export(sample_dir / f"{sample.TARGET_ISIN}.csv").frame["date"].iloc[0]
    assert 300 < (late["date"].iloc[0] - first).days < 420  # about a year late


def test_cli_refuses_to_mix_with_foreign_files(tmp_path):
    (tmp_path / "mine.csv").write_text("x")
    result = CliRunner().invoke(app, ["sample-data", "--out", str(tmp_path), "--days", "40"])
    assert result.exit_code == 3
    assert "not sample exports" in result.output and "mine.csv" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv"]
    result = CliRunner().invoke(app, ["sample-data", "--out", str(tmp_path / "new"),
                                      "--days", "40", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "new").iterdir())) == 16
