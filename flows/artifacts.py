"""What the Prefect UI shows of every flow: the artifacts (forecast, leaderboard, drift,
report) and the flow runs' names.

Each artifact reads the file a stage wrote (the flows pass paths, never DataFrames).
``publish_all`` publishes whichever of them exists in a project, so every flow run ends
with the same set of artifacts in the UI. A value from an input file is written with
``inert_markdown``: as it reads, never as markup.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.core.calendar import TEHRAN
from pipelines.core.params.load import load_params
from pipelines.core.params.paths import Paths
from pipelines.core.provenance import git_commit
from pipelines.modelling.leaderboard import Leaderboard
from pipelines.reporting import targets_table
from pipelines.reporting.call_text import evidence_lines, the_call
from pipelines.reporting.evidently_pages import ranked_drifted


def run_name() -> str:
    """A flow run's name: what runs and the day it is for, as ``data 2026-12-07``
    (``@flow(flow_run_name=run_name)``).

    What: the deployment's name, or ``local`` and the flow's (``local data``) for a run
    of ``tsepipe run`` and its subflows. The day: the Tehran date of the run's scheduled
    start, the trading day a 13:30 data run fetches; known when the run starts, before
    any data is read (the dataset's last day is not, for a data run).
    """
    from prefect.runtime import deployment, flow_run

    start = flow_run.scheduled_start_time or dt.datetime.now(dt.UTC)
    what = deployment.name or f"local {(flow_run.flow_name or '').removeprefix('tsepipe-')}"
    return f"{what.strip()} {start.astimezone(ZoneInfo(TEHRAN)):%Y-%m-%d}"


def _read(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# escaped anywhere: emphasis, code, links, raw HTML, entities, table cells, strikethrough
_INLINE_SPECIALS = re.compile(r"([\\`*_\[\]<&|~])")
# escaped at the start: a heading, a quote, a list item, a heading's underline
_BLOCK_START = re.compile(r"^([#>+=-])")


def inert_markdown(text: Any) -> str:
    """A value from an input file (a file, index or model name, a message), written in
    markdown so that it shows as written and is never markup: one line, each markdown
    special escaped with a backslash (CommonMark), so ``IRX6XTPI0009__logret`` shows as
    is and ``<script>`` is text, not HTML. The Prefect UI renders the escapes as the
    characters themselves (HTML entities it would show raw)."""
    one_line = " ".join(str(text).splitlines())
    return _BLOCK_START.sub(r"\\\1", _INLINE_SPECIALS.sub(r"\\\1", one_line))


def code_span(text: Any) -> str:
    """``text`` as an inline code span (shown verbatim, never markup): a path, a URL, a
    version. Not for a table cell (a ``|`` there still ends the cell)."""
    one_line = " ".join(str(text).splitlines())
    fence = "`" * (max(map(len, re.findall("`+", one_line)), default=0) + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def leaderboard_rows(board: Leaderboard) -> list[dict[str, Any]]:
    """Every model and baseline on the walk-forward test days, a row each (the UI renders
    a table's text cells as markdown: the model's name is escaped)."""
    rows = []
    for name, row in board.models.items():
        test = row.test
        rows.append({
            "model": inert_markdown(name), "kind": row.kind,
            "validation MCC": round(row.validation.get("mcc", float("nan")), 3),
            "test balanced accuracy": round(test["balanced_accuracy"], 3),
            "test MCC": round(test["mcc"], 3),
            "MCC 95% CI": "[{:.3f}, {:.3f}]".format(*test["mcc_ci"]),
            "p vs best baseline": round(row.vs_best_baseline["p_value_one_sided"], 3),
            "training s": round((row.training or {}).get("seconds_total", 0.0), 1),
        })
    return rows


@task(task_run_name="artifact leaderboard")
def publish_leaderboard(board_path: str) -> str | None:
    """Table: every model and baseline on the walk-forward test days."""
    board = Leaderboard.read(board_path)
    rows = leaderboard_rows(board)
    description = f"champion {board.champion}: {board.champion_reason}"
    backtest = board.backtest
    if backtest:
        own = backtest["strategies"][backtest["champion"]]["cumulative_return"]
        hold = backtest["strategies"]["buy_and_hold"]["cumulative_return"]
        description += (f". Backtest on the test days ({backtest['mode']}, "
                        f"{backtest['cost_bps']:g} bp a trade): {own:.1%} against buy and "
                        f"hold's {hold:.1%}")
    create_table_artifact(key="leaderboard", table=rows, description=inert_markdown(description))
    return board.champion


def index_table_rows(found: targets_table.Tomorrow) -> list[dict[str, str]]:
    """Tomorrow, index by index, a row each, as the front page's table shows it (the
    UI renders a table's text cells as markdown: the index and model names are escaped)."""
    return targets_table.plain_rows(found.rows, name=inert_markdown)


def index_table(found: targets_table.Tomorrow) -> list[str]:
    """The same table in markdown (lines), the adjustment and the pooled figures below."""
    rows = index_table_rows(found)
    columns = list(rows[0])
    day = found.next_trading_day or "no forecast"
    lines = [f"## Tomorrow, index by index ({day})", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    lines += ["", "Test MCC with its 95 % interval (moving-block bootstrap) on each index's "
                  "walk-forward test days; one-sided Pesaran-Timmermann "
                  f"{inert_markdown(targets_table.adjustment_text(found))}, the raw p beside it."]
    pooled = targets_table.pooled_lines(found, name=inert_markdown)
    if pooled:
        lines.append(f"- {targets_table.pooled_over(found)}, test MCC with its 95 % interval: "
                     + "; ".join(pooled))
    lines += [f"- not forecast: {inert_markdown(item['label'])}: "
              f"{inert_markdown(item['reason'])}" for item in found.not_forecast]
    return lines


def _in_project(paths: Paths, project: Path) -> Paths:
    """``paths`` (relative to the project root) as paths inside ``project``."""
    return Paths.model_validate({name: str(project / value)
                                 for name, value in paths.model_dump().items()})


@task(task_run_name="artifact forecast")
def publish_forecast(forecast_path: str, project: str | None = None) -> dict[str, Any]:
    """Markdown: tomorrow's call (or no call and why), its probability beside the base rate
    and what its band has meant, the members, stale data, the model and the versions. With
    several targets (``project``'s targets table), the same table as the front page's
    "Tomorrow, index by index" below it, and as a table artifact of its own
    (``forecast-indices``)."""
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
                 f"version {code_span(result['model_version'])}")
    lines.append(f"- data version {code_span(result['data_version'])} (as of {result['as_of']})")
    found = None
    if project is not None:
        root = Path(project)
        paths = _in_project(load_params(root / "params.yaml").paths, root)
        found = targets_table.read_tomorrow(paths)
    if found is not None:
        lines += ["", *index_table(found)]
        adjusted = targets_table.adjustment_text(found)
        create_table_artifact(key="forecast-indices", table=index_table_rows(found),
                              description=f"Tomorrow, index by index: {adjusted}")
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


def forecast_lines(forecast: dict[str, Any]) -> list[str]:
    """The forecast in brief, markdown list items: the call and P(up) (with its base rate
    when the forecast has one), the champion, the data day, stale data."""
    call = (f"- call for {forecast['next_trading_day']}: **{the_call(forecast)}**, P(up) "
            f"{forecast['probability_up']:.4f}")
    training = (forecast.get("base_rate") or {}).get("training")
    if training and training.get("share") is not None:
        call += (f" (base rate: {training['share']:.0%} of the {training['days']:,} training "
                 "days went up)")
    kind = forecast.get("champion_kind")
    lines = [call, f"- champion: {inert_markdown(forecast['champion'])}"
                   + (f" ({inert_markdown(kind)})" if kind else ""),
             f"- data day: {forecast['as_of']} (the dataset's last trading day)"]
    staleness = forecast.get("staleness") or {}
    if staleness.get("stale"):
        lines.append(f"- **{inert_markdown(staleness['message'])}**")
    return lines


LEADERBOARD_COLUMNS = ("model", "kind", "test MCC", "MCC 95% CI", "test balanced accuracy",
                       "p vs best baseline")


def leaderboard_table(board: Leaderboard) -> list[str]:
    """The leaderboard as a markdown table, the champion in bold (lines)."""
    lines = ["| " + " | ".join(LEADERBOARD_COLUMNS) + " |",
             "|" + "---|" * len(LEADERBOARD_COLUMNS)]
    for name, row in zip(board.models, leaderboard_rows(board), strict=True):
        if name == board.champion:
            row = row | {"model": f"**{row['model']}** (champion)"}
        lines.append("| " + " | ".join(str(row[c]) for c in LEADERBOARD_COLUMNS) + " |")
    return lines


def where_the_pages_are(page: Path) -> tuple[list[str], str]:
    """Where a reviewer opens the reports (never a ``file://`` link to a worker's disk):
    (markdown lines, the link, remote or path they give).

    ``TSEPIPE_REPORTS_URL`` set (a web server or bucket serving the project's
    ``reports/``): a link to the front page there. Otherwise, with a DVC remote that is
    not a local folder (S3, ...): how to fetch this version's reports from it. Otherwise
    (one machine) the front page's path as text: a browser opens no ``file://`` link from
    the Prefect UI.
    """
    project = next((p for p in page.parents if (p / "dvc.yaml").is_file()), page.parent)
    relative = page.relative_to(project).as_posix()
    served = os.environ.get(REPORTS_URL, "").strip()
    if served:
        link = quote(f"{served.rstrip('/')}/{relative.removeprefix('reports/')}",
                     safe=":/?#@!$&'*+,;=%~")
        return [f"Front page: [{inert_markdown(relative)}]({link})"], link
    remote = dvc_remote_url(project)
    if remote and "://" in remote and not remote.startswith("file://"):
        commit = (git_commit(project) or "HEAD")[:8]
        return [f"Published to the DVC remote {code_span(remote)} with the version committed "
                f"as `{commit}`. To open them:", "",
                f"```\ngit fetch && git checkout {commit} -- dvc.lock\ndvc pull\n```", "",
                f"then {code_span(relative)} (set {code_span(REPORTS_URL)} to link to a "
                "server that serves them)."], remote
    return [f"Front page: {code_span(relative)} in the project, on this machine "
            f"{code_span(page)} (open it in a browser there; set {code_span(REPORTS_URL)} to "
            "link to a server that serves the reports)."], str(page)


@task(task_run_name="artifact report")
def publish_report(front_page: str, forecast_path: str | None = None,
                   leaderboard_path: str | None = None) -> str:
    """Markdown: the forecast in brief and the leaderboard (those of them there are),
    then where the pages are (``where_the_pages_are``); returns the link, remote or path."""
    lines = ["# tsepipe report"]
    if forecast_path:
        lines += ["", *forecast_lines(_read(forecast_path))]
    if leaderboard_path:
        lines += ["", "## Leaderboard (walk-forward test days)", "",
                  *leaderboard_table(Leaderboard.read(leaderboard_path))]
    where, found = where_the_pages_are(Path(front_page).resolve())
    lines += ["", "## The pages", "", *where]
    create_markdown_artifact(key="report", markdown="\n".join(lines) + "\n",
                             description="Front page: forecast, data health, drift, models")
    return found


def publish_all(project: str) -> list[str]:
    """Publish every artifact whose file exists in ``project``; return their keys."""
    root = Path(project)
    where = load_params(root / "params.yaml").paths

    def there(path: Path) -> str | None:
        return str(root / path) if (root / path).exists() else None

    published = []
    for key, publish, path, *also in (
        ("forecast", publish_forecast, where.forecast, str(root)),
        ("leaderboard", publish_leaderboard, where.leaderboard),
        ("drift", publish_drift, where.drift_summary),
        ("report", publish_report, where.front_page, there(where.forecast),
         there(where.leaderboard)),
    ):
        if there(path):
            publish(there(path), *also)
            published.append(key)
    return published
