"""The ``tsepipe`` command line: one command per stage, plus ``run`` for the whole flow.

Expected failures (bad input, failed validation) print one line per problem, prefixed
``error:``, and exit with status 3; usage errors exit with 2. No traceback for either.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

# Light modules here; each command imports its stage's module (pandas, TensorFlow, GX,
# Evidently behind it) and the flows (Prefect) itself, so `tsepipe --help` and the
# nothing-to-do `tsepipe run` start in a fraction of a second.
from flows.unchanged import unchanged_run
from pipelines.core import devices  # noqa: F401  (before TensorFlow: quiets its start-up logs)
from pipelines.core.errors import DataError, PipelineError, WriteError, clip, printable
from pipelines.core.fileio import write_text
from pipelines.core.params.load import DEFAULT_PARAMS, load_params
from pipelines.core.processes import (
    Interrupted,
    exit_interrupted,
    raising_on_termination,
    signal_of,
)
from pipelines.modelling.settings import EvaluationSettings
from pipelines.ops.remote import configure_remote
from pipelines.ops.versions import checkout, require_repo, uncommitted
from pipelines.ops.versions import history as read_history

app = typer.Typer(
    help="tsepipe: forecast the next-day direction of TEDPIX from 16 TSE index exports.\n\n"
    "Stages (as in dvc.yaml): ingest -> validate -> merge -> evaluate -> select -> train -> "
    "accuracy -> predict -> drift -> report. `tsepipe run` runs them all as Prefect flows "
    "through DVC and pushes the new versions to the DVC remote; then open reports/index.html.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        from pipelines.core.provenance import git_commit

        commit = git_commit(Path(__file__).resolve().parent)  # the code's, not the cwd's
        typer.echo(f"tsepipe {version('tsepipe')}" + (f" (git {commit[:10]})" if commit else ""))
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print tsepipe's version and exit.")] = False,
) -> None:
    """tsepipe: forecast the next-day direction of TEDPIX from 16 TSE index exports."""


ParamsOption = Annotated[
    Path, typer.Option("--params", help="Parameters file (paths and tunables).")
]
log = logging.getLogger("pipelines")
# the ephemeral Prefect server's database pool, torn down by a stop (SIGHUP, SIGTERM): its
# "Exception during reset" traceback says nothing the run's own `error:` line does not
logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write("".join(f"{clip(line)}\n" for line in
                                 self.format(record).splitlines() or [""]))


def _stage(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command with logging set up; an expected failure becomes lines + its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Our own messages, bare, at INFO; the libraries keep their own logging
        # (Prefect formats its flow and task run lines; GX and DVC warn only).
        if not log.handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        try:
            with raising_on_termination():
                return func(*args, **kwargs)
        except (KeyboardInterrupt, Interrupted) as exc:
            exit_interrupted(signal_of(exc) or signal.SIGINT)
        except PipelineError as exc:
            for line in exc.lines:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            problem = _write_problem(exc)
            if problem is None:
                raise
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(WriteError.exit_code) from None

    return wrapper


def _write_problem(exc: OSError) -> str | None:
    """One line for an OSError about the place, not the code: a full disk, a read-only
    project, no permission; None for any other."""
    where = "the project"
    if exc.filename:  # a temporary copy (.NAME.PID.XXXX.tmp) is named by its folder
        name = Path(str(exc.filename))
        where = printable(name.parent if name.name.startswith(".") else name)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(exc):
        return (f"disk full writing {where}: {exc.strerror or exc}; the previous outputs are "
                "unchanged (free some space and run again)")
    if exc.errno == errno.EROFS:
        return (f"{where}: the file system is read-only; the project folder must be writable "
                "(its outputs, DVC's locks and cache live there); "
                "the previous outputs are unchanged")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{where}: permission denied ({exc.strerror}); run as a user who may write the "
                "project folder; the previous outputs are unchanged")
    return None


def _track(description: str) -> Callable[[list[Any]], Any]:
    def track(items: list[Any]) -> Any:
        from rich.console import Console
        from rich.progress import track as rich_track

        console = Console(stderr=True)
        if not console.is_terminal:  # under DVC or in a log: one line per item
            for item in items:
                typer.echo(f"{description}: {printable(getattr(item, 'name', item))}", err=True)
                yield item
            return
        yield from rich_track(items, description=description, console=console, transient=True)

    return track


@app.command("sample-data")
@_stage
def sample_data(
    out: Annotated[Path, typer.Option(help="Folder to write the 16 export files into.")] = Path(
        "data/raw"
    ),
    days: Annotated[
        int | None, typer.Option(help="Trading days per file (default: sample.days).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed; the same seed gives the same bytes "
                                      "(default: sample.seed).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Write even if the folder holds other files.")
    ] = False,
    regime_change_days: Annotated[
        int,
        typer.Option(min=0, help="Make the last N trading days a regime change (3x the "
                                 "volatility, 2.5x the volume level) to demonstrate drift "
                                 "monitoring; 0: none."),
    ] = 0,
    params: Annotated[
        Path | None, typer.Option("--params", help="Parameters file for sample: (default: "
                                                   "params.yaml if here, else the defaults).")
    ] = None,
) -> None:
    """Write the embedded demo data: 16 UTF-16 exports shaped like the study's files."""
    from pipelines.core.params.sample import SampleSection
    from pipelines.data import sample

    if params is None and not DEFAULT_PARAMS.is_file():
        settings = SampleSection()  # outside a project: the schema's defaults
    else:
        settings = load_params(params or DEFAULT_PARAMS).sample
    days = settings.days if days is None else days
    seed = settings.seed if seed is None else seed
    foreign = sample.foreign_files(out)
    if foreign and not force:
        raise DataError(
            f"{out}: holds {len(foreign)} file(s) that are not sample exports "
            f"(e.g. {foreign[0].name}); not mixing demo data in (use --force, or another --out)"
        )
    if regime_change_days > days:
        raise DataError(f"--regime-change-days ({regime_change_days}) exceeds --days ({days})")
    written = sample.generate(out, n_days=days, seed=seed, regime_change_days=regime_change_days)
    change = f", the last {regime_change_days} a regime change" if regime_change_days else ""
    typer.echo(f"wrote {len(written)} sample exports ({days} trading days each{change}) to {out}")


