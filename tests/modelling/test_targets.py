"""Which indices a project forecasts: data.targets, the walk-forward's list, stale folders."""

from __future__ import annotations

import json

import pytest

from pipelines.core.errors import DataError
from pipelines.core.params.data import DataSection
from pipelines.core.params.load import load_params
from pipelines.core.params.train import TrainSection
from pipelines.modelling.targets import drop_others, forecast_targets

HEADLINE = "IRX6XTPI0009"
DATASET = ["IRX6X27T0007", HEADLINE, "IRX6XSNT0009", "IRXZXOCI0008"]


def test_the_headline_comes_first_then_the_dataset_s_order_and_missing_ones_are_named():
    assert DataSection().resolve(DATASET) == ([HEADLINE], [])  # the default: TEDPIX alone
    every = DataSection(targets="all").resolve(DATASET)
    assert every == ([HEADLINE, "IRX6X27T0007", "IRX6XSNT0009", "IRXZXOCI0008"], [])
    listed = DataSection(targets=["IRXZXOCI0008", HEADLINE, "IRX6XALS0002", "IRX6X27T0007"])
    assert listed.resolve(DATASET) == ([HEADLINE, "IRX6X27T0007", "IRXZXOCI0008"],
                                       ["IRX6XALS0002"])
    assert listed.of("IRX6X27T0007").target_index == "IRX6X27T0007"


@pytest.mark.parametrize("bad", [["IRX6X27T0007", "a name with spaces"], "some", 5])
def test_targets_are_index_ids_or_all(bad):
    with pytest.raises(ValueError):
        DataSection(targets=bad)


def test_a_global_network_must_be_a_network_of_train_models():
    with pytest.raises(ValueError, match="global_networks: cnn is not a network"):
        TrainSection(global_networks=["cnn"])
    assert TrainSection(global_networks=[]).global_networks == []


def test_later_stages_read_the_walk_forward_s_list_and_refuse_a_damaged_one(tmp_path):
    paths = load_params().paths.model_copy(update={
        "walk_forward_dir": tmp_path / "walk_forward", "forecasts_dir": tmp_path / "forecasts"})
    assert forecast_targets(paths, HEADLINE) == ([HEADLINE], [])  # none written yet
    paths.walk_forward_dir.mkdir()
    listed = paths.walk_forward_dir / "targets.json"
    listed.write_text(json.dumps({"headline": HEADLINE, "targets": [HEADLINE, "IRX6X27T0007"],
                                  "not_forecast": [{"target": "X1", "reason": "r"}]}))
    assert forecast_targets(paths, HEADLINE) == ([HEADLINE, "IRX6X27T0007"],
                                                 [{"target": "X1", "reason": "r"}])
    listed.write_text('{"targets": ["IRX6X27T0007"]}')  # not this headline's
    with pytest.raises(DataError, match="do not start with data.target_index"):
        forecast_targets(paths, HEADLINE)
    listed.write_text("{cut")
    with pytest.raises(DataError, match="damaged"):
        forecast_targets(paths, HEADLINE)

    # a target no longer forecast leaves nothing of it behind
    for target in ("IRX6X27T0007", "IRX6XSNT0009"):
        (paths.forecasts_dir / "per_target" / target).mkdir(parents=True)
    drop_others(paths, "forecasts_dir", [HEADLINE, "IRX6X27T0007"])
    assert [p.name for p in (paths.forecasts_dir / "per_target").iterdir()] == ["IRX6X27T0007"]
