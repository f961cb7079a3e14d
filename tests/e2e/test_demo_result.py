"""The demo's recorded result, taken from a real run's outputs (the session's trained
project: read only, nothing is run again).

``tools/demo.py --record`` writes what this reads into ``docs/demo-result.json`` and the
README's first table; here into a copy of both, in a temporary folder.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.code.test_readme import README, demo, first_table, table_differences
from tests.conftest import run

pytestmark = pytest.mark.slow


def test_a_run_is_recorded_and_the_readme_table_shows_it(trained_sample, tmp_path):
    project = trained_sample.project
    champion = json.loads((project / "models/champion.json").read_text(encoding="utf-8"))
    forecast = json.loads((project / "forecasts/latest.json").read_text(encoding="utf-8"))
    readme, result = tmp_path / "README.md", tmp_path / "demo-result.json"
    shutil.copy2(README, readme)
    record = demo.record_result(project, result=result, readme=readme)

    assert json.loads(result.read_text(encoding="utf-8")) == record
    assert record["champion"] == champion["champion"]
    row = next(row for row in record["models"] if row["model"] == champion["champion"])
    assert row["test_mcc"] == round(champion["test"]["mcc"], 3)
    assert row["test_mcc_interval"] == [round(x, 3) for x in champion["test"]["mcc_ci"]]
    assert record["call"]["call"] == forecast["call"]
    assert record["call"]["probability_up"] == round(forecast["probability_up"], 3)
    assert record["code"] == run(["git", "rev-parse", "--short", "HEAD"], project).stdout.strip()
    text = readme.read_text(encoding="utf-8")
    assert table_differences(text, record) == []
    _, rows = first_table(text)
    assert rows[0][0] == f"**{champion['champion']}** (champion" + (
        ", best baseline)" if champion["champion"] == record["best_baseline"] else ")")
    assert demo.figures(record) == demo.figures(json.loads(result.read_text(encoding="utf-8")))
