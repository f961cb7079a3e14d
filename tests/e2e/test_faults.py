"""Faults a user meets, tried as a user would: each is a clear line, an exit code of its
own, raw files untouched and the last good outputs kept.

- a second run while one holds the project: exit 4 "another run is in progress";
- Ctrl-C during a run: exit 130 at once with one line, and a run started right after
  finds the project free (no run lock, no DVC lock held);
- a symbolic link in data/raw: refused before DVC reads it (nothing cached or pushed);
- a killed or failed evaluate: the last good leaderboard and predictions stay, and the
  daily forecast still works; a stage that crashes is a crash (exit 1), not bad data;
- a truncated model file: one clear line;
- a full disk while writing the dataset: one clear line, the previous dataset intact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml

from pipelines.core.errors import LINE_LIMIT
from pipelines.core.fileio import file_md5
from tests.conftest import (
    BIN,
    TARGET,
    as_a_terminal_would,
    copy_exports,
    env,
    isolated,
    run,
)
from tests.e2e.test_signals import slow_evaluate

pytestmark = pytest.mark.slow

SECRET = "27182818284"


def tsepipe(args: list[str], project: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "tsepipe"), *args], cwd=project, env=isolated(tmp_path),
                          capture_output=True, text=True, timeout=600)


def is_stage(process: psutil.Process, stage: str) -> bool:
    """Whether ``process`` is the ``tsepipe STAGE`` command itself (not ``dvc repro ...
    STAGE``, whose python may live in a folder named tsepipe, as a clone's does)."""
    command = process.cmdline()
    return command[-1:] == [stage] and any(Path(part).name == "tsepipe"
                                           for part in command[:-1])


def error_lines(text: str) -> list[str]:
    """The ``error:`` lines of a command's output, each asserted a few hundred characters
    at most (``pipelines.core.errors.clip``), however long what it quotes."""
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    assert all(len(line) <= LINE_LIMIT + 40 for line in lines), lines
    return lines


def test_a_second_run_is_told_another_run_is_in_progress(project, small_sample_dir, tmp_path):
    copy_exports(small_sample_dir, project / "data/raw")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from flows.runs import project_lock
            with project_lock({str(project)!r}, "tsepipe-data (scheduled)"):
                print("holding", flush=True)
                time.sleep(120)
        """)], cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, text=True, env=env())
    try:
        assert holder.stdout.readline().strip() == "holding"
        done = tsepipe(["run", "--no-train", "--no-push"], project, tmp_path)
        assert done.returncode == 4, done.stdout + done.stderr
        errors = error_lines(done.stderr)
        assert len(errors) == 1, done.stderr
        assert "another run is in progress (tsepipe-data (scheduled), pid " in errors[0]
        assert "Traceback" not in done.stderr

        started = time.monotonic()
        waited = tsepipe(["run", "--no-train", "--no-push", "--wait", "2"], project, tmp_path)
        assert waited.returncode == 4 and time.monotonic() - started >= 2
        assert "after waiting 2 s" in waited.stderr

        # a deployment's run (the flow itself) ends Busy, not BadData
        code = textwrap.dedent(f"""
            from flows.data import data_flow
            state = data_flow(project_dir={str(project)!r}, push_remote=False,
                              return_state=True)
            print(state.name, "|", state.message)
        """)
        flow_run = subprocess.run([sys.executable, "-c", code], cwd=project,
                                  env=isolated(tmp_path), capture_output=True, text=True,
                                  timeout=300)
        last = (flow_run.stdout.strip().splitlines() or [""])[-1]
        # Prefect's own name (the UI lists runs by it), the kind leading the message
        assert last.startswith("Failed | Busy: ") and "another run is in progress" in last, (
            flow_run.stdout + flow_run.stderr)
    finally:
        holder.kill()
        holder.wait()
    assert not (project / "data/processed/merged.parquet").exists()  # nothing ran
    done = tsepipe(["run", "--no-train", "--no-push"], project, tmp_path)  # the lock is free
    assert done.returncode == 0, done.stdout + done.stderr


def test_ctrl_c_ends_the_run_at_once_and_the_next_run_goes_through(trained_project, tmp_path):
    project = trained_project
    slow_evaluate(project)  # a retraining, Ctrl-C'd while it trains
    # DVC runs the stage through $SHELL; /bin/sh (dash) waits for it and reports 137, as
    # where SHELL is unset (CI); bash's -9 is read in tests/flows/test_stage_results.py
    started = subprocess.Popen([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                               env=isolated(tmp_path) | {"SHELL": "/bin/sh"},
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=as_a_terminal_would)
    output = []
    assert started.stdout is not None
    for line in started.stdout:  # until evaluate trains
        output.append(line)
        if "refits done" in line:
            break
    assert started.poll() is None, "".join(output[-20:])
    # Ctrl-C: the terminal signals the whole process group, the ephemeral server included
    os.killpg(started.pid, signal.SIGINT)
    try:
        rest, _ = started.communicate(timeout=120)  # minutes of API retries without the fix
    except subprocess.TimeoutExpired:
        os.killpg(started.pid, signal.SIGKILL)
        raise AssertionError("tsepipe run still running 120 s after Ctrl-C") from None
    assert started.returncode == 130, rest[-3000:]
    assert error_lines(rest) == [next(line for line in rest.splitlines()
                                      if line.startswith("error: interrupted (SIGINT): "
                                                         "the run stopped"))], rest[-3000:]
    assert "Traceback" not in rest, rest[-3000:]  # a resource tracker's, once
    # nothing of the run holds the project: the next (daily) run goes through
    done = tsepipe(["run", "--no-retrain", "--no-push"], project, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "forecast for" in done.stdout and "nothing changed" not in done.stdout


def test_a_symlink_in_the_raw_folder_is_refused_before_dvc_reads_it(project, small_sample_dir,
                                                                    tmp_path):
    raw = copy_exports(small_sample_dir, project / "data/raw")
    secret = tmp_path / "elsewhere" / "private.csv"
    secret.parent.mkdir()
    secret.write_text(f"<DTYYYYMMDD>,<CLOSE>\n20240101,{SECRET}\n", encoding="utf-8")
    (raw / "IRX6XLINK001.csv").symlink_to(secret)

    done = tsepipe(["run", "--no-train"], project, tmp_path)

    assert done.returncode == 3, done.stdout + done.stderr
    assert error_lines(done.stderr) == [
        f"error: IRX6XLINK001.csv: a symbolic link in {raw}: refused, never read (put the "
        "file itself there)"]
    assert SECRET not in done.stdout + done.stderr
    assert not (project / "data/raw.dvc").exists()  # dvc add never ran
    for folder in (project / ".dvc/cache", project / "dvcstore"):
        for path in folder.rglob("*") if folder.exists() else []:
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert secret.read_text(encoding="utf-8").endswith(f"{SECRET}\n")  # untouched


def evaluation_files(project: Path) -> dict[str, str]:
    """The walk-forward's files (evaluate's) and the leaderboard's (select's), by name."""
    return {p.name if p.parent.name in ("evaluation", "walk_forward") else
            str(p.relative_to(project / "reports")): file_md5(p)
            for folder in ("walk_forward", "evaluation")
            for p in sorted((project / "reports" / folder).rglob("*")) if p.is_file()}


def set_params(project: Path, section: str, **values: object) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params[section] |= values
    path.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")


def test_killed_or_crashed_evaluate_keeps_the_last_good_evaluation(trained_project, tmp_path):
    project = trained_project
    assert "up to date" in run(["dvc", "repro"], project).stdout  # trained, every stage
    good = evaluation_files(project)
    assert {"walk_forward.parquet", "evaluation.json", "leaderboard.json",
            "predictions.parquet", "backtest.json"} <= set(good)
    forecast = json.loads((project / "forecasts/latest.json").read_text())

    # killed half-way: a new evaluate (more refits) is stopped while it trains
    set_params(project, "evaluate", refit_every=20)
    repro = subprocess.Popen([str(BIN / "dvc"), "repro", "--single-item", "evaluate"],
                             cwd=project, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    for line in repro.stdout:
        if "refits done" in line or time.monotonic() > deadline:  # a refit's progress line
            break
    assert repro.poll() is None, "evaluate ended before it could be killed"
    os.killpg(repro.pid, signal.SIGKILL)
    repro.wait()
    assert evaluation_files(project) == good, "a killed evaluate changed the last good outputs"

    # crashed: a window longer than the data makes evaluate fail with a traceback (exit 1)
    set_params(project, "features", window=5000)
    crashed = run(["dvc", "repro", "--single-item", "evaluate"], project, check=False)
    assert crashed.returncode != 0
    assert evaluation_files(project) == good
    assert not list((project / "reports").glob(".walk_forward.*")), "staging left behind"

    # the daily forecast still works from the last good leaderboard and models
    set_params(project, "features", window=10)
    set_params(project, "evaluate", refit_every=100)
    predicted = run(["tsepipe", "predict"], project)
    assert f"by {forecast['champion']}" in predicted.stdout

    # a crash through the flow is a crash (exit 1, its last lines), never "bad data"
    set_params(project, "features", window=5000)
    done = tsepipe(["run", "--no-push"], project, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = error_lines(done.stderr)
    assert errors[0].startswith("error: the run crashed (not a problem with the input data):")
    assert "(ValueError: split: 0 labelled days leave 0 for training" in errors[0], errors
    assert evaluation_files(project) == good


def test_a_truncated_model_file_is_one_clear_line(trained_project):
    project = trained_project
    record_path = project / "models/champion.json"
    record = json.loads(record_path.read_text())
    record.update(champion="lstm", kind="network")  # so that predict loads the network
    record_path.write_text(json.dumps(record))
    model = project / "models/lstm/seed_1.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])

    done = run(["tsepipe", "predict"], project, check=False)

    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert error_lines(done.stderr) == [
        f"error: models/lstm/seed_1.keras: the model file cannot be loaded "
        f"({model.stat().st_size} bytes; truncated or corrupt: " + error_lines(done.stderr)[0]
        .split("truncated or corrupt: ", 1)[1]]
    assert "restore it with dvc checkout, or retrain with tsepipe train" in done.stderr


def merged_project(sample_dir: Path, folder: Path, why: str) -> Path:
    """The sample's exports ingested, validated and merged in ``folder`` (a user
    namespace's mounts follow, hence unshare); returns the stage params file."""
    if shutil.which("unshare") is None:
        pytest.fail(f"unshare (util-linux) is needed {why}")
    from tests.e2e.test_real_inputs import stage_params

    copy_exports(sample_dir, folder / "raw")
    params = stage_params(folder)
    for stage in ("ingest", "validate", "merge"):
        run([str(BIN / "tsepipe"), stage, "--params", str(params)], folder)
    return params


