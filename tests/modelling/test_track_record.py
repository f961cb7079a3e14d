"""The track record of published forecasts, counted by hand on eight trading days, and its
chart (``pipelines.reporting.calls_chart.calls_chart``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import matthews_corrcoef

from pipelines.modelling.track_record import COLUMNS, score_forecasts, summarise
from pipelines.reporting.calls_chart import calls_chart

HOSTILE = "<script>alert(1)</script>"
SVG = "{http://www.w3.org/2000/svg}"

# Eight trading days (Saturday to Wednesday; 2024-01-11 is a Thursday, not one of them).
DATES = pd.DatetimeIndex(["2024-01-06", "2024-01-07", "2024-01-08", "2024-01-09",
                          "2024-01-10", "2024-01-13", "2024-01-14", "2024-01-15"])
CLOSE = np.array([100.0, 102.0, 101.0, 101.0, 103.0, 104.0, 100.0, 99.0])


def publication(as_of: str, call: str | None, proba: float, created: str,
                champion: str = "gru", direction: str | None = None) -> dict:
    """A log row as ``predict.forecast`` writes it; ``call`` None: an old row (no call)."""
    later = DATES[DATES > pd.Timestamp(as_of)]
    row = {"as_of": as_of, "probability_up": proba,
           "next_trading_day": f"{later[0]:%Y-%m-%d}" if len(later) else "2024-01-16",
           "direction": direction or ("up" if proba >= 0.5 else "down"),
           "champion": champion, "data_version": "d", "model_version": "m",
           "created": f"{created}T12:00:00+00:00"}
    if call is not None:
        row["call"] = call
    if call == "no call":
        row["reasons"] = ["probability within the no-call band"]
    return row


def example_log() -> pd.DataFrame:
    rows = [
        publication("2024-01-06", "up", 0.62, "2024-01-06"),
        publication("2024-01-07", "no call", 0.52, "2024-01-07"),
        publication("2024-01-08", None, 0.45, "2024-01-08"),  # old: direction "down"
        publication("2024-01-09", "down", 0.41, "2024-01-09"),
        # 2024-01-10 twice: the later publication (down, written first here) wins
        publication("2024-01-10", "down", 0.47, "2024-01-11", champion="logistic"),
        publication("2024-01-10", "up", 0.57, "2024-01-10"),
        publication("2024-01-11", "up", 0.58, "2024-01-11"),  # not a trading day
        publication("2024-01-13", "down", 0.38, "2024-01-13"),
        publication("2024-01-15", "up", 0.55, "2024-01-15"),  # the last day: pending
    ]
    return pd.DataFrame(rows)


# as_of       call     P(up)  outcome_day  closes       outcome  hit    status
# 2024-01-06  up       0.62   2024-01-07   100 -> 102   up       True   scored
# 2024-01-07  no call  0.52   2024-01-08   102 -> 101   down     None   no call
# 2024-01-08  down     0.45   2024-01-09   101 -> 101   down     True   scored (equal: down)
# 2024-01-09  down     0.41   2024-01-10   101 -> 103   up       False  scored
# 2024-01-10  down     0.47   2024-01-13   103 -> 104   up       False  scored (later pub.)
# 2024-01-11  up       0.58   None         no close     None     None   unknown day
# 2024-01-13  down     0.38   2024-01-14   104 -> 100   down     True   scored
# 2024-01-15  up       0.55   None         99 -> ?      None     None   pending
EXPECTED = [
    ("2024-01-06", "up", 0.62, "2024-01-07", "up", True, "scored"),
    ("2024-01-07", "no call", 0.52, "2024-01-08", "down", None, "no call"),
    ("2024-01-08", "down", 0.45, "2024-01-09", "down", True, "scored"),
    ("2024-01-09", "down", 0.41, "2024-01-10", "up", False, "scored"),
    ("2024-01-10", "down", 0.47, "2024-01-13", "up", False, "scored"),
    ("2024-01-11", "up", 0.58, None, None, None, "unknown day"),
    ("2024-01-13", "down", 0.38, "2024-01-14", "down", True, "scored"),
    ("2024-01-15", "up", 0.55, None, None, None, "pending"),
]
# The five scored calls: call (pred) against outcome (true), up = 1:
#   pred 1 0 0 0 0 / true 1 0 1 1 0 -> tp 1, tn 2, fp 0, fn 2
#   MCC = (1*2 - 0*2) / sqrt((1+0)(1+2)(2+0)(2+2)) = 2 / sqrt(24) = 0.408
HAND_MCC = 2 / np.sqrt(24)


def test_each_forecast_day_is_scored_as_counted_by_hand():
    scored = score_forecasts(example_log(), DATES, CLOSE)
    assert list(scored.columns) == list(COLUMNS)
    got = [(r["as_of"], r["call"], r["probability_up"], r["outcome_day"], r["outcome"],
            r["hit"], r["status"]) for r in scored.to_dict("records")]
    assert got == EXPECTED
    assert scored.loc[scored["as_of"] == "2024-01-10", "champion"].item() == "logistic"
    assert scored["next_trading_day"].tolist()[-3:] == ["2024-01-13", "2024-01-14",
                                                         "2024-01-16"]
    assert scored["hit"].map(lambda hit: hit is None or isinstance(hit, bool)).all()


def test_the_summary_counts_calls_hits_and_the_other_days_apart():
    summary = summarise(score_forecasts(example_log(), DATES, CLOSE), block=2, n_boot=500,
                        recent=3)
    assert {k: summary[k] for k in ("calls", "hits", "up_calls", "down_calls", "no_calls",
                                    "pending", "unknown_days", "since", "last")} == {
        "calls": 5, "hits": 3, "up_calls": 1, "down_calls": 4, "no_calls": 1, "pending": 1,
        "unknown_days": 1, "since": "2024-01-06", "last": "2024-01-15"}
    assert summary["hit_rate"] == pytest.approx(3 / 5)
    pred, true = [1, 0, 0, 0, 0], [1, 0, 1, 1, 0]
    assert summary["mcc"] == pytest.approx(matthews_corrcoef(true, pred))
    assert summary["mcc"] == pytest.approx(HAND_MCC)
    low, high = summary["mcc_interval"]
    assert low <= summary["mcc"] <= high
    assert [row["as_of"] for row in summary["recent"]] == ["2024-01-11", "2024-01-13",
                                                           "2024-01-15"]
    json.dumps(summary, allow_nan=False)  # plain JSON values throughout


def test_recent_is_json_safe_and_holds_at_most_recent_rows():
    log = example_log()
    log.loc[0, "probability_up"] = np.nan  # a row without a probability
    scored = score_forecasts(log, DATES, CLOSE)
    for recent, expected in ((0, 0), (5, 5), (50, 8)):
        rows = summarise(scored, block=2, n_boot=50, recent=recent)["recent"]
        assert len(rows) == expected
        text = json.dumps(rows, allow_nan=False)
        assert json.loads(text) == rows
    first = summarise(scored, block=2, n_boot=50, recent=8)["recent"][0]
    assert first["probability_up"] is None and set(first) == set(COLUMNS)
    assert all(type(v) in (str, float, bool, type(None)) for row in rows for v in row.values())


def test_fewer_than_two_calls_give_no_mcc():
    one = pd.DataFrame([publication("2024-01-06", "up", 0.6, "2024-01-06"),
                        publication("2024-01-07", "no call", 0.5, "2024-01-07")])
    summary = summarise(score_forecasts(one, DATES, CLOSE), block=2, n_boot=50, recent=5)
    assert (summary["calls"], summary["hits"], summary["hit_rate"]) == (1, 1, 1.0)
    assert summary["mcc"] is None and summary["mcc_interval"] is None
    empty = summarise(score_forecasts(pd.DataFrame(), DATES, CLOSE), block=2, n_boot=50,
                      recent=5)
    assert (empty["calls"], empty["hit_rate"], empty["since"], empty["last"],
            empty["recent"], empty["mcc"]) == (0, None, None, None, [], None)


def test_calls_of_one_class_give_an_mcc_of_zero():
    # up calls on 01-06 (outcome up) and 01-08 (down): the calls are one class
    log = pd.DataFrame([publication("2024-01-06", "up", 0.6, "2024-01-06"),
                        publication("2024-01-08", "up", 0.6, "2024-01-08")])
    summary = summarise(score_forecasts(log, DATES, CLOSE), block=2, n_boot=50, recent=5)
    assert summary["calls"] == 2 and summary["mcc"] == 0.0
    assert summary["mcc_interval"] == [0.0, 0.0]


def test_the_next_close_turns_the_pending_forecast_into_a_scored_one():
    before = score_forecasts(example_log(), DATES, CLOSE)
    dates = DATES.append(pd.DatetimeIndex(["2024-01-16"]))
    after = score_forecasts(example_log(), dates, np.append(CLOSE, 98.0))  # 99 -> 98: down
    last = after.iloc[-1]
    assert before.iloc[-1]["status"] == "pending"
    assert (last["as_of"], last["outcome_day"], last["outcome"], last["hit"],
            last["status"]) == ("2024-01-15", "2024-01-16", "down", False, "scored")
    summary = summarise(after, block=2, n_boot=50, recent=5)
    assert (summary["calls"], summary["hits"], summary["pending"]) == (6, 3, 0)


def test_without_created_or_call_the_row_order_and_direction_count():
    log = example_log().drop(columns=["created", "call", "reasons"])
    scored = score_forecasts(log, DATES, CLOSE)
    day = scored.set_index("as_of")
    # the 2024-01-10 "up" row comes later in the file: it wins without timestamps
    assert day.loc["2024-01-10", "call"] == "up" and day.loc["2024-01-10", "hit"] is True
    assert day.loc["2024-01-07", "call"] == "up"  # its direction (P 0.52)
    assert day.loc["2024-01-07", "status"] == "scored"


def test_an_unreadable_call_or_mismatched_data_is_refused():
    log = pd.DataFrame([publication("2024-01-06", "sideways", 0.6, "2024-01-06")])
    with pytest.raises(ValueError, match="sideways"):
        score_forecasts(log, DATES, CLOSE)
    with pytest.raises(ValueError, match="closes"):
        score_forecasts(example_log(), DATES, CLOSE[:-1])


def test_the_calls_chart_draws_one_mark_per_day_and_escapes_names():
    log = example_log()
    log["champion"] = HOSTILE
    rows = summarise(score_forecasts(log, DATES, CLOSE), block=2, n_boot=50, recent=8)["recent"]
    svg = str(calls_chart(rows))
    root = ET.fromstring(svg)  # well-formed XML
    assert root.tag == f"{SVG}svg" and root.get("class") == "chart" and root.get("viewBox")
    marks = [e for e in root.iter() if e.get("class") == "call"]
    assert len(marks) == len(rows) == 8
    assert len([e for e in root.iter() if e.get("class") == "outcome"]) == 6  # 2 not known
    assert "<script" not in svg and not any(e.tag.endswith("script") for e in root.iter())
    titles = [e.find(f"{SVG}title").text for e in marks]
    assert titles[0] == ("2024-01-06: call up, P(up) 0.62, outcome up, hit, champion "
                         + HOSTILE)
    assert "outcome pending" in titles[-1]
    texts = [e.text for e in root.iter(f"{SVG}text")]
    assert "2024-01-06" in texts and "2024-01-15" in texts
    # shuffled rows are drawn in as_of order all the same
    assert str(calls_chart(list(reversed(rows)))) == svg


def test_the_calls_chart_without_rows_says_so():
    assert str(calls_chart([])) == "<p class='muted'>no data to plot</p>"
