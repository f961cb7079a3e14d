"""The champion rule, and the champion the daily stages load from the models folder: what
stands in when its files are damaged or cannot read today's data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.errors import DataError
from pipelines.modelling.baselines import fit_baseline, run_baseline
from pipelines.modelling.features import FeatureTable
from pipelines.modelling.forecaster import load_forecaster
from tests.modelling.test_evaluate import labelled, synthetic_table

WINDOW = 10


def models_folder(root: Path, table: FeatureTable, champion: str = "lstm",
                  kind: str = "network", members: tuple[str, ...] = (),
                  stand_ins: tuple[str, ...] = ("logistic_window", "persistence")) -> Path:
    """A models folder as tsepipe train writes it, without networks: the champion record and
    the baselines fitted on every labelled day of ``table``."""
    folder = root / "models"
    days = labelled(table, WINDOW)
    for name in ("persistence", "logistic", "logistic_window"):
        (folder / name).mkdir(parents=True)
        (folder / name / "baseline.json").write_text(
            json.dumps(fit_baseline(name, table, WINDOW, days)))
    kinds = {"lstm": "network", "persistence": "baseline", "logistic": "baseline",
             "logistic_window": "baseline"}
    (folder / "champion.json").write_text(json.dumps({
        "champion": champion, "kind": kind, "members": list(members),
        "member_kinds": {m: kinds[m] for m in members}, "stand_ins": list(stand_ins),
        "trained_on": {"days": len(days), "first": "x", "last": "y", "share_up": 0.5}}))
    return folder


def network_card(folder: Path, scaler: str | None) -> Path:
    own = folder / "lstm"
    own.mkdir(parents=True)
    (own / "card.json").write_text(json.dumps({"feature_set": None, "seeds": [{"seed": 1}],
                                               "model_md5": "0" * 32}))
    if scaler is not None:
        (own / "scaler.json").write_text(scaler)
    return own


@pytest.mark.parametrize("scaler", [None, "{not json", '{"mean": [0.0]}'])
def test_a_missing_or_damaged_scaler_hands_the_forecast_to_the_best_baseline(tmp_path,
                                                                             scaler):
    table = synthetic_table()
    folder = models_folder(tmp_path, table)
    own = network_card(folder, scaler)
    champion, record = load_forecaster(folder, table)
    assert (champion.name, champion.kind) == ("logistic_window", "baseline")
    what = "missing" if scaler is None else "damaged ("
    assert champion.note.startswith(f"{own / 'scaler.json'} is {what}")
    assert ("the best baseline that can, logistic_window, forecasts until tsepipe train"
            in champion.note)
    assert record["champion"] == "lstm"


def test_a_stand_in_that_cannot_read_today_gives_way_to_the_next(tmp_path):
    table = synthetic_table()
    folder = models_folder(tmp_path, table)
    network_card(folder, None)
    fewer = FeatureTable(table.dates, table.features[:, :3], table.labels, table.close,
                         table.names[:3])  # an index left out: logistic_window cannot read it
    champion, _ = load_forecaster(folder, fewer)
    assert champion.name == "persistence"
    assert "the best baseline that can, persistence, forecasts" in champion.note


def test_a_damaged_model_card_or_record_is_one_line_with_the_way_out(tmp_path):
    table = synthetic_table()
    folder = models_folder(tmp_path, table)
    own = folder / "lstm"
    own.mkdir()
    (own / "card.json").write_text('{"feature_set": ')
    with pytest.raises(DataError) as caught:
        load_forecaster(folder, table)
    assert caught.value.lines == [
        f"{own / 'card.json'}: the champion lstm's model card is damaged "
        f"(JSONDecodeError); run tsepipe train, or dvc checkout {own}"]
    (folder / "champion.json").write_text("{}")
    with pytest.raises(DataError, match=r"champion\.json: the champion record is damaged "
                                        r"\(KeyError\); run tsepipe train"):
        load_forecaster(folder, table)
    (folder / "champion.json").unlink()
    with pytest.raises(DataError, match=r"no champion record; run tsepipe train first \(or dvc "
                                        r"artifacts get \. tedpix-models\)"):
        load_forecaster(folder, table)


def test_a_saved_baseline_forecasts_as_the_walk_forward_fitted_it(tmp_path):
    """fit_baseline's state, read back from its file, gives run_baseline's numbers."""
    table = synthetic_table()
    days = labelled(table, WINDOW)
    for name in ("persistence", "logistic", "logistic_window", "majority", "always_up"):
        folder = models_folder(tmp_path / name, table, champion=name, kind="baseline")
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "baseline.json").write_text(
            json.dumps(fit_baseline(name, table, WINDOW, days[:-30])))
        champion, _ = load_forecaster(folder, table)
        proba, classes = champion.probability_up(WINDOW, days[-30:])
        expected = run_baseline(name, table, WINDOW, days[:-30], days[-30:])
        np.testing.assert_array_equal(proba, expected[0])
        np.testing.assert_array_equal(classes, expected[1])


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
    table = synthetic_table()
    folder = models_folder(tmp_path, table, champion="mean_forecast", kind="combination",
                           members=("lstm", "persistence", "logistic"))
    network_card(folder, None)  # lstm: no scaler
    champion, _ = load_forecaster(folder, table)
    assert (champion.name, champion.kind) == ("mean_forecast", "combination")
    assert [m.name for m in champion.members] == ["persistence", "logistic"]
    assert champion.note.endswith("mean_forecast averages the other members until tsepipe "
                                  f"train (or dvc checkout {folder / 'lstm'}) brings it back")
    day = np.array([len(table.labels) - 1])
    members = [member.probability_up(WINDOW, day)[0][0] for member in champion.members]
    proba, up = champion.probability_up(WINDOW, day)
    assert proba[0] == pytest.approx(sum(members) / 2) and up[0] == (proba[0] >= 0.5)
