"""The data flow: raw exports -> validated, merged, DVC-versioned Parquet.

Each stage runs as ``dvc repro --single-item <stage>`` so that ``dvc.lock`` always
describes what was published; tasks pass paths, never DataFrames. Artifacts: a
per-file validation table, the merge summary and the dataset version.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, State

from flows.artifacts import inert_markdown, publish_all, run_name
from flows.dvc_commands import damaged_dvc_files, dvc, locked_hash, remove_dvc_leftovers
from flows.runs import (
    BAD_DATA,
    FETCH_FAILED,
    WRITE_FAILED,
    bad_data,
    exclusive,
    failed,
    is_told,
    passed_on,
    untold,
)
from flows.stages import TransientStageError, publish_version, push_refused, run_stages
from pipelines.core.errors import FetchError
from pipelines.core.fileio import append_jsonl, atomic_path
from pipelines.core.params.ingest import IngestSection
from pipelines.core.params.load import load_params
from pipelines.core.provenance import snapshot_md5
from pipelines.data.fetch import fetch as fetch_exports
from pipelines.data.ingest import display_name, export_files, matches, refusal

DATA_STAGES = ("ingest", "validate", "merge")
PROBLEMS_SHOWN = 10  # a failed run's problems on the front page (the run's own lines: all)


@task(retries=2, retry_delay_seconds=3, task_run_name="copy the exports")
def stage_raw_files(source: str, raw_dir: str, settings: IngestSection) -> str:
    """Copy the export files of ``source`` into ``raw_dir`` (the originals are only read).

    A file ingest would refuse (a symbolic link, a name that cannot be an index id, a file
    above ``ingest.max_file_mb``) is not copied, with a warning: a link is never followed.
    """
    logger = get_run_logger()
    source_dir, target_dir = Path(source).resolve(), Path(raw_dir).resolve()
    if source_dir == target_dir:
        return str(target_dir)
    files = []
    patterns = settings.file_patterns
    for path in export_files(source_dir, patterns):
        refused = refusal(path, settings.max_file_mb)
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


@task(task_run_name="refuse links")
def refuse_links(raw_dir: str) -> State | None:
    """Stop the run before DVC reads the raw folder if it holds symbolic links: their
    ``BadData`` state, a line each (None: no link).

    ``dvc add`` would follow a link and copy its target, a file from anywhere, into the
    cache and the remote; so a link in the raw folder stops the run, unread.
    """
    links = [f"{display_name(path.name)}: a symbolic link in {raw_dir}: refused, never read "
             "(put the file itself there)" for path in sorted(Path(raw_dir).iterdir())
             if path.is_symlink()]
    return bad_data(links) if links else None


@task(task_run_name="fetch")
def fetch_raw(project: str, raw_dir: str) -> dict[str, Any] | State:
    """``tsepipe fetch``: download the configured indices into the raw folder.

    Returns the fetch report, or the ``FetchFailed`` state, a problem a line, when the
    feed failed (the raw folder is then untouched; fetch retries by itself, so the task
    does not).
    """
    logger = get_run_logger()
    params = load_params(Path(project) / "params.yaml")
    try:
        report = fetch_exports(raw_dir, params.fetch, plausible=params.validation)
    except FetchError as exc:
        for line in exc.lines:
            logger.error("error: %s", line)
        return failed(FETCH_FAILED, exc.lines)
    logger.info("fetch: %s", report["summary"])
    return report


@task(retries=2, retry_delay_seconds=3, retry_condition_fn=untold, task_run_name="dvc add raw")
def snapshot_raw(project: str, raw_dir: str) -> str | State:
    """``dvc add`` the raw folder so this exact input is cached: its DVC hash, or the
    ``WriteFailed`` or ``BadData`` state when DVC cannot write (a full disk: no retry, it
    would fail the same way) or read its own files."""
    result = dvc(Path(project), "add", "--quiet", raw_dir)
    if not result.ok:
        remove_dvc_leftovers(Path(project))
        if result.write_problem():
            return failed(WRITE_FAILED, result.write_problem())
        if result.damaged_state():
            return failed(BAD_DATA, result.damaged_state())
        raise TransientStageError(f"dvc add {raw_dir} failed:\n{result.output}")
    return snapshot_md5(Path(project) / f"{raw_dir}.dvc")


@task(task_run_name="run log, front page")
def record_run(project: str, record: dict[str, Any], redraw: bool = True) -> None:
    """The data run told where a reader looks first: its record in the run log
    (``paths.run_log``: a published version, or a failed run with its problems), then,
    with ``redraw``, the front page redrawn (``dvc repro --force`` of ``report``, where
    there is a page) so that its notice ("attention: the last data run failed", or none)
    and its "last data run" say what the log says. Before the version is committed: no
    version carries a page that says otherwise. A page that cannot be redrawn is a
    warning: the run ends as it would have."""
    root = Path(project)
    where = load_params(root / "params.yaml").paths
    cleared = _last_run_failed(root / where.run_log)  # then the page's notice goes
    append_jsonl(root / where.run_log, record)
    if not (redraw or cleared) or not (root / where.front_page).exists():
        return
    redrawn = dvc(root, "repro", "--force", "--single-item", "report")
    if not redrawn.ok:
        get_run_logger().warning("warning: the front page still shows the last good run: %s",
                                 "; ".join(redrawn.error_lines()) or redrawn.output[-500:])


def _last_run_failed(run_log: Path) -> bool:
    """Whether the run log's last record is a failed run's; True when it cannot be read
    (a line cut short: ``read_jsonl`` warns of it where the log is read)."""
    try:
        lines = run_log.read_text(encoding="utf-8", errors="replace").split("\n")
        last = json.loads([line for line in lines if line.strip()][-1])
    except (OSError, ValueError, IndexError):
        return run_log.exists()
    return not isinstance(last, dict) or bool(last.get("failed"))


def told(project: Path, state: State) -> State:
    """``state`` (a failed data run's), once ``record_run`` has recorded it: a run
    stopped by its input or its fetch (a full disk or a killed stage is told by the run's
    own line; redrawing the page would meet the same disk)."""
    if state.name in (BAD_DATA, FETCH_FAILED):
        record_run(str(project), {
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "failed": state.name,
            "problems": (state.message or "").splitlines()[:PROBLEMS_SHOWN]})
    return state


@task(task_run_name="artifact validation")
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


@task(task_run_name="artifact merge-summary, dataset-version")
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


@flow(name="tsepipe-data", flow_run_name=run_name,
      description="Ingest, validate and merge the 16 index exports.")
@exclusive
def data_flow(
    raw_dir: str | None = None, project_dir: str = ".", push_remote: bool = True,
    fetch: bool | None = None, lock_wait_seconds: float = 0, commit: bool = True,
    push_git: bool = False, publish_standing: bool = True,
) -> State:
    """Run (fetch ->) ingest -> validate -> merge through DVC; publish artifacts; push.

    Returns a Completed state carrying the dataset version, or a Failed one (``BadData``,
    ``FetchFailed``, ``Busy``) whose message lists each problem on its own line. The
    deployments push the version to git (``push_git``); a local ``tsepipe run`` does not,
    and turns ``publish_standing`` off when a report run follows in the same flow. The
    run's record goes into the run log before the version is committed, and the front
    page is redrawn with it (``record_run``).

    Args:
        raw_dir: a folder of export files, copied into paths.raw_dir first when it is elsewhere
            (default: paths.raw_dir itself).
        project_dir: the project's folder (its params.yaml, dvc.yaml and git checkout); the
            worker's working directory by default.
        push_remote: push the new data and models to the DVC remote (dvc push) before the
            version is committed.
        fetch: download the indices of fetch.indices from TSETMC into the raw folder first
            (default: fetch.enabled).
        lock_wait_seconds: how long to wait for another run in this project to finish before
            ending as Busy (0: do not wait).
        commit: commit the version to git when dvc.lock or data/raw.dvc changed (with
            params.yaml, dvc.yaml and metrics/).
        push_git: also push the version's commit (and a new models tag) to the git remote.
        publish_standing: republish the standing forecast, leaderboard, drift and report link
            as this run's artifacts, and redraw the front page (off: a report follows, or
            the page's notice of a failed run is all that needs clearing).
    """
    # long: its docstring's Args: are the deployment's parameter help in the Prefect UI
    project = Path(project_dir).resolve()
    damaged = damaged_dvc_files(project)  # before DVC meets them half-way (and retries)
    if damaged:
        return bad_data(damaged)
    params = load_params(project / "params.yaml")
    where = params.paths
    if fetch if fetch is not None else params.fetch.enabled:
        fetched = fetch_raw(str(project), str(project / where.raw_dir), return_state=True)
        if is_told(fetched):  # a failed task run, FetchFailed (a crash raises below)
            return told(project, passed_on(fetched))
        fetched.result()
    raw = stage_raw_files(raw_dir or str(project / where.raw_dir), str(project / where.raw_dir),
                          params.ingest)
    links = refuse_links(raw, return_state=True)
    if is_told(links):
        return told(project, passed_on(links))
    snapshot = snapshot_raw(str(project), str(Path(raw).relative_to(project)),
                            return_state=True)
    if is_told(snapshot):
        return passed_on(snapshot)
    raw_md5 = snapshot.result()
    def after(stage: str) -> None:
        if stage == "validate" and (project / where.validation_summary).exists():
            publish_validation(str(project / where.validation_summary))

    stopped = run_stages(str(project), DATA_STAGES, after=after)
    if stopped:
        return told(project, stopped)
    dataset_md5 = locked_hash(project, "merge", where.dataset)
    version = publish_dataset(str(project / where.merge_summary), dataset_md5, raw_md5)
    validation = json.loads((project / where.validation_summary).read_text(encoding="utf-8"))
    version["rows_dropped"] = validation["rows_dropped"]
    version["files_left_out"] = validation["files_quarantined"]
    version["left_out"] = [  # each file left out, with its first problem (file, line, column)
        (f["problems"][0]["message"] if f.get("problems") else f"{f['file']}: {f['status']}")
        for f in validation["files"] if not f["usable"]]
    version["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record_run(str(project), version, redraw=publish_standing)
    version["commit"] = publish_version(str(project), "tsepipe-data", push_remote, commit,
                                        push_git)
    refused = push_refused(version["commit"])
    if refused:
        return refused
    if publish_standing:  # the standing forecast, leaderboard, drift and report link
        publish_all(str(project))
    return Completed(message=f"dataset {(version['dataset_md5'] or '-')[:8]}: {version['rows']} "
                             f"trading days, {version['first_date']} .. {version['last_date']}",
                     data=version)