@app.command()
@_stage
def fetch(
    params: ParamsOption = DEFAULT_PARAMS,
    raw_dir: Annotated[
        Path | None, typer.Option(help="Folder to write into (default: paths.raw_dir).")
    ] = None,
) -> None:
    """Download each index in fetch.indices from TSETMC into the raw folder (incremental).

    One file per index, <ISIN>.json (the API's own layout, D), merged with the days
    already held. Any failure leaves the raw folder untouched and exits with status 5.
    """
    from pipelines.data.fetch import fetch as run_fetch

    p = load_params(params)
    report = run_fetch(raw_dir or p.paths.raw_dir, p.fetch, plausible=p.validation)
    typer.echo(report["summary"])


@app.command()
@_stage
def ingest(
    params: ParamsOption = DEFAULT_PARAMS,
    raw_dir: Annotated[
        Path | None, typer.Option(help="Export files folder (default: paths.raw_dir).")
    ] = None,
) -> None:
    """Read every export file into a typed tidy Parquet table (unreadable ones recorded)."""
    from pipelines.data.ingest import ingest as run_ingest

    p = load_params(params)
    where = p.paths
    report = run_ingest(raw_dir or where.raw_dir, where.tables_dir, where.ingest_report,
                        p.ingest, track=_track("reading"))
    typer.echo(f"read {report['files_read']} of {report['files_total']} export files "
               f"into {where.tables_dir}")


