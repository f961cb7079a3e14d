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

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, Failed, State

from flows.artifacts import publish_all
from flows.dvc import CommandResult, dvc, locked_hash
from pipelines.config import load_params, paths
from pipelines.errors import DataError
from pipelines.fileio import atomic_path
from pipelines.ingest import export_files

DATA_STAGES = ("ingest", "validate", "merge")


class TransientStageError(RuntimeError):
    """A stage failed for a reason other than its input data; worth a retry."""


@task(retries=2, retry_delay_seconds=3)
def stage_raw_files(source: str, raw_dir: str, patterns: list[str]) -> str:
    """Copy the export files of ``source`` into ``raw_dir`` (the originals are only read)."""
    source_dir, target_dir = Path(source).resolve(), Path(raw_dir).resolve()
    if source_dir == target_dir:
        return str(target_dir)
    files = export_files(source_dir, patterns)
    target_dir.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:  # the folder mirrors source: earlier exports go (DVC keeps them)
        for old in target_dir.glob(pattern):
            old.unlink()
    for path in files:
        with atomic_path(target_dir / path.name) as tmp:
            shutil.copyfile(path, tmp)
    get_run_logger().info("copied %d export files from %s into %s", len(files), source_dir,
                          target_dir)
    return str(target_dir)


@task(retries=2, retry_delay_seconds=3)
def snapshot_raw(project: str, raw_dir: str) -> str:
    """``dvc add`` the raw folder so this exact input is cached; return its DVC hash."""
    result = dvc(Path(project), "add", "--quiet", raw_dir)
    if not result.ok:
        raise TransientStageError(f"dvc add {raw_dir} failed:\n{result.output}")
    dvc_file = Path(project) / f"{raw_dir}.dvc"
    return yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"][0]["md5"]


@task(retries=2, retry_delay_seconds=3)
def repro_stage(project: str, stage: str) -> CommandResult:
    """``dvc repro`` one stage. Bad input is returned (no retry); other failures raise."""
    logger = get_run_logger()
    result = dvc(Path(project), "repro", "--single-item", stage,
                 on_line=lambda line: logger.info("%s | %s", stage, line))
    if not result.ok and not result.data_error:
        raise TransientStageError(f"dvc repro {stage} failed:\n{result.output}")
    return result


@task(retries=3, retry_delay_seconds=5)
def push(project: str) -> str:
    """Send the new data version (raw, tables, dataset) to the default DVC remote."""
    result = dvc(Path(project), "push")
    if not result.ok:
        raise TransientStageError(f"dvc push failed:\n{result.output}")
    return result.output.strip().splitlines()[-1] if result.output.strip() else "pushed"


@task
def publish_validation(summary_path: str) -> None:
    summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    rows = [
        {"file": f["file"], "index": f["index_name"], "status": f["status"], "rows": f["rows"],
         "failed expectations": len(f["problems"]),
         "first problem": f["problems"][0]["message"] if f["problems"] else ""}
        for f in summary["files"]
    ]
    create_table_artifact(
        key="validation", table=rows,
        description=f"{summary['files_usable']} of {summary['files_total']} files usable; "
                    f"validation {'passed' if summary['passed'] else 'FAILED'}",
    )


@task
def publish_dataset(summary_path: str, dataset_md5: str | None, raw_md5: str) -> dict[str, Any]:
    summary = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    version = {"dataset": summary["dataset"], "dataset_md5": dataset_md5, "raw_md5": raw_md5,
               "rows": summary["rows"], "columns": summary["columns"],
               "first_date": summary["first_date"], "last_date": summary["last_date"]}
    excluded = [f"{s['index_id']} ({s['reason']})" for s in summary["indices"]
                if not s["included"]]
    create_markdown_artifact(
        key="merge-summary",
        markdown="\n".join([
            "# Merge summary",
            f"- {summary['rows']} trading days x {summary['columns']} columns, "
            f"{summary['first_date']} .. {summary['last_date']}",
            f"- indices included: {summary['indices_included']}; left out: "
            + (", ".join(excluded) or "none"),
            f"- days filled with the last known value: {summary['values_filled']}",
            f"- leading days dropped: {summary['leading_rows_dropped']}; "
            f"stale days dropped: {summary['rows_dropped_stale']}",
            f"- policy: {summary['policy']['fill']}; min coverage "
            f"{summary['policy']['min_coverage']}",
        ]),
    )
    create_markdown_artifact(
        key="dataset-version",
        markdown=f"# Dataset version\n- `{summary['dataset']}` DVC md5 `{dataset_md5}`\n"
                 f"- raw exports (`dvc add`) md5 `{raw_md5}`\n",
    )
    return version


