"""Every index a target: several targets through the whole pipeline (real Prefect, DVC,
Keras, Evidently), a global network beside the per-target ones, the record across targets,
and a target added later costing only its own chains and the global network's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pipelines.core.params.load import load_params
from pipelines.modelling.metrics import adjusted_p_values
from tests.conftest import BIN, TARGET, copy_exports, isolated, new_project, run

pytestmark = pytest.mark.slow
FIRST = [TARGET, "IRX6XSNT0009", "IRX6XTAL0001"]  # the headline, industry, the main board
ADDED = "IRX6XAFF0005"  # free float


def set_targets(project: Path, targets: list[str]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["targets"] = targets
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False),
                                         encoding="utf-8")


def tsepipe_run(project: Path, tmp_path: Path) -> str:
    done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                          env=isolated(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout + done.stderr


def test_several_targets_each_get_a_call_and_a_global_network_is_a_candidate(
        small_sample_dir, tmp_path):
    project = new_project(tmp_path / "project")
    copy_exports(small_sample_dir, project / "data/raw")
    set_targets(project, FIRST[1:])
    tsepipe_run(project, tmp_path)
    paths = load_params(project / "params.yaml").paths

    table = json.loads((project / paths.targets_table).read_text(encoding="utf-8"))
    rows = table["targets"]
    assert [row["target"] for row in rows] == FIRST  # the headline first
    assert [row["pt_p_adjusted"] for row in rows] == pytest.approx(
        adjusted_p_values([row["pt_p"] for row in rows], table["adjustment"]))
    assert all(row["pt_p_adjusted"] >= row["pt_p"] for row in rows)
    pooled = table["pooled"]
    assert pooled["targets"] == 3 and set(pooled["per_network"]) == {"lstm", "gru", "global_gru"}
    for figures in [pooled["champions"], *pooled["per_network"].values()]:
        assert figures["mcc_lo"] <= figures["mcc"] <= figures["mcc_hi"]
        assert figures["n"] == pooled["days"]
    compared = pooled["global_against"]["global_gru"]  # paired, over the same days
    assert compared["against"] == "gru" and compared["lo"] <= compared["difference"] <= compared[
        "hi"]
    assert compared["difference"] == pytest.approx(
        pooled["per_network"]["global_gru"]["mcc"] - pooled["per_network"]["gru"]["mcc"])

    for target in FIRST:
        where = paths.for_target(target, TARGET)
        board = json.loads((project / where.leaderboard).read_text(encoding="utf-8"))
        # the global network beside the per-target ones, each with its interval
        assert {"lstm", "gru", "global_gru"} <= set(board["models"])
        assert all(len(board["models"][name]["test"]["mcc_ci"]) == 2
                   for name in ("lstm", "gru", "global_gru"))
        card = json.loads((project / where.models_dir / "global_gru/card.json").read_text(
            encoding="utf-8"))
        assert card["target_code"] == {"targets": FIRST, "target": target}
        forecast = json.loads((project / where.forecast).read_text(encoding="utf-8"))
        assert forecast["call"] in ("up", "down", "no call")
        for page in (where.accuracy_page, where.drift_page):
            assert (project / page).is_file()
    # the further targets' outputs in per_target/, the headline's where they always were
    assert (project / "forecasts/per_target/IRX6XSNT0009/latest.json").is_file()
    assert (project / "models/champion.json").is_file()

    front = (project / paths.front_page).read_text(encoding="utf-8")
    assert "index by index" in front.lower() and "global_gru less gru" in front
    assert "reports/accuracy/per_target/IRX6XTAL0001/index.html".removeprefix("reports/") in front

    # dvc metrics show: the headline alone, one row, not a column per target and model
    shown = run([str(BIN / "dvc"), "metrics", "show"], project).stdout
    assert len([line for line in shown.splitlines() if line.strip()]) == 2
    assert max(len(line) for line in shown.splitlines()) <= 120

    # a target added: only its chains and the global network's run again
    set_targets(project, [*FIRST[1:], ADDED])
    output = tsepipe_run(project, tmp_path)
    assert "6 of 9 chains from the last runs" in output  # 3 targets x 2 networks reused
    rows = json.loads((project / paths.targets_table).read_text(encoding="utf-8"))["targets"]
    assert sorted(row["target"] for row in rows) == sorted([*FIRST, ADDED])
    for folder in ("reports/evaluation", "models", "forecasts", "reports/drift",
                   "reports/accuracy", "reports/walk_forward"):  # (a target taken out: its
        # folders go, tests/modelling/test_targets.py)
        assert sorted(p.name for p in (project / folder / "per_target").iterdir()) == sorted(
            [*FIRST[1:], ADDED])