@app.command()
@_stage
def validate(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Validate each file (Great Expectations) and the set; quarantine failing files."""
    from pipelines.data.validate import validate as run_validate

    p = load_params(params)
    outcome = run_validate(p.paths, p.validation, p.data)
    dropped = 0
    for verdict in outcome.verdicts:
        for line in verdict.lines():
            typer.echo(f"warning: {line} (left out)", err=True)
        if verdict.usable:
            for line in verdict.dropped_row_lines():
                typer.echo(f"warning: {line}", err=True)
            dropped += len(verdict.dropped_lines)
    rows = f"; {dropped} bad rows dropped" if dropped else ""
    typer.echo(f"{len(outcome.usable_ids)} of {len(outcome.verdicts)} files usable{rows}; "
               f"report: {p.paths.validation_page}")


@app.command()
@_stage
def merge(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Merge the usable tables by the target's trading days into one Parquet dataset."""
    from pipelines.data.merge import merge as run_merge

    p = load_params(params)
    summary = run_merge(p.paths, p.merge, p.data, p.validation)
    for warning in summary["warnings"]:
        typer.echo(f"warning: {printable(warning)}", err=True)
    typer.echo(
        f"merged {summary['indices_included']} indices into {summary['rows']} trading days "
        f"x {summary['columns']} columns ({summary['first_date']} .. {summary['last_date']}), "
        f"{summary['values_filled']} days filled; {p.paths.dataset} md5 {summary['md5']}"
    )


def _each_target(p: Any, folder: str, quiet: bool = False
                 ) -> Iterator[tuple[str, Any, Any]]:
    """(target, its paths, its data section) for each target the walk-forward forecast:
    the further targets first, the headline last (a folder swapped in whole carries the
    further targets' ``per_target/`` over); then the folders of targets no longer forecast
    go from ``paths.<folder>/per_target/``."""
    from pipelines.modelling.targets import drop_others, forecast_targets

    targets, _ = forecast_targets(p.paths, p.data.target_index)
    for target in [*targets[1:], targets[0]]:
        if len(targets) > 1 and not quiet:
            log.info(f"target {target}")
        yield target, p.paths.for_target(target, p.data.target_index), p.data.of(target)
    drop_others(p.paths, folder, targets)


def _many_targets(p: Any) -> bool:
    from pipelines.modelling.targets import forecast_targets

    return len(forecast_targets(p.paths, p.data.target_index)[0]) > 1


@app.command()
@_stage
def evaluate(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Walk-forward evaluation of every network and baseline, for each target (data.targets;
    with several, global networks over all of them too): their out-of-sample forecasts and
    each network's final fit (the champion is chosen by select)."""
    from pipelines.modelling.evaluate import evaluate as run_evaluate

    p = load_params(params)
    evaluations = run_evaluate(p.paths, p.data, EvaluationSettings.of(p),
                               progress=lambda message: log.info(message))
    evaluation = evaluations[p.data.target_index]
    many = f" for each of {len(evaluations)} targets" if len(evaluations) > 1 else ""
    typer.echo(f"{len(evaluation.results)} models walked forward{many} on "
               f"{len(evaluation.validation_days)} validation and {len(evaluation.test_days)} "
               f"test days -> {p.paths.walk_forward_dir}")


@app.command()
@_stage
def select(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Score every model and combination, choose the champion and its calibration, for each
    target, from the walk-forward's forecasts (no refit: seconds); with several targets,
    their record side by side (reports/evaluation/targets.json: adjusted p, pooled MCC)."""
    from pipelines.modelling.select import select as run_select

    p = load_params(params)
    for target, where, _ in _each_target(p, "evaluation_dir", quiet=True):
        board = run_select(where, EvaluationSettings.of(p), p.backtest, p.forecast,
                           target == p.data.target_index)
    if _many_targets(p):
        from pipelines.core.fileio import write_json
        from pipelines.modelling.targets import targets_table

        table = targets_table(p.paths, p.data.target_index, p.evaluate.p_adjustment,
                              p.evaluate.bootstrap_block, p.evaluate.bootstrap_samples)
        write_json(p.paths.targets_table, table)
        for row in table["targets"]:
            typer.echo(f"{row['target']}: champion {row['champion']:15s} test MCC "
                       f"{row['test_mcc']:+.3f} [{row['mcc_lo']:+.3f}, {row['mcc_hi']:+.3f}]"
                       f"  p {row['pt_p']:.3f} ({table['adjustment']} {row['pt_p_adjusted']:.3f})")
        typer.echo(f"{p.data.target_index}, the headline:")
    elif p.paths.targets_table.exists():
        p.paths.targets_table.unlink()
    for name, row in board.models.items():
        test = row.test
        typer.echo(f"{name:15s} test balanced accuracy {test['balanced_accuracy']:.3f} "
                   f"MCC {test['mcc']:+.3f}  (validation MCC {row.validation['mcc']:+.3f})")
    for note in board.notes:
        typer.echo(note)
    typer.echo(f"champion: {board.champion}: {board.champion_reason}")
    calibration = board.calibration
    typer.echo(f"calibration of {board.champion}: {calibration['method']} "
               f"(forecast.calibration: {calibration['setting']})")


@app.command()
@_stage
def train(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Every network on all labelled days, every seed (the evaluation's walk-forward
    continued on them, or a fresh fit), every baseline, and the champion's record, for each
    target: the models folder, all that predict needs."""
    from pipelines.modelling.train import train as run_train

    p = load_params(params)
    for _, where, data in _each_target(p, "models_dir"):
        cards = run_train(where, data, EvaluationSettings.of(p))
        for name, card in cards.items():
            typer.echo(f"{name}: {len(card['seeds'])} seeds x {card['params']['total']} "
                       f"parameters, {card['training']['epochs']} epochs in "
                       f"{card['training']['seconds']:.1f} s on {card['device']['kind']} "
                       f"({card['training']['made']}) -> {where.model_dir(name)}")


@app.command()
@_stage
def predict(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Tomorrow's call by the champion of each target: forecasts/latest.json (a further
    target's in forecasts/per_target/ISIN/), the log and its track record (and the
    champion's P(up) on every day, which drift compares)."""
    from pipelines.modelling.predict import predict as run_predict
    from pipelines.reporting.call_text import evidence_lines, headline

    p = load_params(params)
    for target, where, data in _each_target(p, "forecasts_dir"):
        result, path = run_predict(where, data, p.features, p.calendar, p.forecast,
                                   p.evaluate)
        if result["note"]:
            typer.echo(f"warning: {target}: {result['note']}", err=True)
        if result["staleness"]["stale"] and target == p.data.target_index:
            typer.echo(f"warning: {result['staleness']['message']}", err=True)
        if target != p.data.target_index:
            typer.echo(f"{target}: {headline(result)} -> {path}")
            continue
        typer.echo(headline(result))
        for line in evidence_lines(result):
            typer.echo(f"  {line}")
        typer.echo(f"  data {result['data_version'][:8]}, model "
                   f"{result['model_version'][:16]} -> {path}")


@app.command()
@_stage
def drift(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Data drift (Evidently): each target's champion's training window against the latest
    days; the drift page with its history (reports/drift/, per_target/ISIN/)."""
    from pipelines.reporting.drift import drift as run_drift

    p = load_params(params)
    for target, where, data in _each_target(p, "drift_dir"):
        summary = run_drift(where, data, p.features, p.drift, _many_targets(p))
        verdict = "dataset drift" if summary["dataset_drift"] else "no dataset drift"
        typer.echo(f"{target}: {verdict}: {summary['n_drifted']} of {summary['n_features']} "
                   f"features drifted (share {summary['share_of_drifted_features']:.2f}, "
                   f"threshold {summary['threshold']:.2f}); last {summary['current']['rows']} "
                   f"days against {summary['reference']['rows']} of the champion's training "
                   f"days -> {where.drift_page}")


@app.command()
@_stage
def accuracy(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Write the accuracy report reports/accuracy/ (ours and Evidently's) from the evaluation,
    a further target's in reports/accuracy/per_target/ISIN/."""
    from pipelines.reporting.accuracy import build_accuracy

    p = load_params(params)
    many = _many_targets(p)
    for target, where, _ in _each_target(p, "accuracy_dir"):
        missing = [str(path) for path in (where.leaderboard, where.predictions)
                   if not path.exists()]
        if missing:
            raise DataError([f"{path}: missing; run tsepipe select first (or dvc repro)"
                             for path in missing])
        pages = build_accuracy(where, p.evaluate, target if many else None)
        typer.echo(f"accuracy: {pages['accuracy']} (Evidently: {pages['classification']})")


@app.command()
@_stage
def report(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Write the front page reports/index.html (offline HTML) from the stages' outputs."""
    from pipelines.reporting.front_page import build_reports

    where = load_params(params).paths
    needed = [where.validation_summary, where.merge_summary, where.leaderboard,
              where.accuracy_summary, where.drift_summary, where.forecast]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise DataError([f"{path}: missing; run the stages before report (tsepipe run, or "
                         "dvc repro)" for path in missing])
    pages = build_reports(where)
    typer.echo(f"reports: {pages['front_page']} (accuracy: {pages['accuracy']}, drift: "
               f"{pages['drift']}, validation: {pages['validation']})")


@app.command()
@_stage
def sweep(
    params: ParamsOption = DEFAULT_PARAMS,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of an existing Dask scheduler (tcp://...).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Local Dask worker processes (default: sweep.n_workers).")
    ] = None,
) -> None:
    """Evaluate the sweep grid (params sweep:) on a Dask cluster; write a leaderboard.

    A local cluster serves a Dask dashboard only at TSEPIPE_DASK_DASHBOARD (e.g. :8787).
    """
    from flows.sweep import run_sweep

    state = run_sweep(scheduler_address=scheduler, n_workers=workers, params_path=str(params))
    if not state.is_completed():
        raise DataError((state.message or "the sweep failed").splitlines())
    typer.echo(state.message)


@app.command()
@_stage
def run(
    raw_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of export files; copied into paths.raw_dir if elsewhere."),
    ] = None,
    push: Annotated[bool, typer.Option(help="Push the new versions to the DVC remote.")] = (
        True
    ),
    train: Annotated[
        bool, typer.Option(help="Also forecast, check drift and report (--no-train: data "
                                "only).")
    ] = True,
    retrain: Annotated[
        bool, typer.Option(help="Evaluate and train the models again first (--no-retrain: "
                                "the daily path, forecast with the current models).")
    ] = True,
    fetch: Annotated[
        bool | None,
        typer.Option(help="Fetch the indices from TSETMC first (default: fetch.enabled)."),
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for another run in this project to "
                                        "finish (default: do not wait, exit 4).")
    ] = 0.0,
    commit: Annotated[
        bool, typer.Option(help="Commit the version to git when dvc.lock or data/raw.dvc "
                                "changed, with params.yaml, dvc.yaml and the metrics files "
                                "(never pushed to git from here).")
    ] = True,
    params: Annotated[
        Path | None, typer.Option("--params", help="Run with these parameters: the file is "
                                  "checked against the schema, then copied over params.yaml "
                                  "(what DVC reads and the version records).")
    ] = None,
) -> None:
    """Run the whole pipeline as Prefect flows through DVC, then dvc push and commit the
    version (dvc.lock, data/raw.dvc, params.yaml, dvc.yaml, metrics/) to git. Every day:
    `tsepipe run --no-retrain` (the new data, then the forecast, drift and reports with the
    current models); retrain weekly with a plain `tsepipe run`.

    Exit status: 0 done, 3 bad input data, 4 another run in progress, 5 the fetch failed,
    6 the project cannot be written (read-only, no permission, disk full),
    1 a stage crashed (its last lines are shown), 130 / 143 / 129 stopped by SIGINT
    (Ctrl-C) / SIGTERM / SIGHUP (a closed terminal), with every process it started;
    128 + N a stage's process killed by signal N (137: SIGKILL, out of memory).
    """

    project = Path.cwd()
    if params is not None:
        _use_params(params, project / DEFAULT_PARAMS)
    summary = _nothing_to_run(project, raw_dir, fetch, push, train, commit)
    if summary:
        typer.echo(summary)
        return
    from flows.pipeline import run_pipeline

    typer.echo(run_pipeline(raw_dir=raw_dir, push=push, train=train, fetch=fetch,
                            wait_seconds=wait, commit=commit, retrain=retrain))


def _nothing_to_run(project: Path, raw_dir: Path | None, fetch: bool | None, push: bool,
                    train: bool, commit: bool) -> str | None:
    """The run's summary when nothing changed (no flow started), else None."""
    if not (project / "dvc.yaml").is_file() or not (project / DEFAULT_PARAMS).is_file():
        return None
    require_repo(project)
    params = load_params(project / DEFAULT_PARAMS)
    where = params.paths
    fetching = fetch if fetch is not None else params.fetch.enabled
    same_raw = raw_dir is None or (project / raw_dir).resolve() == (
        project / where.raw_dir).resolve()
    if fetching or not same_raw:
        return None
    return unchanged_run(project, where, push, train, commit)


def _use_params(given: Path, target: Path) -> None:
    """``run --params FILE``: FILE checked by the schema, then written over params.yaml."""
    load_params(given)  # a DataError (exit 3) names the file and the key
    text = given.read_text(encoding="utf-8")
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        write_text(target, text)
        typer.echo(f"{target.name}: replaced by {printable(given)}")


@app.command("params")
@_stage
def show_params(
    params: ParamsOption = DEFAULT_PARAMS,
    section: Annotated[
        str | None, typer.Argument(help="Show this section only (e.g. evaluate).")
    ] = None,
) -> None:
    """Every setting: its value in params.yaml, the schema's default when it differs, and
    its help (each declared once, in pipelines/core/params/<section>.py)."""
    from pipelines.core.params.load import describe

    for line in describe(load_params(params), section):
        typer.echo(line)


@app.command()
@_stage
def remote(params: ParamsOption = DEFAULT_PARAMS) -> None:
    """Point DVC at the data remote of params.yaml (remote:); print the remote in use.

    TSEPIPE_DVC_REMOTE_URL and TSEPIPE_S3_ENDPOINT_URL override remote.url and
    remote.endpoint_url. Written to .dvc/config.local (ignored by git); credentials only
    from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, which DVC reads at push and pull.
    """

    settings = configure_remote(Path("."), params)
    typer.echo(settings.describe())


@app.command()
@_stage
def notify(
    url: Annotated[str, typer.Option(
        "--url", envvar="TSEPIPE_NOTIFY_URL", show_default=False,
        help="Where to send: an http(s) webhook (POSTed JSON subject, body, text), a Slack "
             "incoming webhook, or an Apprise URL such as "
             "mailtos://user:password@smtp.example.com?to=ops@example.com (e-mail).")],
) -> None:
    """Notify on failures and drift, through Prefect automations on the server of
    PREFECT_API_URL (the one the deployments run on).

    Saves the notification block `tsepipe` for URL and two automations: one sends a message
    when a run of a tsepipe deployment fails or crashes (the deployment, the run, the
    state's name and message), one when the monitor finds drift (the deployment, the run,
    the share and the most drifted features). Run again, it updates them in place.
    """
    import httpx
    from prefect.settings import PREFECT_API_URL

    from flows.notifications import ensure_notifications

    if not PREFECT_API_URL.value():
        typer.echo("error: PREFECT_API_URL is not set: automations live on a Prefect server "
                   "(docs/prefect.md: Running on a schedule)", err=True)
        raise typer.Exit(2)
    try:
        lines = ensure_notifications(url)
    except ValueError as exc:
        typer.echo(f"error: --url: {exc}", err=True)
        raise typer.Exit(2) from None
    except httpx.HTTPError as exc:  # the server does not answer, or refuses
        raise PipelineError(f"Prefect server {PREFECT_API_URL.value()}: {exc}") from None
    for line in lines:
        typer.echo(line)


@app.command()
@_stage
def history(
    params: ParamsOption = DEFAULT_PARAMS,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list, full hashes.")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show at most this many (newest first).")
    ] = None,
) -> None:
    """The data and model versions recorded in git (commits of dvc.lock and data/raw.dvc),
    with the parameters each changed from the version before."""


    versions = read_history(Path.cwd(), limit=limit, params_file=params)
    if as_json:
        hidden = ("pushed", "warnings", "model_version")  # record_version's
        typer.echo(json.dumps([{key: value for key, value in version.as_dict().items()
                                if key not in hidden} for version in versions], indent=2))
        return
    if not versions:
        typer.echo("no versions recorded in git yet (tsepipe run commits dvc.lock and "
                   "data/raw.dvc)")
        return
    rows = [("date", "commit", "flow", "dataset md5", "rows", "champion", "test MCC",
             "parameters changed")]
    rows += [(v.date[:16].replace("T", " "), v.commit[:8], printable(v.flow or "-"),
              (v.dataset_md5 or "-")[:8], "-" if v.rows is None else str(v.rows),
              printable(v.champion or "-"),
              "-" if v.test_mcc is None else f"{v.test_mcc:+.3f}",
              _changes(v.params_changed)) for v in versions]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width)
                             for cell, width in zip(row, widths, strict=True)).rstrip())