def test_a_full_disk_is_one_clear_line_and_the_last_dataset_stays(small_sample_dir, tmp_path):
    params = merged_project(small_sample_dir, tmp_path, "to mount a small tmpfs for this test")
    processed = tmp_path / "data/processed"
    good = file_md5(processed / "merged.parquet")
    size_kb = (processed / "merged.parquet").stat().st_size // 1024 + 24
    script = textwrap.dedent(f"""
        set -e
        cp -a {processed} {tmp_path}/previous
        mount -t tmpfs -o size={size_kb}k tmpfs {processed}
        cp -a {tmp_path}/previous/. {processed}/
        set +e
        {BIN}/tsepipe merge --params {params}
        echo "exit=$?"
        md5sum {processed}/merged.parquet
        ls -a {processed}
    """)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, env=env(), timeout=300)
    if "mount" in done.stderr and "exit=" not in done.stdout:
        pytest.fail(f"could not mount a tmpfs in a user namespace: {done.stderr}")
    assert "exit=6" in done.stdout, done.stdout + done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and errors[0].startswith("error: disk full"), done.stderr
    assert "the previous outputs are unchanged" in errors[0]
    assert "Traceback" not in done.stderr
    assert f"{good}  {processed}/merged.parquet" in done.stdout
    assert ".tmp" not in done.stdout  # no temporary file left behind
    assert TARGET in json.loads((processed / "merge_summary.json").read_text())["target_index"]


