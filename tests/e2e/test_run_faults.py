"""Faults under ``tsepipe run``, in a user namespace with small tmpfs mounts (``unshare
-rm``): a full disk in every place a run writes (the whole project while the models are
trained, the dataset's folder, the DVC cache, the reports' folder while drift writes), a
read-only DVC remote, a stale ``.git/index.lock``, damaged DVC files and the evaluate
stage's process killed. Each is one line and the exit code of its kind, no traceback, no
retry, the last good outputs kept. (Apart from ``test_faults``: the suite's two processes
run a file each at a time.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import textwrap
import time

import psutil
import pytest

from flows.data import DATA_STAGES
from pipelines.core.fileio import file_md5
from tests.conftest import BIN, isolated, run
from tests.e2e.test_faults import error_lines, is_stage, set_params, tsepipe

pytestmark = pytest.mark.slow


def test_a_full_disk_or_an_unwritable_remote_under_tsepipe_run_is_one_line(trained_project,
                                                                            tmp_path):
    """Under ``tsepipe run``, in a user namespace: the whole project full while the
    models are trained again (a stray file in models/ makes them out of date; the dataset
    as trained, so evaluate is skipped), the dataset's folder full (the merge stage's own
    exit 6), the DVC cache full (DVC's own write, no temporary file left in the cache), a
    read-only DVC remote at push (the version is committed all the same), then the
    reports' folder full when drift writes. Each: exit 6, one line, no traceback, no
    retry, the last good outputs in place. Between them, a stale ``.git/index.lock``: the
    run goes through, and one warning names the lock."""
    project = trained_project
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to mount a small tmpfs for this test")
    (project / "models/gru/.seed_1.keras.tmp-4242").write_bytes(b"")  # models out of date
    (tmp_path / "models.md5").write_text("".join(
        f"{file_md5(path)}  {path.relative_to(project)}\n"
        for path in sorted((project / "models").rglob("*")) if path.is_file()))
    (project / "dvcstore").mkdir()
    before = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    saved = tmp_path / "saved"
    script = textwrap.dedent(f"""
        cp -a {project} {saved} || exit 9
        mount -t tmpfs -o size=400m tmpfs {project} && cd {project} && cp -a {saved}/. . || exit 9
        mount -o remount,size=$(( $(df -k --output=used . | tail -1) + 48 ))k {project} || exit 9
        echo "== project"; {BIN}/tsepipe run --no-push 2>&1; echo "exit=$?"
        echo "models: $(md5sum --quiet -c {tmp_path}/models.md5 2>&1 | wc -l) changed"
        echo "left in the cache: $(find .dvc/cache -name '*.tmp' -o -type f -empty | wc -l)"
        cd / && umount {project} && cd {project} && rm -r {saved} || exit 9
        rm models/gru/.seed_1.keras.tmp-4242 || exit 9
        rm data/raw/IRX6XAFF0005.csv || exit 9  # a new dataset: every data stage runs
        size=$(( $(stat -c %s data/processed/merged.parquet) / 1024 + 24 ))
        cp -a data/processed {saved}
        mount -t tmpfs -o size=${{size}}k tmpfs data/processed || exit 9
        cp -a {saved}/. data/processed/
        echo "== dataset"; {BIN}/tsepipe run --no-train --no-push 2>&1; echo "exit=$?"
        umount data/processed || exit 9
        rm -r {saved} && cp -a .dvc/cache {saved}
        mount -t tmpfs -o size=200m tmpfs .dvc/cache && cp -a {saved}/. .dvc/cache/ || exit 9
        mount -o remount,size=$(( $(df -k --output=used .dvc/cache | tail -1) + 64 ))k \\
            .dvc/cache || exit 9
        echo "== cache"; {BIN}/tsepipe run --no-train --no-push 2>&1; echo "exit=$?"
        echo "left in the cache: $(find .dvc/cache -name '*.tmp' | wc -l)"
        umount .dvc/cache || exit 9
        mount --bind dvcstore dvcstore && mount -o remount,bind,ro dvcstore || exit 9
        echo "== remote"; {BIN}/tsepipe run --no-train 2>&1; echo "exit=$?"
        umount dvcstore || exit 9
        rm data/raw/IRX6XALS0002.csv && : > .git/index.lock || exit 9
        echo "== lock"; {BIN}/tsepipe run --no-train --no-push 2>&1; echo "exit=$?"
        rm .git/index.lock && rm -r {saved} && cp -a reports {saved}
        mount -t tmpfs -o size=200m tmpfs reports && cp -a {saved}/. reports/ || exit 9
        mount -o remount,size=$(( $(df -k --output=used reports | tail -1) + 64 ))k \
            reports || exit 9
        echo "== drift"; {BIN}/tsepipe run --no-retrain --no-push 2>&1; echo "exit=$?"
        echo "drift page: $(cmp -s reports/drift/index.html {saved}/drift/index.html; echo $?)"
        umount reports || exit 9
    """)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, env=isolated(tmp_path), timeout=600)
    if done.returncode == 9:
        pytest.fail(f"could not mount in a user namespace: {done.stdout[-2000:]}{done.stderr}")
    outputs = dict(part.split("\n", 1) for part in done.stdout.split("== ")[1:])
    assert set(outputs) == {"project", "dataset", "cache", "remote", "lock", "drift"}, (
        done.stdout[-3000:] + done.stderr)
    lock = outputs.pop("lock")
    assert "exit=0" in lock and "Traceback" not in lock, lock[-3000:]
    assert [line for line in lock.splitlines() if line.startswith("warning: the version")] == [
        "warning: the version is not committed to git: .git/index.lock exists: another git "
        "command is running, or one was stopped half-way; delete it if no git runs (rm "
        ".git/index.lock), then commit the version or run again"], lock[-3000:]
    full = "error: disk full writing the project: No space left on device; the previous " \
           "outputs are unchanged (free some space and run again)"
    expected = {
        "drift": full, "project": full,
        "dataset": "error: disk full writing the project: ",
        "cache": "error: disk full: DVC could not write .dvc/cache; dvc.lock still records "
                 "the last good outputs",
        "remote": f"error: the DVC remote local ({project}/dvcstore) cannot be written: "
                  "read-only file system; the data and the version stay here",
    }
    for case, output in outputs.items():
        assert "exit=6" in output, (case, output[-3000:])
        assert len(error_lines(output)) == 1, (case, output[-3000:])
        assert error_lines(output)[0].startswith(expected[case]), (case, error_lines(output))
        assert "Traceback" not in output and "Retrying" not in output, (case, output[-3000:])
    assert "left in the cache: 0" in outputs["cache"]
    assert "drift page: 0" in outputs["drift"]  # the last good page, as it was
    assert "Task run 'drift' - Finished in state WriteFailed" in outputs["drift"]
    assert "Task run 'train' - Finished in state WriteFailed" in outputs["project"], \
        outputs["project"][-3000:]
    assert "models: 0 changed" in outputs["project"]  # the last good models, stray file too
    assert "left in the cache: 0" in outputs["project"]
    # the refused push lost nothing: the data version is committed, its data in the cache
    # (then the lock's dataset, committed by the next run: two versions)
    committed = run(["git", "log", "--format=%s", f"{before}..HEAD"], project).stdout
    assert [line.split(":")[0] for line in committed.splitlines()] == [
        "Version from tsepipe-data"] * 2, committed
    assert "up to date" in run(["dvc", "status", *DATA_STAGES], project).stdout


def test_damaged_dvc_files_and_a_killed_stage_are_one_line_under_tsepipe_run(trained_project,
                                                                              tmp_path):
    """``dvc.lock`` that is not YAML and DVC's rwlock that is not JSON: a line each, before
    anything runs; the evaluate stage's process killed (SIGKILL, as the OOM killer does):
    one line, exit 137, no traceback (Prefect's task log included)."""
    project = trained_project
    lock, rwlock = project / "dvc.lock", project / ".dvc/tmp/rwlock"
    good_lock = lock.read_bytes()
    lock.write_text("schema: '2.0'\nstages: [ingest:\n", encoding="utf-8")
    rwlock.write_text('{"read": {', encoding="utf-8")
    done = tsepipe(["run", "--no-push"], project, tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert error_lines(done.stderr) == [
        "error: dvc.lock: not YAML (line 3, column 1): DVC cannot read the versions' record; "
        "`git checkout dvc.lock` brings back the last committed one",
        "error: .dvc/tmp/rwlock: DVC's lock file is not JSON; delete it when no dvc command "
        "runs (rm .dvc/tmp/rwlock), then run again"], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lock.write_bytes(good_lock)
    rwlock.unlink()

    set_params(project, "evaluate", refit_every=50)  # a retraining
    # DVC runs the stage through $SHELL; /bin/sh (dash) waits for it and reports 137, as
    # where SHELL is unset (CI); bash's -9 is read in tests/flows/test_stage_results.py
    started = subprocess.Popen([str(BIN / "tsepipe"), "run", "--no-push"], cwd=project,
                               env=isolated(tmp_path) | {"SHELL": "/bin/sh"},
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    killed = None
    deadline = time.monotonic() + 300
    try:
        while killed is None and time.monotonic() < deadline and started.poll() is None:
            for process in psutil.Process(started.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if is_stage(process, "evaluate"):
                        process.kill()
                        killed = process.pid
            time.sleep(0.1)
        output, _ = started.communicate(timeout=300)
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
    assert killed, output[-3000:]
    assert started.returncode == 128 + signal.SIGKILL, output[-3000:]
    assert error_lines(output) == [
        "error: the evaluate stage was killed (SIGKILL: out of memory, or stopped from "
        "outside); its last good outputs stay; run again"], output[-3000:]
    assert "Traceback" not in output and "Retrying" not in output, output[-3000:]
