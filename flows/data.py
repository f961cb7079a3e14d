"""The data flow: raw exports -> validated, merged, DVC-versioned Parquet.

Each stage runs as ``dvc repro --single-item <stage>`` so that ``dvc.lock`` always
describes what was published; tasks pass paths, never DataFrames. Artifacts: a
per-file validation table, the merge summary and the dataset version.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows.artifacts import inert_markdown, publish_all
from flows.dvc import CommandResult, dvc, locked_hash
from flows.runs import (
    FETCH_FAILED,
    bad_data,
    exclusive,
    passed_on,
    project_lock,
    raise_for_state,
    stage_failed,
)
from pipelines.config import load_params, paths
from pipelines.errors import DataError, FetchError, printable
from pipelines.fileio import atomic_path
from pipelines.ingest import display_name, export_files, matches, refusal
from pipelines.versions import record_version

log = logging.getLogger("pipelines.run")

DATA_STAGES = ("ingest", "validate", "merge")


class TransientStageError(RuntimeError):
    """A stage failed for a reason other than its input data; worth a retry."""


@task(retries=2, retry_delay_seconds=3)
def stage_raw_files(source: str, raw_dir: str, patterns: list[str], max_file_mb: float) -> str:
    """Copy the export files of ``source`` into ``raw_dir`` (the originals are only read).

    A file ingest would refuse (a symbolic link, a name that cannot be an index id, a file
    above ``ingest.max_file_mb``) is not copied, with a warning: a link is never followed.
    """
    logger = get_run_logger()
    source_dir, target_dir = Path(source).resolve(), Path(raw_dir).resolve()
    if source_dir == target_dir:
        return str(target_dir)
    files = []
    for path in export_files(source_dir, patterns):
        refused = refusal(path, max_file_mb)
        if refused:
            logger.warning("warning: %s: %s; not copied", display_name(path.name), refused[1])
        else:
            files.append(path)
    target_dir.mkdir(parents=True, exist_ok=True)
    for old in target_dir.iterdir():  # the folder mirrors source: earlier exports go (DVC
        if old.is_file() and matches(old.name, patterns):  # keeps them)
            old.unlink()
    for path in files:
        with atomic_path(target_dir / path.name) as tmp:
            shutil.copyfile(path, tmp)
    logger.info("copied %d export files from %s into %s", len(files), source_dir, target_dir)
    return str(target_dir)


@task
def refuse_links(raw_dir: str) -> list[str]:
    """Problems that stop the run before DVC reads the raw folder: symbolic links.

    ``dvc add`` would follow a link and copy its target, a file from anywhere, into the
    cache and the remote; so a link in the raw folder stops the run, unread.
    """
    return [f"{display_name(path.name)}: a symbolic link in {raw_dir}: refused, never read "
            "(put the file itself there)" for path in sorted(Path(raw_dir).iterdir())
            if path.is_symlink()]


@task
def fetch_raw(project: str, raw_dir: str) -> dict[str, Any]:
    """``tsepipe fetch``: download the configured indices into the raw folder.

    Returns the fetch report, or ``{"error": lines}`` when the feed failed (the raw
    folder is then untouched; fetch retries by itself, so the task does not).
    """
    from pipelines.fetch import fetch

    logger = get_run_logger()
    settings = load_params(Path(project) / "params.yaml")["fetch"]
    try:
        report = fetch(raw_dir, settings["indices"], settings["base_url"],
                       timeout_seconds=settings["timeout_seconds"], retries=settings["retries"],
                       backoff_seconds=settings["backoff_seconds"],
                       pace_seconds=settings["pace_seconds"])
    except FetchError as exc:
        for line in exc.lines:
            logger.error("error: %s", line)
        return {"error": exc.lines}
    logger.info("fetch: %s", report["summary"])
    return report


@task(retries=2, retry_delay_seconds=3, task_run_name="dvc add raw")
def snapshot_raw(project: str, raw_dir: str) -> str:
    """``dvc add`` the raw folder so this exact input is cached; return its DVC hash."""
    result = dvc(Path(project), "add", "--quiet", raw_dir)
    if not result.ok:
        raise TransientStageError(f"dvc add {raw_dir} failed:\n{result.output}")
    dvc_file = Path(project) / f"{raw_dir}.dvc"
    return yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"][0]["md5"]


@task(retries=2, retry_delay_seconds=3, task_run_name="{stage}")
def repro_stage(project: str, stage: str) -> CommandResult:
    """``dvc repro`` one stage. Bad input is returned (no retry); other failures raise."""
    logger = get_run_logger()
    result = dvc(Path(project), "repro", "--single-item", stage,
                 on_line=lambda line: logger.info("%s | %s", stage, line))
    if not result.ok and not result.data_error:
        raise TransientStageError(f"dvc repro {stage} failed:\n{result.output}")
    return result


@task(retries=3, retry_delay_seconds=5, task_run_name="dvc push")
def push(project: str) -> str:
    """Send the new data version (raw, tables, dataset) to the default DVC remote."""
    result = dvc(Path(project), "push")
    if not result.ok:
        raise TransientStageError(f"dvc push failed:\n{result.output}")
    return result.output.strip().splitlines()[-1] if result.output.strip() else "pushed"


@task(retries=1, retry_delay_seconds=5, task_run_name="git commit")
def commit_version(project: str, flow_name: str, push_git: bool) -> dict[str, Any] | None:
    """Commit ``dvc.lock`` and ``data/raw.dvc`` if this run changed them; push to git."""
    version = record_version(Path(project), flow_name, push=push_git)
    if version is None:
        get_run_logger().info("version: dvc.lock and the raw data unchanged, nothing to commit")
        return None
    get_run_logger().info("version: committed %s (%s)%s", version.commit[:10], version.subject,
                          "; pushed" if version.pushed else "")
    return version.as_dict()


def publish_version(project: str, flow_name: str, push_remote: bool, commit: bool,
                    push_git: bool) -> dict[str, Any] | None:
    """Data first (``dvc push``), then the version's git commit and its push."""
    if push_remote:
        push(project)
    return commit_version(project, flow_name, push_git and push_remote) if commit else None