def _changes(changed: dict[str, list[Any]], most: int = 3) -> str:
    """``split.test_fraction 0.3 -> 0.25, ...``: the parameters a version changed."""
    shown = [f"{key} {printable(json.dumps(old))} -> {printable(json.dumps(new))}"
             for key, (old, new) in list(changed.items())[:most]]
    more = f", +{len(changed) - most} more" if len(changed) > most else ""
    return ", ".join(shown) + more or "-"


@app.command("track-record")
@_stage
def track_record(
    params: ParamsOption = DEFAULT_PARAMS,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: the summary and "
                                                         "every forecast.")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="List at most this many (the newest).")
    ] = None,
) -> None:
    """Every published forecast scored against the close that followed: the call, P(up),
    what happened, hit or miss; then calls, hits, hit rate and MCC (no calls counted
    apart). Scored against today's dataset, so a forecast is pending until its next close
    is in."""
    import pandas as pd

    from pipelines.modelling.features import dataset_table
    from pipelines.modelling.track_record import read_forecast_log, score_forecasts, summarise

    p = load_params(params)
    if not p.paths.forecast_log.exists():
        raise DataError(f"{p.paths.forecast_log}: no forecast published yet; run tsepipe "
                        "predict (or tsepipe run)")
    log = read_forecast_log(p.paths.forecast_log)
    table, _ = dataset_table(p.paths, p.data, p.features)
    scored = score_forecasts(log, pd.DatetimeIndex(table.dates), table.close)
    summary = summarise(scored, p.evaluate.bootstrap_block, p.evaluate.bootstrap_samples,
                        limit or len(scored))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    rows = [("as of", "for", "call", "P(up)", "outcome", "", "champion")]
    rows += [(r["as_of"], r["next_trading_day"], r["call"],
              "-" if r["probability_up"] is None else f"{r['probability_up']:.3f}",
              r["outcome"] or r["status"], {True: "hit", False: "miss"}.get(r["hit"], ""),
              printable(r["champion"] or "-")) for r in summary["recent"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    typer.echo(record_line(summary))


def record_line(summary: dict[str, Any]) -> str:
    """The live record in one line."""
    if not summary["calls"]:
        return (f"no scored calls yet ({summary['no_calls']} no call, {summary['pending']} "
                "pending)")
    if summary["up_calls"] and summary["down_calls"] and summary["mcc"] is not None:
        mcc = (f", MCC {summary['mcc']:+.3f} [{summary['mcc_interval'][0]:+.3f}, "
               f"{summary['mcc_interval'][1]:+.3f}]")
    else:
        mcc = f", no MCC: every call {'up' if summary['up_calls'] else 'down'}"
    return (f"{summary['calls']} calls since {summary['since']}: {summary['hits']} hits "
            f"({summary['hit_rate']:.0%}){mcc}; {summary['no_calls']} no call, "
            f"{summary['pending']} pending")


@app.command("checkout")
@_stage
def checkout_version(
    rev: Annotated[str, typer.Argument(help="A commit of tsepipe history (hash, tag, HEAD~2).")],
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Bring back the data and models of a recorded version (git + dvc checkout).

    dvc.lock, data/raw.dvc, params.yaml and metrics/ are left as that version has them
    (modified relative to HEAD): commit them to keep that version, or `git checkout HEAD --
    FILES && dvc checkout` to go back (the command prints FILES). Outputs that version does
    not have (a data-only version's models and reports) are moved aside into
    .dvc/tmp/aside/ (a warning says where).
    """
    from flows.runs import project_lock

    project = Path.cwd()
    if not (project / "dvc.yaml").exists() or not (project / ".dvc").is_dir():
        raise DataError(f"{project}: not a tsepipe project (no dvc.yaml or .dvc/); run "
                        "tsepipe from the project root")
    with project_lock(project, "tsepipe checkout"):  # not while a run writes the data
        version = checkout(project, rev, params_file=params)
    rows = "" if version.rows is None else f", {version.rows} rows"
    champion = f"; champion {printable(version.champion)}" if version.champion else ""
    typer.echo(f"checked out {printable(rev)} ({version.commit[:8]}, {version.date[:10]}): "
               f"dataset md5 {version.dataset_md5}{rows}{champion}")
    for warning in version.warnings:
        log.warning("warning: %s", printable(warning))
    files = " ".join(uncommitted(project, params_file=params))
    if files:
        typer.echo(f"{files} now differ from HEAD: commit them to keep this version, or "
                   f"`git checkout HEAD -- {files} && dvc checkout` to go back")


@app.command()
@_stage
def doctor(
    params: Annotated[
        Path | None, typer.Option("--params", help="Parameters file whose train.models are "
                                                   "checked (default: params.yaml, if here).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
) -> None:
    """Show what TensorFlow was built with, the device it sees, and which models get cuDNN.

    The versions of TensorFlow and Keras, the CUDA and cuDNN versions TensorFlow was built
    with (none for the CPU build), the device Keras will train on, and for each model in
    train.models whether Keras runs it with the fused cuDNN kernel on a GPU (and why not).
    A machine without a GPU is reported, not an error: the exit status is 0.
    """
    from pipelines.modelling.doctor import diagnose, report_lines

    params_path = params if params is not None else DEFAULT_PARAMS
    networks = (load_params(params_path).train.models
                if params is not None or params_path.exists() else None)
    result = diagnose(networks, params_path)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for line in report_lines(result):
        typer.echo(line)


def main() -> None:
    """The ``tsepipe`` command. A command that ended (succeeded, or failed with its exit
    status) ends the process at once, its output flushed, instead of letting Python tear
    down TensorFlow, GX or Evidently module by module (0.7-0.9 s a stage, each stage of a
    run a process of its own). Not when Prefect ran here (its temporary server stops at
    exit), nor while a child process or a thread is still at work (Python waits for
    them): then Python exits as usual."""
    try:
        app()
    except SystemExit as done:
        if not isinstance(done.code, int | None) or "prefect" in sys.modules \
                or _still_working():
            raise
        _exit_at_once(done.code or 0)
    _exit_at_once()


def _still_working() -> bool:
    """Whether a child process or a non-daemon thread of this process is still running."""
    import multiprocessing
    import threading

    return bool(multiprocessing.active_children()) or any(
        thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
        for thread in threading.enumerate())


def _exit_at_once(code: int = 0) -> None:
    """Exit with ``code`` now: log handlers and the standard streams flushed first, the
    rest of the exit hooks skipped (every output is already in place: written to a
    temporary file, then renamed; a failed command wrote nothing). TensorFlow's threads,
    torn down by a normal exit after an error, can abort the process ("terminate called
    without an active exception", status -6) after its one error line."""
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say anyway
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