@flow(name="tsepipe-data", description="Ingest, validate and merge the 16 index exports.")
def data_flow(
    raw_dir: str | None = None, project_dir: str = ".", push_remote: bool = True
) -> State:
    """Run ingest -> validate -> merge through DVC; publish artifacts; push to the remote.

    ``raw_dir``: a folder of export files; when it is not ``paths.raw_dir`` its export
    files are copied there first. Returns a Completed state carrying the dataset version,
    or a Failed one whose message lists each problem on its own line.
    """
    project = Path(project_dir).resolve()
    params = load_params(project / "params.yaml")
    where = paths(params)
    raw = stage_raw_files(raw_dir or str(project / where.raw_dir), str(project / where.raw_dir),
                          params["ingest"]["file_patterns"])
    raw_md5 = snapshot_raw(str(project), str(Path(raw).relative_to(project)))
    for stage in DATA_STAGES:
        result = repro_stage(str(project), stage)
        if stage == "validate" and (project / where.validation_summary).exists():
            publish_validation(str(project / where.validation_summary))
        if not result.ok:
            return Failed(message="\n".join(result.error_lines() or [result.output.strip()]))
    dataset_md5 = locked_hash(project, "merge", where.dataset)
    version = publish_dataset(str(project / where.merge_summary), dataset_md5, raw_md5)
    if push_remote:
        version["pushed"] = push(str(project))
    version["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _record_run(project / "reports" / "runs.jsonl", version)
    publish_all(str(project))  # the standing forecast, leaderboard, drift and report link
    return Completed(message=json.dumps(version), data=version)


def _record_run(history: Path, version: dict[str, Any]) -> None:
    history.parent.mkdir(parents=True, exist_ok=True)
    with history.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(version) + "\n")


@flow(name="tsepipe", description="The whole pipeline: the data flow, then training.")
def pipeline_flow(raw_dir: str | None = None, project_dir: str = ".",
                  push_remote: bool = True, train: bool = True) -> State:
    """Data flow then (unless ``train`` is false) the training flow, as subflows."""
    from flows.train import training_flow

    data = data_flow(raw_dir=raw_dir, project_dir=project_dir, push_remote=push_remote,
                     return_state=True)
    if not data.is_completed():
        return data
    if not train:  # a State of its own: the subflow's would come back from .result()
        return Completed(message=data.message, data=data.result())
    trained = training_flow(project_dir=project_dir, push_remote=push_remote,
                            return_state=True)
    if not trained.is_completed():
        return trained
    return Completed(message=trained.message,
                     data={"data": data.result(), "forecast": trained.result()})


def run_pipeline(raw_dir: Path | None = None, push: bool = True, train: bool = True) -> str:
    """Run the pipeline from the CLI; raise DataError with its problems when it fails."""
    project = Path.cwd()
    if not (project / "dvc.yaml").exists() or not (project / ".dvc").is_dir():
        raise DataError(f"{project}: not a tsepipe project (no dvc.yaml or .dvc/); "
                        "run tsepipe from the project root")
    params = load_params(project / "params.yaml")
    export_files(raw_dir or paths(params).raw_dir, params["ingest"]["file_patterns"])
    state = pipeline_flow(raw_dir=str(raw_dir) if raw_dir else None, push_remote=push,
                          train=train, return_state=True)
    if not state.is_completed():
        raise DataError((state.message or "the pipeline failed").splitlines())
    result = state.result()
    version = result["data"] if train else result
    lines = [f"dataset {version['dataset']} ({version['rows']} trading days x "
             f"{version['columns']} columns, {version['first_date']} .. "
             f"{version['last_date']}) DVC md5 {version['dataset_md5']}; raw md5 "
             f"{version['raw_md5']}"]
    if train:
        forecast = result["forecast"]
        lines.append(f"forecast for {forecast['next_trading_day']}: {forecast['direction']} "
                     f"(P(up) = {forecast['probability_up']:.3f}) by {forecast['champion']}")
        lines.append(f"reports: {paths(params).front_page} (open it in a browser)")
    return "\n".join(lines)