@task
def publish_validation(summary_path: str) -> None:
    """Table: each file's verdict (names and messages made inert, as on the HTML pages)."""
    summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    rows = [
        {"file": inert_markdown(f["file"]), "index": inert_markdown(f["index_name"]),
         "status": f["status"], "rows": f["rows"],
         "rows dropped": len(f.get("dropped_lines", [])),
         "failed expectations": len(f["problems"]),
         "first problem": inert_markdown(f["problems"][0]["message"]) if f["problems"] else ""}
        for f in summary["files"]
    ]
    dropped = summary.get("rows_dropped", 0)
    create_table_artifact(
        key="validation", table=rows,
        description=f"{summary['files_usable']} of {summary['files_total']} files usable; "
                    f"{dropped} bad rows dropped; "
                    f"validation {'passed' if summary['passed'] else 'FAILED'}",
    )


@task
def publish_dataset(summary_path: str, dataset_md5: str | None, raw_md5: str) -> dict[str, Any]:
    """Markdown: the merge summary (warnings first) and the dataset version."""
    summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    version = {"dataset": summary["dataset"], "dataset_md5": dataset_md5, "raw_md5": raw_md5,
               "rows": summary["rows"], "columns": summary["columns"],
               "first_date": summary["first_date"], "last_date": summary["last_date"],
               "warnings": summary["warnings"]}
    lines = ["# Merge summary"]
    if summary["warnings"]:
        lines += ["", f"**Warning: {len(summary['warnings'])} index(es) left out of the "
                      "merge**", ""]
        lines += [f"- {inert_markdown(w)}" for w in summary["warnings"]]
        lines.append("")
    lines += [
        f"- {summary['rows']} trading days x {summary['columns']} columns, "
        f"{summary['first_date']} .. {summary['last_date']} (the target's last trading "
        f"day: {summary['target_last_date']})",
        f"- indices included: {summary['indices_included']}; left out: "
        f"{summary['indices_excluded']}",
        f"- days filled with the last known value: {summary['values_filled']}",
        f"- leading days dropped: {summary['leading_rows_dropped']}; days dropped in gaps: "
        f"{summary['rows_dropped_gaps']}",
        f"- policy: {summary['policy']['fill']}; {summary['policy']['stale']}; "
        f"{summary['policy']['gaps']}",
        "",
        "| index | name | filled | lost | included | reason |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {inert_markdown(s['index_id'])} | {inert_markdown(s['index_name'])} | "
              f"{s['days_filled']} | {s['days_lost']} | {'yes' if s['included'] else 'no'} | "
              f"{inert_markdown(s['reason'] or '')} |" for s in summary["indices"]]
    create_markdown_artifact(key="merge-summary", markdown="\n".join(lines) + "\n")
    create_markdown_artifact(
        key="dataset-version",
        markdown=f"# Dataset version\n- `{summary['dataset']}` DVC md5 `{dataset_md5}`\n"
                 f"- raw exports (`dvc add`) md5 `{raw_md5}`\n",
    )
    return version


