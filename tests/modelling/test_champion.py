"""The champion the daily stages load: what stands in when its files are damaged."""

from __future__ import annotations

import json

import pytest

from pipelines.core.errors import DataError
from pipelines.modelling.champion import load_champion
from pipelines.modelling.leaderboard import Days, Leaderboard, ModelRow
from tests.modelling.test_evaluate import synthetic_table


def board() -> Leaderboard:
    rows = {name: ModelRow(model=name, kind=kind, validation={}, test={})
            for name, kind in (("lstm", "network"), ("persistence", "baseline"))}
    return Leaderboard(champion="lstm", champion_reason="it won", champion_metric="mcc",
                       promotion_margin=0.02, best_baseline_on_validation="persistence",
                       best_baseline_on_test="persistence", days=Days(validation=0, test=0),
                       models=rows)


@pytest.mark.parametrize("scaler", [None, "{not json", '{"mean": [0.0]}'])
def test_a_missing_or_damaged_scaler_hands_the_forecast_to_the_best_baseline(tmp_path,
                                                                             scaler):
    folder = tmp_path / "models" / "lstm"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({"feature_set": None}))
    if scaler is not None:
        (folder / "scaler.json").write_text(scaler)
    champion = load_champion(board(), tmp_path / "models", synthetic_table())
    assert (champion.name, champion.kind) == ("persistence", "baseline")
    what = "missing" if scaler is None else "damaged ("
    assert champion.note.startswith(f"{folder / 'scaler.json'} is {what}")
    assert "the best baseline persistence forecasts until tsepipe train" in champion.note


def test_a_damaged_model_card_is_one_line_with_the_way_out(tmp_path):
    folder = tmp_path / "models" / "lstm"
    folder.mkdir(parents=True)
    (folder / "card.json").write_text('{"feature_set": ')
    with pytest.raises(DataError) as caught:
        load_champion(board(), tmp_path / "models", synthetic_table())
    assert caught.value.lines == [
        f"{folder / 'card.json'}: the champion lstm's model card is damaged "
        f"(JSONDecodeError); run tsepipe train, or dvc checkout {folder}"]


def rows_of(**validation: tuple[str, float]) -> dict[str, dict]:
    """name=(kind, validation MCC) -> the rows choose_champion reads."""
    rows = {name: {"kind": kind, "validation": {"mcc": mcc}}
            for name, (kind, mcc) in validation.items()}
    for row in rows.values():
        if row["kind"] == "combination":
            row["members"] = ["lstm", "gru", "logistic_window"]
    return rows


def test_within_the_noise_the_combination_wins_and_a_clear_leader_wins_alone():
    from pipelines.modelling.champion import choose_champion

    baselines = ["persistence", "logistic_window"]
    # the later TEDPIX span of the issue: the combination level with the best baseline
    level = rows_of(persistence=("baseline", 0.239), logistic_window=("baseline", 0.292),
                    lstm=("network", 0.259), gru=("network", 0.262),
                    mean_forecast=("combination", 0.290))
    champion, reason, _ = choose_champion(level, baselines, "mcc", 0.02)
    assert champion == "mean_forecast"
    assert reason == ("mean_forecast (the mean of lstm, gru, logistic_window): validation mcc "
                      "0.290, within the margin 0.02 of the best (logistic_window 0.292); a "
                      "tie goes to the combination")
    # the best itself, with others within its noise (the shared TEDPIX history's case)
    best = level | rows_of(mean_forecast=("combination", 0.300))
    champion, reason, _ = choose_champion(best, baselines, "mcc", 0.02)
    assert (champion, reason) == ("mean_forecast", (
        "mean_forecast (the mean of lstm, gru, logistic_window): the best validation mcc, "
        "0.300; within the margin 0.02 of it: logistic_window 0.292 (a tie goes to the "
        "combination)"))
    # a combination above the rest wins too
    above = level | rows_of(mean_forecast=("combination", 0.330))
    assert choose_champion(above, baselines, "mcc", 0.02)[0] == "mean_forecast"
    # one model clearly leads (by more than the margin): it wins alone
    network = level | rows_of(lstm=("network", 0.340))
    champion, reason, notes = choose_champion(network, baselines, "mcc", 0.02)
    assert champion == "lstm" and reason.startswith("lstm beats the best baseline")
    assert notes == ["gru not promoted: validation mcc 0.262 does not beat the best baseline "
                     "logistic_window (0.292) by the margin 0.02"]
    baseline = level | rows_of(mean_forecast=("combination", 0.250))
    champion, reason, _ = choose_champion(baseline, baselines, "mcc", 0.02)
    assert champion == "logistic_window" and reason.startswith("no network beats")
    # within the noise of a network, with no combination there: the simpler model
    tie = rows_of(logistic_window=("baseline", 0.300), lstm=("network", 0.310))
    assert choose_champion(tie, ["logistic_window"], "mcc", 0.02)[0] == "logistic_window"


def test_a_combination_forecasts_with_its_members_and_leaves_out_one_that_cannot(tmp_path):
    from pipelines.modelling.predict import probability_up

    table = synthetic_table()
    combined = board()
    combined.models["mean_forecast"] = ModelRow(
        model="mean_forecast", kind="combination", validation={}, test={},
        members=["lstm", "persistence", "logistic"])
    combined.models["logistic"] = ModelRow(model="logistic", kind="baseline", validation={},
                                           test={})
    combined.champion = "mean_forecast"
    (tmp_path / "models/lstm").mkdir(parents=True)
    (tmp_path / "models/lstm/card.json").write_text(json.dumps({"feature_set": None}))
    champion = load_champion(combined, tmp_path / "models", table)  # lstm: no scaler
    assert (champion.name, champion.kind) == ("mean_forecast", "combination")
    assert [m.name for m in champion.members] == ["persistence", "logistic"]
    assert champion.note.endswith("mean_forecast averages the other members until tsepipe "
                                  f"train (or dvc checkout {tmp_path / 'models/lstm'}) brings "
                                  "it back")
    day = len(table.labels) - 1
    members = [probability_up(member, table, 10, day)[0] for member in champion.members]
    proba, up = probability_up(champion, table, 10, day)
    assert proba == pytest.approx(sum(members) / 2) and up == (proba >= 0.5)
