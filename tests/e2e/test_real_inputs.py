"""Real data as it comes: spreadsheet saves, a stale export, a gappy one, TSETMC's own history.

The 16 real 1397-1398 files and TEDPIX's real 2008-2019 history, through the stages and the
whole pipeline, with the breakage a user meets: a file re-saved by a spreadsheet, one not
refreshed for 117 days, one with a 282-day hole, and the history fetched from a TSETMC
look-alike on loopback (three real dirty rows in it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.core.fileio import file_md5
from tests.conftest import TARGET, copy_exports, run
from tests.support.tsetmc_server import TEDPIX_CODE, TsetmcServer
from tsepipe.cli import app

runner = CliRunner()
STAGES = ("ingest", "validate", "merge")
# TEDPIX 2008-2019: the three closes outside [low, high] by more than 5e-4 (shared README)
DIRTY_DAYS = ("2013-12-09", "2014-01-01", "2014-01-14")


def stage_params(root: Path, **changes: dict) -> Path:
    """params.yaml with every path under ``root`` (raw files in ``root/raw``)."""
    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["paths"] = {name: str(root / ("raw" if name == "raw_dir" else value))
                       for name, value in params["paths"].items()}
    for section, values in changes.items():
        params[section] |= values
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    return path


def run_stages(params: Path) -> dict[str, object]:
    results = {}
    for stage in STAGES:
        results[stage] = runner.invoke(app, [stage, "--params", str(params)])
        assert "Traceback" not in results[stage].output
        if results[stage].exit_code:
            break
    return results


def utf16_tab(path: Path, target: Path) -> None:
    """A real export re-saved as a spreadsheet's "Unicode text": UTF-16 LE, TAB, CRLF."""
    text = path.read_bytes()[2:].decode("utf-16-le")
    lines = [line.replace(",", "\t") for line in text.splitlines()]
    target.write_bytes(b"\xff\xfe" + ("\r\n".join(lines) + "\r\n").encode("utf-16-le"))


def test_spreadsheet_saves_give_a_byte_identical_dataset(real_dir, tmp_path):
    comma = tmp_path / "comma"
    copy_exports(real_dir, comma / "raw")
    tab = tmp_path / "tab"
    (tab / "raw").mkdir(parents=True)
    for path in sorted(real_dir.glob("*.csv")):
        utf16_tab(path, tab / "raw" / path.name)
    assert (tab / "raw" / f"{TARGET}.csv").read_bytes() != (comma / "raw" / f"{TARGET}.csv"
                                                            ).read_bytes()
    datasets = []
    for root in (comma, tab):
        results = run_stages(stage_params(root))
        assert [r.exit_code for r in results.values()] == [0, 0, 0], {
            s: r.output for s, r in results.items()}
        datasets.append(root / "data/processed/merged.parquet")
    assert file_md5(datasets[0]) == file_md5(datasets[1])
    assert len(pd.read_parquet(datasets[1])) == 417
    report = json.loads((tab / "data/interim/ingest.json").read_text())
    assert {f["delimiter"] for f in report["files"]} == {"tab"}


def test_an_export_not_refreshed_is_named_and_the_dataset_still_ends_on_time(real_dir,
                                                                              tmp_path):
    raw = copy_exports(real_dir, tmp_path / "raw")
    stale = raw / "IRX6XAFF0005.csv"
    lines = stale.read_bytes()[2:].decode("utf-16-le").split("\n")
    stale.write_bytes(b"\xff\xfe" + "\n".join(lines[: 1 + 417 - 117]).encode("utf-16-le"))

    results = run_stages(stage_params(tmp_path))

    assert [r.exit_code for r in results.values()] == [0, 0, 0]
    warnings = [line for line in results["merge"].stderr.splitlines()
                if line.startswith("warning: ")]
    assert warnings == ["warning: IRX6XAFF0005 (Free Float Index): left out of the merge: "
                        "stale: its last day 2019-06-24 is 117 trading days before the "
                        "target's last day 2019-12-18 (merge.max_fill_days 5)"]
    assert "merged 15 indices into 417 trading days" in results["merge"].stdout
    summary = json.loads((tmp_path / "data/processed/merge_summary.json").read_text())
    assert summary["last_date"] == "2019-12-18" and summary["rows"] == 417
    entry = next(i for i in summary["indices"] if i["index_id"] == "IRX6XAFF0005")
    assert entry["included"] is False and entry["rows_in"] == 300