@flow(name="tsepipe-data", description="Ingest, validate and merge the 16 index exports.")
@exclusive
def data_flow(
    raw_dir: str | None = None, project_dir: str = ".", push_remote: bool = True,
    fetch: bool | None = None, lock_wait_seconds: float = 0, commit: bool = True,
    push_git: bool = False,
) -> State:
    """Run (fetch ->) ingest -> validate -> merge through DVC; publish artifacts; push.

    ``raw_dir``: a folder of export files; when it is not ``paths.raw_dir`` its export
    files are copied there first. ``fetch``: download the indices of ``fetch.indices``
    into the raw folder first (default: ``fetch.enabled``). Returns a Completed state
    carrying the dataset version, or a Failed one (``BadData``, ``FetchFailed``, ``Busy``)
    whose message lists each problem on its own line. ``commit``: a changed ``dvc.lock``
    or ``data/raw.dvc`` is committed (``pipelines.versions``); ``push_git``: and pushed to
    the git remote (the deployments do; a local ``tsepipe run`` does not).
    """
    project = Path(project_dir).resolve()
    params = load_params(project / "params.yaml")
    where = paths(params)
    if fetch if fetch is not None else params["fetch"]["enabled"]:
        fetched = fetch_raw(str(project), str(project / where.raw_dir))
        if "error" in fetched:
            return Failed(name=FETCH_FAILED, message="\n".join(fetched["error"]))
    raw = stage_raw_files(raw_dir or str(project / where.raw_dir), str(project / where.raw_dir),
                          params["ingest"]["file_patterns"], params["ingest"]["max_file_mb"])
    links = refuse_links(raw)
    if links:
        return bad_data(links)
    raw_md5 = snapshot_raw(str(project), str(Path(raw).relative_to(project)))
    for stage in DATA_STAGES:
        result = repro_stage(str(project), stage)
        if stage == "validate" and (project / where.validation_summary).exists():
            publish_validation(str(project / where.validation_summary))
        if not result.ok:
            return stage_failed(result)
    dataset_md5 = locked_hash(project, "merge", where.dataset)
    version = publish_dataset(str(project / where.merge_summary), dataset_md5, raw_md5)
    validation = json.loads((project / where.validation_summary).read_text(encoding="utf-8"))
    version["rows_dropped"] = validation["rows_dropped"]
    version["files_left_out"] = validation["files_quarantined"]
    version["commit"] = publish_version(str(project), "tsepipe-data", push_remote, commit,
                                        push_git)
    version["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _record_run(project / "reports" / "runs.jsonl", version)
    publish_all(str(project))  # the standing forecast, leaderboard, drift and report link
    return Completed(message=json.dumps(version), data=version)


def _record_run(history: Path, version: dict[str, Any]) -> None:
    history.parent.mkdir(parents=True, exist_ok=True)
    with history.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(version) + "\n")


