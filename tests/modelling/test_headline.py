"""The headline metrics file (``Leaderboard.headline`` through ``fileio.write_metrics``):
the one file ``dvc metrics show`` and ``dvc exp show`` print, six flat keys."""

from __future__ import annotations

import json

from pipelines.core.fileio import write_metrics
from pipelines.modelling.select import leaderboard
from tests.modelling.test_evaluate import _fake_evaluation


def test_the_headline_names_the_champion_its_interval_and_the_best_baseline(tmp_path):
    board = leaderboard(_fake_evaluation("good"), "none")
    path = write_metrics(tmp_path / "headline.json", board.headline())
    headline = json.loads(path.read_text(encoding="utf-8"))
    test, baseline = board.champion_row.test, board.best_baseline_on_test
    assert headline == {
        "champion": "net", "test_mcc": round(test["mcc"], 4),
        "mcc_lo": round(test["mcc_ci"][0], 4), "mcc_hi": round(test["mcc_ci"][1], 4),
        "baseline": baseline, "baseline_mcc": round(board.models[baseline].test["mcc"], 4)}
    # a value DVC cannot show as a number (no interval: NaN) is left out, not written
    board.models["net"].test["mcc_ci"] = [float("nan"), float("nan")]
    headline = json.loads(write_metrics(path, board.headline()).read_text(encoding="utf-8"))
    assert "mcc_lo" not in headline and headline["champion"] == "net"
