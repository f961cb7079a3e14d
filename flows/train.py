"""The training flow: walk-forward evaluation, final models and tomorrow's forecast.

Runs ``dvc repro`` for evaluate -> train -> predict (so ``dvc.lock`` stays true), then
publishes the leaderboard (table) and the forecast (markdown) and pushes to the DVC
remote. In ``prefect.yaml`` it is its own deployment on the ``gpu`` work pool; the code
finds a GPU by itself and falls back to the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows.data import push, repro_stage
from pipelines.config import load_params, paths

MODEL_STAGES = ("evaluate", "train", "predict")


@task
def publish_leaderboard(board_path: str) -> str | None:
    board = json.loads(Path(board_path).read_text(encoding="utf-8"))
    rows = []
    for name, row in board["models"].items():
        test = row["test"]
        rows.append({
            "model": name, "kind": row["kind"],
            "validation MCC": round(row["validation"]["mcc"], 3),
            "test balanced accuracy": round(test["balanced_accuracy"], 3),
            "test MCC": round(test["mcc"], 3),
            "MCC 95% CI": "[{:.3f}, {:.3f}]".format(*test["mcc_ci"]),
            "p vs best baseline": round(row["vs_best_baseline"]["p_value_one_sided"], 3),
            "training s": round(row.get("training", {}).get("seconds_total", 0.0), 1),
        })
    create_table_artifact(
        key="leaderboard", table=rows,
        description=f"champion: {board['champion']} (validation {board['champion_metric']}); "
                    + " ".join(board["notes"]))
    return board["champion"]


@task
def publish_forecast(forecast_path: str) -> dict[str, Any]:
    result = json.loads(Path(forecast_path).read_text(encoding="utf-8"))
    create_markdown_artifact(
        key="forecast",
        markdown=(f"# TEDPIX on {result['next_trading_day']}: **{result['direction']}**\n"
                  f"- probability of up: {result['probability_up']:.3f}\n"
                  f"- model: {result['champion']} ({result['champion_kind']}), version "
                  f"`{result['model_version']}`\n"
                  f"- data version `{result['data_version']}` (as of {result['as_of']})\n"))
    return result


@flow(name="tsepipe-train", description="Walk-forward evaluation, final models, forecast.")
def training_flow(project_dir: str = ".", push_remote: bool = True) -> State:
    """Run evaluate -> train -> predict through DVC; publish artifacts; push."""
    project = Path(project_dir).resolve()
    where = paths(load_params(project / "params.yaml"))
    for stage in MODEL_STAGES:
        result = repro_stage(str(project), stage)
        if not result.ok:
            return Failed(message="\n".join(result.error_lines() or [result.output.strip()]))
    publish_leaderboard(str(project / where.evaluation_dir / "leaderboard.json"))
    forecast = publish_forecast(str(project / where.forecasts_dir / "latest.json"))
    if push_remote:
        push(str(project))
    return Completed(message=json.dumps(forecast), data=forecast)