@flow(name="tsepipe", description="The whole pipeline: the data flow, then training.")
@exclusive
def pipeline_flow(raw_dir: str | None = None, project_dir: str = ".",
                  push_remote: bool = True, train: bool = True, fetch: bool | None = None,
                  lock_wait_seconds: float = 0, commit: bool = True) -> State:
    """Data flow then (unless ``train`` is false) the training flow, as subflows."""
    from flows.train import training_flow

    data = data_flow(raw_dir=raw_dir, project_dir=project_dir, push_remote=push_remote,
                     fetch=fetch, commit=commit, return_state=True)
    if not data.is_completed():
        return passed_on(data)
    if not train:  # a State of its own: the subflow's would come back from .result()
        return Completed(message=data.message, data=data.result())
    trained = training_flow(project_dir=project_dir, push_remote=push_remote, commit=commit,
                            return_state=True)
    if not trained.is_completed():
        return passed_on(trained)
    return Completed(message=trained.message,
                     data={"data": data.result(), "forecast": trained.result()})


def run_pipeline(raw_dir: Path | None = None, push: bool = True, train: bool = True,
                 fetch: bool | None = None, wait_seconds: float = 0, commit: bool = True) -> str:
    """Run the pipeline from the CLI; raise the ``PipelineError`` that says why it failed."""
    project = Path.cwd()
    if not (project / "dvc.yaml").exists() or not (project / ".dvc").is_dir():
        raise DataError(f"{project}: not a tsepipe project (no dvc.yaml or .dvc/); "
                        "run tsepipe from the project root")
    params = load_params(project / "params.yaml")
    fetching = fetch if fetch is not None else params["fetch"]["enabled"]
    if not fetching:
        export_files(raw_dir or paths(params).raw_dir, params["ingest"]["file_patterns"])
    with project_lock(project, "tsepipe run", wait_seconds):  # busy: before Prefect starts
        state = pipeline_flow(raw_dir=str(raw_dir) if raw_dir else None, push_remote=push,
                              train=train, fetch=fetch, commit=commit, return_state=True)
    raise_for_state(state)
    result = state.result()
    version = result["data"] if train else result
    if version["files_left_out"]:
        log.warning("warning: %d export file(s) left out by validation; see %s",
                    version["files_left_out"], paths(params).validation_report_dir / "index.html")
    if version["rows_dropped"]:
        log.warning("warning: %d bad row(s) dropped by validation; see %s#rows-dropped",
                    version["rows_dropped"], paths(params).validation_report_dir / "index.html")
    for warning in version["warnings"]:
        log.warning("warning: %s", printable(warning))
    lines = [f"dataset {version['dataset']} ({version['rows']} trading days x "
             f"{version['columns']} columns, {version['first_date']} .. "
             f"{version['last_date']}) DVC md5 {version['dataset_md5']}; raw md5 "
             f"{version['raw_md5']}"]
    if train:
        forecast = result["forecast"]
        lines.append(f"forecast for {forecast['next_trading_day']}: {forecast['direction']} "
                     f"(P(up) = {forecast['probability_up']:.3f}) by {forecast['champion']}")
        lines.append(f"reports: {paths(params).front_page} (open it in a browser)")
    commits = [c for c in (version.get("commit"), train and result["forecast"].get("commit"))
               if c]
    if commits:
        lines.append(f"version committed to git: {commits[-1]['commit'][:10]} (tsepipe history)")
    return "\n".join(lines)
