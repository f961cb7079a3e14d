"""Every data and model version in git: record_version, history, checkout (real git, DVC)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.core.fileio import file_md5
from pipelines.ops import versions
from tests.conftest import copy_exports, run

TSEPIPE = str(Path(sys.executable).parent / "tsepipe")
DATASET = Path("data/processed/merged.parquet")
VERSION_FILES = {"dvc.lock", "data/raw.dvc"}


def git(project: Path, *args: str) -> str:
    return run(["git", *args], project).stdout.strip()


def committed_files(project: Path, rev: str = "HEAD") -> set[str]:
    return set(git(project, "show", "--name-only", "--format=", rev).split())


def trailers(project: Path, rev: str = "HEAD") -> dict[str, str]:
    text = git(project, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in text.splitlines() if line)


def write_version(project: Path, dataset_md5: str, raw_md5: str, rows: int,
                  champion: str | None = None, mcc: float | None = None,
                  evaluated_on: str | None = None) -> None:
    """What a data (and training) run leaves: dvc.lock, data/raw.dvc, summaries (no DVC)."""
    stages = {"merge": {"cmd": "tsepipe merge",
                        "outs": [{"path": str(DATASET), "hash": "md5", "md5": dataset_md5}]}}
    if evaluated_on:
        stages["evaluate"] = {"cmd": "tsepipe evaluate",
                              "deps": [{"path": str(DATASET), "md5": evaluated_on}]}
    (project / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    (project / "data").mkdir(exist_ok=True)
    (project / "data/raw.dvc").write_text(yaml.safe_dump(
        {"outs": [{"md5": raw_md5, "nfiles": 16, "hash": "md5", "path": "raw"}]}))
    summary = project / "data/processed/merge_summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps({"md5": dataset_md5, "rows": rows}))
    if champion:
        board = project / "reports/evaluation/leaderboard.json"
        board.parent.mkdir(parents=True, exist_ok=True)
        board.write_text(json.dumps({"champion": champion,
                                     "models": {champion: {"test": {"mcc": mcc}}}}))


def add_bare_origin(project: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], tmp_path)
    git(project, "remote", "add", "origin", str(bare))
    git(project, "push", "-q", "-u", "origin", "HEAD")
    return bare


def test_record_commits_only_the_version_files_with_trailers(project, caplog):
    (project / "README.md").write_text("edited, not staged\n")
    (project / "Makefile").write_text("staged, not committed\n")
    git(project, "add", "Makefile")
    (project / "notes.txt").write_text("untracked\n")
    before = git(project, "rev-parse", "HEAD")
    write_version(project, "a" * 32, "b" * 32 + ".dir", 300, champion="logistic_window",
                  mcc=0.05234, evaluated_on="a" * 32)

    with caplog.at_level("WARNING", logger="pipelines.ops.versions"):
        version = versions.record_version(project, "tsepipe-data", push=True)

    assert version is not None and version.pushed is None  # no remote: nothing to push
    # a push asked for without a remote says so, in one line, and how to add one
    assert [r.getMessage() for r in caplog.records] == [
        "warning: the version commit was not pushed: the repository has no git remote "
        "(add one: git remote add origin URL)"]
    assert git(project, "rev-parse", "HEAD~1") == before
    assert committed_files(project) == VERSION_FILES
    assert trailers(project) == {"Flow": "tsepipe-data", "Dataset-md5": "a" * 32,
                                 "Raw-md5": "b" * 32 + ".dir", "Rows": "300",
                                 "Champion": "logistic_window", "Test-MCC": "0.0523"}
    assert git(project, "log", "-1", "--format=%s") == (
        "Version from tsepipe-data: dataset aaaaaaaa, 300 rows; champion "
        "logistic_window, test MCC +0.052")
    # the other changes are where they were: staged, unstaged, untracked
    assert git(project, "diff", "--cached", "--name-only") == "Makefile"
    assert git(project, "diff", "--name-only") == "README.md"
    assert "?? notes.txt" in git(project, "status", "--porcelain")

    assert versions.record_version(project, "tsepipe-data") is None  # nothing changed
    assert git(project, "rev-parse", "HEAD") == version.commit

    [listed] = versions.history(project)
    assert (listed.commit, listed.flow, listed.dataset_md5, listed.raw_md5, listed.rows,
            listed.champion, listed.test_mcc) == (
        version.commit, "tsepipe-data", "a" * 32, "b" * 32 + ".dir", 300, "logistic_window",
        0.0523)


def set_param(project: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_version_records_its_parameters_and_metrics_and_history_shows_the_change(project):
    write_version(project, "a" * 32, "b" * 32, 300)
    first = versions.record_version(project, "tsepipe-data")
    assert first is not None and committed_files(project) == VERSION_FILES
    set_param(project, "split", "test_fraction", 0.25)
    set_param(project, "evaluate", "baselines", ["persistence"])
    assert versions.record_version(project, "tsepipe-data") is None  # edited, not run
    (project / "metrics").mkdir()
    (project / "metrics/headline.json").write_text('{"champion": "gru", "test_mcc": 0.1}\n')
    write_version(project, "c" * 32, "b" * 32, 280)  # what the run with them made

    second = versions.record_version(project, "tsepipe-train")

    assert second is not None
    assert committed_files(project) == {"dvc.lock", "params.yaml", "metrics/headline.json"}
    assert git(project, "status", "--porcelain", "--", "params.yaml", "metrics") == ""
    newest, oldest = versions.history(project)
    assert newest.params_changed == {"evaluate.baselines": [
        ["majority", "always_up", "persistence", "logistic", "logistic_window"], ["persistence"]],
        "split.test_fraction": [0.3, 0.25]}
    assert oldest.params_changed == {}  # the version before it holds the same params.yaml
    assert versions.history(project, limit=1)[0].params_changed == newest.params_changed
    table = run([TSEPIPE, "history"], project).stdout.splitlines()
    assert table[0].endswith("parameters changed")
    assert table[1].endswith('split.test_fraction 0.3 -> 0.25')
    assert table[2].endswith("-")
    listed = json.loads(run([TSEPIPE, "history", "--json"], project).stdout)
    assert listed[0]["params_changed"]["split.test_fraction"] == [0.3, 0.25]


def test_a_leaderboard_of_another_dataset_is_not_this_versions_champion(project):
    write_version(project, "c" * 32, "d" * 32, 250, champion="lstm", mcc=0.1,
                  evaluated_on="e" * 32)
    version = versions.record_version(project, "tsepipe-data")
    assert version is not None and version.champion is None and version.test_mcc is None
    assert "Champion" not in trailers(project)
    # the training run evaluates on this dataset: its record names the champion
    write_version(project, "c" * 32, "d" * 32, 250, champion="lstm", mcc=-0.1,
                  evaluated_on="c" * 32)
    version = versions.record_version(project, "tsepipe-train")
    assert version is not None and (version.champion, version.test_mcc) == ("lstm", -0.1)
    assert trailers(project)["Test-MCC"] == "-0.1000"
    assert [v.flow for v in versions.history(project)] == ["tsepipe-train", "tsepipe-data"]
    assert len(versions.history(project, limit=1)) == 1


def test_identity_falls_back_only_when_none_is_configured(project, tmp_path, monkeypatch):
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    write_version(project, "1" * 32, "2" * 32, 100)
    versions.record_version(project, "tsepipe-data")
    assert git(project, "log", "-1", "--format=%an <%ae>") == "tsepipe <tsepipe@localhost>"

    git(project, "config", "user.name", "Analyst")
    git(project, "config", "user.email", "analyst@example.org")
    write_version(project, "3" * 32, "2" * 32, 101)
    versions.record_version(project, "tsepipe-data")
    assert git(project, "log", "-1", "--format=%an <%ae>") == "Analyst <analyst@example.org>"


def test_push_lands_in_the_remote_and_a_rejected_push_is_rebased(project, tmp_path):
    bare = add_bare_origin(project, tmp_path)
    branch = git(project, "symbolic-ref", "--short", "HEAD")
    write_version(project, "4" * 32, "5" * 32, 120)
    first = versions.record_version(project, "tsepipe-data")
    assert first is not None and first.pushed is True and not first.warnings
    assert run(["git", "--git-dir", str(bare), "rev-parse", branch], tmp_path).stdout.strip() \
        == first.commit

    # someone else pushes meanwhile: our push is rejected, rebased once, pushed
    other = tmp_path / "other"
    run(["git", "clone", "-q", str(bare), str(other)], tmp_path)
    (other / "docs.txt").write_text("a colleague's change\n")
    git(other, "add", "docs.txt")
    git(other, "-c", "user.name=o", "-c", "user.email=o@o", "commit", "-qm", "docs")
    git(other, "push", "-q", "origin", "HEAD")
    (project / "README.md").write_text("unstaged, kept through the rebase\n")
    write_version(project, "6" * 32, "5" * 32, 121)
    second = versions.record_version(project, "tsepipe-data")
    assert second is not None and second.pushed is True, second.warnings
    remote_log = run(["git", "--git-dir", str(bare), "log", "--format=%s", branch],
                     tmp_path).stdout
    assert "docs" in remote_log and "dataset 66666666" in remote_log
    assert second.commit == git(project, "rev-parse", "HEAD") == run(
        ["git", "--git-dir", str(bare), "rev-parse", branch], tmp_path).stdout.strip()
    assert (project / "docs.txt").exists()
    assert (project / "README.md").read_text() == "unstaged, kept through the rebase\n"
    assert committed_files(project) == {"dvc.lock"}  # the raw snapshot did not change


def test_a_failed_push_is_a_warning_and_the_commit_stays(project, tmp_path):
    git(project, "remote", "add", "origin", str(tmp_path / "no-such-remote.git"))
    write_version(project, "7" * 32, "8" * 32, 130)
    version = versions.record_version(project, "tsepipe-data")
    assert version is not None and version.pushed is False
    assert version.warnings and "git push to origin failed" in version.warnings[0]
    assert git(project, "rev-parse", "HEAD") == version.commit
    assert versions.record_version(project, "tsepipe-data", push=False) is None


def test_a_refused_commit_is_an_error_that_leaves_the_index_as_it_was(project):
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'refused by the hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    write_version(project, "9" * 32, "8" * 32, 140)
    with pytest.raises(versions.VersionError, match="refused by the hook"):
        versions.record_version(project, "tsepipe-data")
    assert git(project, "diff", "--cached", "--name-only") == ""
    assert git(project, "log", "--format=%s") == "init"


def test_history_and_checkout_errors(project, tmp_path):
    assert versions.history(project) == []
    done = run([TSEPIPE, "history"], project)
    assert "no versions recorded" in done.stdout
    assert json.loads(run([TSEPIPE, "history", "--json"], project).stdout) == []
    done = run([TSEPIPE, "checkout", "no-such-rev"], project, check=False)
    assert done.returncode == 3, done.stderr
    assert "error: no-such-rev: unknown revision" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(versions.VersionError, match="records no data version"):
        versions.checkout(project, "HEAD")  # the initial commit has no dvc.lock
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(project / "params.yaml", outside / "params.yaml")
    with pytest.raises(versions.VersionError, match="not in a git work tree"):
        versions.history(outside)
    done = run([TSEPIPE, "checkout", "HEAD"], outside, check=False)
    assert done.returncode == 3 and "not a tsepipe project" in done.stderr
    assert not (outside / ".dvc").exists()


def dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], project)


def data_version(project: Path) -> str:
    """``dvc add`` the raw folder and run the data stages (as the data flow does)."""
    dvc(project, "add", "--quiet", "data/raw")
    dvc(project, "repro", "--quiet", "merge")
    return file_md5(project / DATASET)


@pytest.mark.slow
def test_versions_with_real_dvc(project, small_sample_dir, tmp_path):
    """Two data versions recorded, listed, pushed; the first checked out again."""
    bare = add_bare_origin(project, tmp_path)
    raw = copy_exports(small_sample_dir, project / "data" / "raw")
    first_md5 = data_version(project)
    first = versions.record_version(project, "tsepipe-data")
    assert first is not None and first.pushed is True
    assert committed_files(project) == VERSION_FILES  # the data stages write no metrics
    assert first.dataset_md5 == first_md5 and first.rows == 300
    assert trailers(project)["Dataset-md5"] == first_md5

    (raw / "IRX6XWAI0001.csv").unlink()  # the data change: one index fewer
    (project / "README.md").write_text("an unrelated edit\n")
    second_md5 = data_version(project)
    assert second_md5 != first_md5
    second = versions.record_version(project, "tsepipe-data")
    assert second is not None and second.dataset_md5 == second_md5
    assert committed_files(project) == VERSION_FILES  # the data stages write no metrics
    assert versions.record_version(project, "tsepipe-data") is None

    listed = json.loads(run([TSEPIPE, "history", "--json"], project).stdout)
    assert [(v["commit"], v["dataset_md5"], v["rows"]) for v in listed] == [
        (second.commit, second_md5, 300), (first.commit, first_md5, 300)]
    table = run([TSEPIPE, "history"], project).stdout.splitlines()
    assert table[0].split()[:3] == ["date", "commit", "flow"] and len(table) == 3
    assert first_md5[:8] in table[2] and first.commit[:8] in table[2]
    assert second_md5[:8] in table[1]
    pushed = run(["git", "--git-dir", str(bare), "log", "--format=%H", "--all"],
                 tmp_path).stdout.split()
    assert {first.commit, second.commit} <= set(pushed)

    done = run([TSEPIPE, "checkout", first.commit[:10]], project)
    assert f"dataset md5 {first_md5}" in done.stdout
    assert file_md5(project / DATASET) == first_md5
    assert (raw / "IRX6XWAI0001.csv").exists()
    assert "M dvc.lock" in git(project, "status", "--porcelain")
    assert git(project, "rev-parse", "HEAD") == second.commit  # only the files moved

    # a version whose dataset is neither in the cache nor on the (empty) remote
    cached = project / ".dvc" / "cache" / "files" / "md5" / second_md5[:2] / second_md5[2:]
    cached.unlink()
    done = run([TSEPIPE, "checkout", second.commit], project, check=False)
    assert done.returncode == 3, done.stderr
    assert "neither in the DVC cache nor on the DVC remote" in done.stderr
    assert f"missing: {DATASET}" in done.stderr
    assert file_md5(project / DATASET) == first_md5  # the workspace as it was
    assert (raw / "IRX6XWAI0001.csv").exists()


def test_a_refused_commit_ends_the_run_with_a_warning_not_a_crash(project):
    """The flows publish the version; git refusing the commit is then a warning and the
    run's outputs stay (the version is left uncommitted, as a person would fix it)."""
    from prefect.logging import disable_run_logger

    from flows.stages import publish_version

    hook = project / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'refused by the hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    write_version(project, "9" * 32, "8" * 32, 140)
    with disable_run_logger():  # the flow's logger, outside a flow run
        result = publish_version(str(project), "tsepipe-data", push_remote=False,
                                 commit=True, push_git=False)
    assert list(result) == ["uncommitted"]
    assert any("refused by the hook" in line for line in result["uncommitted"])
    assert git(project, "log", "--format=%s") == "init"
    assert (project / "dvc.lock").exists()  # the outputs stay, uncommitted


