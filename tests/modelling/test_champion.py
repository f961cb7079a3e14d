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
