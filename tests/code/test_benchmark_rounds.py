"""The full-run benchmark keeps each revision's median run over its rounds."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import tsepipe_runs  # noqa: E402  (benchmarks/tsepipe_runs.py)


def _run(total: float, evaluate: float, status: int = 0) -> dict:
    return {"total_s": total, "exit_status": status, "stage_s": {"evaluate": evaluate}}


def test_the_median_run_is_kept_with_every_rounds_times():
    kept = tsepipe_runs._median([_run(98.0, 59.0), _run(94.0, 55.0), _run(96.0, 57.0)])
    assert kept["total_s"] == 96.0 and kept["stage_s"]["evaluate"] == 57.0
    assert kept["rounds_total_s"] == [98.0, 94.0, 96.0]
    assert kept["rounds_evaluate_s"] == [59.0, 55.0, 57.0]


def test_a_failed_round_is_left_out_of_the_median():
    kept = tsepipe_runs._median([_run(10.0, 1.0, status=1), _run(94.0, 55.0),
                                 _run(96.0, 57.0)])
    assert kept["total_s"] == 94.0  # the lower of the two that finished
    assert kept["rounds_total_s"] == [10.0, 94.0, 96.0]


def test_one_round_is_that_run():
    only = _run(95.0, 56.0)
    assert tsepipe_runs._median([only]) == only