def test_a_versions_params_that_todays_schema_refuses_is_not_brought_back(project):
    """An old version's params.yaml with a key this tsepipe no longer has (a checkout of a
    version made before an upgrade): the current file stays, with a warning naming why."""
    current = (project / "params.yaml").read_bytes()
    (project / "params.yaml").write_text(current.decode() + "\nretired_section:\n  key: 1\n")
    warnings = versions._keep_readable_params(project, {"params.yaml": current})
    assert (project / "params.yaml").read_bytes() == current
    assert len(warnings) == 1 and "retired_section" in warnings[0], warnings
    assert versions._keep_readable_params(project, {"params.yaml": current}) == []


def test_a_stale_index_lock_is_one_line_that_names_it(project):
    """git's lock left by a killed git: one line naming it and the way back, not git's
    advice cut in three; the index as it was, and the commit goes once it is deleted."""
    from flows.stages import commit_version

    write_version(project, "a" * 32, "8" * 32, 150)
    lock = project / ".git" / "index.lock"
    lock.write_bytes(b"")
    with pytest.raises(versions.VersionError) as raised:
        versions.record_version(project, "tsepipe-data")
    expected = [".git/index.lock exists: another git command is running, or one was stopped "
                "half-way; delete it if no git runs (rm .git/index.lock), then commit the "
                "version or run again"]
    assert raised.value.lines == expected
    # the flow's task: the same line as its result (a warning of the run), not a traceback
    assert commit_version.fn(str(project), "tsepipe-data", False) == {"uncommitted": expected}
    lock.unlink()
    assert git(project, "diff", "--cached", "--name-only") == ""
    assert versions.record_version(project, "tsepipe-data", push=False) is not None


def test_the_models_tag_goes_to_the_remote_the_branch_pushes_to(project, tmp_path):
    """Two remotes, the branch's upstream not origin: the version and its GTO tag both go
    to the upstream."""
    origin = add_bare_origin(project, tmp_path)
    team = tmp_path / "team.git"
    run(["git", "init", "-q", "--bare", str(team)], tmp_path)
    git(project, "remote", "add", "team", str(team))
    git(project, "push", "-q", "-u", "team", "HEAD")
    assert git(project, "config", "--get", f"branch.{git(project, 'branch', '--show-current')}"
               ".remote") == "team"
    write_version(project, "b" * 32, "8" * 32, 160)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    lock["stages"]["train"] = {"cmd": "tsepipe train", "outs": [
        {"path": "models", "hash": "md5", "md5": "c" * 32 + ".dir"}]}
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))

    version = versions.record_version(project, "tsepipe-train")

    assert version is not None and version.pushed and not version.warnings
    assert version.model_version == "tedpix-models@v0.0.1"
    tags = {name: run(["git", "tag", "--list"], remote).stdout.split()
            for name, remote in (("team", team), ("origin", origin))}
    assert tags == {"team": ["tedpix-models@v0.0.1"], "origin": []}
