"""Prefect UI artifacts, shared by every flow: forecast, leaderboard, drift, report link.

Each reads the file a stage wrote (the flows pass paths, never DataFrames).
``publish_all`` publishes whichever of them exists in a project, so every flow run ends
with the same set of artifacts in the UI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from pipelines.core.params.load import load_params
from pipelines.core.provenance import git_commit
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.reporting.call_text import evidence_lines, the_call
from pipelines.reporting.evidently_pages import ranked_drifted


def _read(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def inert_markdown(text: Any) -> str:
    """A value from an input file, made inert in markdown (no HTML, no link syntax)."""
    return "".join(f"&#{ord(c)};" if c in "<>&[]()`*_|\\" else c for c in str(text))


@task(task_run_name="artifact leaderboard")
def publish_leaderboard(board_path: str) -> str | None:
    """Table: every model and baseline on the walk-forward test days."""
    board = Leaderboard.read(board_path)
    rows = []
    for name, row in board.models.items():
        test = row.test
        rows.append({
            "model": name, "kind": row.kind,
            "validation MCC": round(row.validation.get("mcc", float("nan")), 3),
            "test balanced accuracy": round(test["balanced_accuracy"], 3),
            "test MCC": round(test["mcc"], 3),
            "MCC 95% CI": "[{:.3f}, {:.3f}]".format(*test["mcc_ci"]),
            "p vs best baseline": round(row.vs_best_baseline["p_value_one_sided"], 3),
            "training s": round((row.training or {}).get("seconds_total", 0.0), 1),
        })
    description = f"champion {board.champion}: {board.champion_reason}"
    backtest = board.backtest
    if backtest:
        own = backtest["strategies"][backtest["champion"]]["cumulative_return"]
        hold = backtest["strategies"]["buy_and_hold"]["cumulative_return"]
        description += (f". Backtest on the test days ({backtest['mode']}, "
                        f"{backtest['cost_bps']:g} bp a trade): {own:.1%} against buy and "
                        f"hold's {hold:.1%}")
    create_table_artifact(key="leaderboard", table=rows, description=description)
    return board.champion


@task(task_run_name="artifact forecast")
def publish_forecast(forecast_path: str) -> dict[str, Any]:
    """Markdown: tomorrow's call (or no call and why), its probability beside the base rate
    and what its band has meant, the members, stale data, the model and the versions."""
    result = _read(forecast_path)
    lines = [f"# TEDPIX on {result['next_trading_day']}: **{the_call(result)}**"]
    staleness = result.get("staleness") or {}
    if staleness.get("stale"):
        lines.append(f"- **{staleness['message']}**")  # dates and numbers only
    lines.append(f"- probability of up: {result['probability_up']:.4f}")
    lines += [f"- {line}" for line in evidence_lines(result, name=inert_markdown)]
    if result.get("note"):
        lines.append(f"- note: {inert_markdown(result['note'])}")
    lines.append(f"- model: {inert_markdown(result['champion'])} ({result['champion_kind']}), "
                 f"version `{result['model_version']}`")
    lines.append(f"- data version `{result['data_version']}` (as of {result['as_of']})")
    create_markdown_artifact(key="forecast", markdown="\n".join(lines) + "\n")
    return result


@task(task_run_name="artifact drift")
def publish_drift(drift_path: str) -> dict[str, Any]:
    """Markdown: share of drifted features against the threshold, the most drifted ones."""
    drift = _read(drift_path)
    drifted = ranked_drifted(drift["features"])
    verdict = "DRIFT" if drift["dataset_drift"] else "no dataset drift"
    lines = [
        f"# Data drift: {verdict}",
        f"- {drift['n_drifted']} of {drift['n_features']} stationary features drifted "
        f"(share {drift['share_of_drifted_features']:.2f}, threshold {drift['threshold']:.2f})",
        f"- reference {drift['reference']['first_date']} .. {drift['reference']['last_date']}"
        f" ({drift['reference']['rows']} days), current {drift['current']['first_date']} .. "
        f"{drift['current']['last_date']} ({drift['current']['rows']} days)",
    ]
    for role in ("prediction", "target"):
        side = drift.get(f"{role}_drift")
        if side and side["drifted"] is not None:
            lines.append(f"- {role} drift: {'yes' if side['drifted'] else 'no'} "
                         f"(score {side['score']:.3g}, {side['method']})")
    if drifted:
        lines.append("- most drifted: " + ", ".join(
            f"{inert_markdown(f['feature'])} ({f['method']} {f['drift_score']:.2g})"
            for f in drifted[:8]))
    create_markdown_artifact(key="drift", markdown="\n".join(lines) + "\n")
    return drift


REPORTS_URL = "TSEPIPE_REPORTS_URL"  # where the team's reports are served, if anywhere


def dvc_remote_url(project: Path) -> str | None:
    """The URL of the project's default DVC remote (``None`` when there is none).

    Read from DVC's merged configuration in this process (0.2 s) rather than by
    ``dvc remote default`` and ``dvc remote list`` (two processes, 1-1.3 s on 2 cores).
    """
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=str(project / ".dvc"))
    except ConfigError:
        return None
    name = config["core"].get("remote")
    return config["remote"].get(name, {}).get("url") if name else None


@task(task_run_name="artifact report")
def publish_report_link(front_page: str) -> str:
    """Where a reviewer opens the reports, which is never a path on the worker.

    ``TSEPIPE_REPORTS_URL`` set (a web server or bucket serving the project's
    ``reports/``): a link to the front page there. Otherwise, with a DVC remote that is
    not a local folder (S3, ...): how to fetch this version's reports from it. Only on
    one machine (a local DVC remote) the link is the front page's file URL.
    """
    page = Path(front_page).resolve()
    project = next((p for p in page.parents if (p / "dvc.yaml").is_file()), page.parent)
    relative = page.relative_to(project).as_posix()
    served = os.environ.get(REPORTS_URL, "").strip()
    if served:
        link = f"{served.rstrip('/')}/{relative.removeprefix('reports/')}"
        create_link_artifact(key="report", link=link, link_text="tsepipe reports (index.html)",
                             description="Front page: forecast, data health, drift, models")
        return link
    remote = dvc_remote_url(project)
    if remote and "://" in remote and not remote.startswith("file://"):
        commit = (git_commit(project) or "HEAD")[:8]
        create_markdown_artifact(key="report", markdown=(
            f"# tsepipe reports\n\nPublished to the DVC remote `{inert_markdown(remote)}` "
            f"with the version committed as `{commit}`. To open them:\n\n"
            f"```\ngit fetch && git checkout {commit} -- dvc.lock\n"
            f"dvc pull\n```\n\nthen `{relative}` (set {REPORTS_URL} to link to "
            "a server that serves them).\n"),
            description="Front page: forecast, data health, drift, models")
        return remote
    link = page.as_uri()
    create_link_artifact(key="report", link=link, link_text="tsepipe reports (index.html)",
                         description="Front page: forecast, data health, drift, models "
                         "(on this machine)")
    return link


def publish_all(project: str) -> list[str]:
    """Publish every artifact whose file exists in ``project``; return their keys."""
    root = Path(project)
    where = load_params(root / "params.yaml").paths
    published = []
    for key, publish, path in (
        ("forecast", publish_forecast, where.forecast),
        ("leaderboard", publish_leaderboard, where.leaderboard),
        ("drift", publish_drift, where.drift_summary),
        ("report", publish_report_link, where.front_page),
    ):
        if (root / path).exists():
            publish(str(root / path))
            published.append(key)
    return published