def test_a_read_only_project_is_one_line_from_every_command(small_sample_dir, tmp_path):
    """The project folder mounted read-only (a read-only bind mount in a user namespace):
    each command says so in one line, exits 6, and the files stay as they were."""
    params = merged_project(small_sample_dir, tmp_path, "to mount the project read-only")
    before = {p: file_md5(p) for p in tmp_path.rglob("*") if p.is_file()}
    commands = ["ingest", "validate", "merge", "sample-data --force --out raw"]
    script = textwrap.dedent(f"""
        mount --bind {tmp_path} {tmp_path} && mount -o remount,bind,ro {tmp_path} || exit 9
        cd {tmp_path}
    """) + "".join(f"""
        echo "== {command}"; {BIN}/tsepipe {command} --params {params} 2>&1; echo "exit=$?"
    """ for command in commands)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, env=env(), timeout=900)
    if done.returncode == 9:
        pytest.fail(f"could not mount read-only in a user namespace: {done.stderr}")
    outputs = done.stdout.split("== ")[1:]
    assert len(outputs) == len(commands), done.stdout + done.stderr
    for command, output in zip(commands, outputs, strict=True):
        assert output.rstrip().endswith("exit=6"), (command, output)
        errors = error_lines(output)
        assert len(errors) == 1, (command, output)
        assert "the file system is read-only; the project folder must be writable" in errors[0]
        assert ".tmp" not in errors[0] and "Traceback" not in output
    assert {p: file_md5(p) for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_file_cut_short_is_named_with_its_line_in_the_runs_warnings(project, small_sample_dir,
                                                                       tmp_path):
    """What a user reads at the end of the run, not only on the validation page: which file
    was left out, and why (the line where it breaks)."""
    raw = copy_exports(small_sample_dir, project / "data/raw")
    cut = raw / "IRX6X27T0007.csv"
    cut.write_bytes(cut.read_bytes()[:len(cut.read_bytes()) // 2 + 7])  # a line cut in two
    done = tsepipe(["run", "--no-train", "--no-push"], project, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: 1 export file(s) left out by validation; see " \
           "reports/validation/index.html" in warnings, warnings
    assert any(line.startswith("warning: left out: IRX6X27T0007.csv: line ")
               for line in warnings), warnings


def reader_files(project: Path) -> dict[str, str]:
    """What a reader opens and what the next stages read: every page, summary and metrics
    file, the quarantine records and the ingested tables, by path."""
    return {str(p.relative_to(project)): file_md5(p)
            for folder in ("reports", "metrics", "forecasts", "data/quarantine", "data/interim")
            for p in sorted((project / folder).rglob("*")) if p.is_file()}


def stop_stage(project: Path, stage: str) -> str:
    """``dvc repro --force`` of ``stage``, its ``tsepipe STAGE`` process sent SIGTERM as
    soon as it runs (DVC has by then done what it does before a stage: removed its
    outputs, unless they are ``persist``); DVC's output."""
    repro = subprocess.Popen([str(BIN / "dvc"), "repro", "--force", "--single-item", stage],
                             cwd=project, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and repro.poll() is None:
            found = [p for p in psutil.Process(repro.pid).children(recursive=True)
                     if is_stage(p, stage)]
            if found:
                found[0].send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
        output, _ = repro.communicate(timeout=120)
    finally:
        if repro.poll() is None:
            os.killpg(repro.pid, signal.SIGKILL)
    assert repro.returncode != 0, f"{stage} ended before it could be stopped:\n{output}"
    return output


def test_a_stopped_stage_keeps_the_last_good_pages_and_summaries(trained_project):
    """DVC removes a stage's outputs before it runs, unless they are ``persist``: every
    stage whose outputs a reader opens keeps them when it is stopped (SIGTERM) half-way."""
    project = trained_project
    good = reader_files(project)
    assert {"reports/index.html", "reports/drift/index.html",
            "reports/validation/index.html", "reports/accuracy/index.html",
            "reports/drift/drift.json", "data/interim/validation.json",
            "metrics/headline.json"} <= set(good)
    for stage in ("validate", "drift", "accuracy", "report"):
        output = stop_stage(project, stage)
        assert "exited with 143" in output or "exited with -15" in output, output
        assert reader_files(project) == good, f"a stopped {stage} changed the outputs"
    # DVC still agrees with the workspace: nothing to run, nothing changed
    assert "up to date" in run(["dvc", "status"], project).stdout
    assert "up to date" in run(["dvc", "repro"], project).stdout
    assert reader_files(project) == good