def test_a_282_day_hole_costs_at_most_one_percent(real_dir, tmp_path):
    raw = copy_exports(real_dir, tmp_path / "raw")
    holed = raw / "IRX6X27T0007.csv"
    lines = holed.read_bytes()[2:].decode("utf-16-le").split("\n")
    holed.write_bytes(b"\xff\xfe" + "\n".join(lines[:61] + lines[61 + 282:]).encode("utf-16-le"))

    results = run_stages(stage_params(tmp_path))

    assert [r.exit_code for r in results.values()] == [0, 0, 0]
    summary = json.loads((tmp_path / "data/processed/merge_summary.json").read_text())
    assert summary["rows"] >= 417 * 0.99 and summary["last_date"] == "2019-12-18"
    entry = next(i for i in summary["indices"] if i["index_id"] == "IRX6X27T0007")
    assert not entry["included"] and entry["days_lost"] == 282 - 5
    assert "IRX6X27T0007 (Index Group 27): left out of the merge: gaps longer than" in (
        results["merge"].stderr)


@pytest.mark.slow
def test_tedpix_history_fetched_from_tsetmc_runs_end_to_end(project, tmp_path, monkeypatch):
    """The shared TEDPIX JSON, served on loopback: tsepipe fetch, then tsepipe run."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with TsetmcServer() as server:
        params_file = project / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        params["validate"]["min_usable_files"] = 1
        params["evaluate"]["refit_every"] = 60  # the default (conftest's fast_training: 100)
        params["fetch"] |= {"base_url": server.base_url, "pace_seconds": 0.0,
                            "indices": {TARGET: TEDPIX_CODE}}
        params_file.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))

        fetched = run(["tsepipe", "fetch"], project)
        assert "fetched 1 index into data/raw: 2679 new days" in fetched.stdout
        assert [p.name for p in (project / "data/raw").iterdir()] == [f"{TARGET}.json"]
        done = run(["tsepipe", "run"], project)
    frame = pd.read_parquet(project / "data/processed/merged.parquet")
    assert len(frame) == 2676  # 2,679 days less the 3 dirty ones
    assert frame["date"].iloc[-1] == pd.Timestamp("2019-12-31")
    assert not set(DIRTY_DAYS) & set(frame["date"].dt.strftime("%Y-%m-%d"))
    assert list(frame.columns) == ["date", f"{TARGET}__high", f"{TARGET}__low",
                                   f"{TARGET}__close"]
    assert "2676 trading days" in done.stdout
    assert "warning: 3 bad row(s) dropped by validation" in done.stderr
    validation = (project / "reports/validation/index.html").read_text(encoding="utf-8")
    front = (project / "reports/index.html").read_text(encoding="utf-8")
    for page in (validation, front):
        assert 'id="rows-dropped"' in page
        for day in DIRTY_DAYS:
            assert f"<td class=\"date\">{day}</td><td>close</td>" in page, day
    assert "3 bad row(s) dropped" in front  # the attention badge
    card = json.loads((project / "models/lstm/card.json").read_text())
    # no open, no volume: the features its fields allow
    assert card["features"] == [f"{TARGET}__logret", f"{TARGET}__range",
                                f"{TARGET}__close_place"]
    board = json.loads((project / "reports/evaluation/leaderboard.json").read_text())
    assert board["days"]["test_first"][:7] == "2016-09" and board["days"]["test_last"][:7] == (
        "2019-12")
    models = board["models"]
    # the strong baseline reproduces the shared README's figure for its feature set
    assert abs(models["logistic_window"]["test"]["mcc"] - 0.272) <= 0.02
    best = board["best_baseline_on_test"]
    # the champion rule, whatever the scores: within the margin of the best on validation
    picked_on = {name: row["validation"]["mcc"] for name, row in models.items()}
    assert picked_on[board["champion"]] >= max(picked_on.values()) - board["promotion_margin"]
    assert all(len(row["validation"]["mcc_ci"]) == 2 for row in models.values())
    network_beat = any(row["test"]["mcc"] > models[best]["test"]["mcc"]
                       for row in models.values() if row["kind"] == "network")
    accuracy = (project / "reports/accuracy/index.html").read_text(encoding="utf-8")
    said = ("A network beat the best baseline on the test days." if network_beat
            else "No network beat the best baseline on the test days.")
    assert " ".join(said.split()) in " ".join(accuracy.split())
    assert "an index that cannot itself be bought" in " ".join(accuracy.split())
    assert (project / "data/quarantine" / f"{TARGET}.json.json").exists()
    forecast = json.loads((project / "forecasts/latest.json").read_text())
    assert forecast["as_of"] == "2019-12-31"
    # the front page sets every network and baseline side by side, each with its interval
    table = front[front.index('id="leaderboard"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr") == len(models) + 1
    for name, row in models.items():
        low, high = row["test"]["mcc_ci"]
        assert f"<td>{name}" in table and f"[{low:.3f}, {high:.3f}]" in table, name
    shutil.rmtree(tmp_path / "prefect-home", ignore_errors=True)
