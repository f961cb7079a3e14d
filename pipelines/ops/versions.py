"""Every data and model version in git: record one, list them, go back to one.

A version is what ``dvc.lock`` and the raw folder's DVC file (``data/raw.dvc``) record:
the hashes of the raw exports, the merged dataset and every stage's outputs. The data
themselves live in the DVC cache and on the DVC remote; git holds these two small files,
and with them what made the version and what it scored: ``params.yaml``, ``dvc.yaml``
and the headline metrics file (``paths.headline_metrics``: the champion, its test MCC and
interval, the best baseline's), so that ``dvc params diff`` and ``dvc metrics diff``
compare two versions. One commit per version, with the facts as git
trailers so that ``history`` can show them without the data::

    Version from tsepipe-train: dataset 22277fa3, 300 rows; champion gru, test MCC +0.052

    Flow: tsepipe-train
    Dataset-md5: 22277fa37c09fdf8dea3127504d8f021
    Raw-md5: 43045a7f712f01fb25b35b1aef49adf9.dir
    Rows: 300
    Champion: gru
    Test-MCC: 0.0520

Plain functions over git and DVC (``python -m dvc`` of this interpreter), no Prefect.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.errors import DataError, printable
from pipelines.core.fileio import file_md5
from pipelines.core.params.load import load_params
from pipelines.core.provenance import recorded_md5

log = logging.getLogger("pipelines.ops.versions")

LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"  # what DVC reads; tsepipe run --params copies a file here
PIPELINE_FILE = "dvc.yaml"
MERGE_STAGE = "merge"
EVALUATE_STAGE = "evaluate"
GIT_TIMEOUT_S = 60.0  # local git commands
PUSH_TIMEOUT_S = 120.0  # git push / pull --rebase, each
DVC_CHECKOUT_TIMEOUT_S = 600.0
DVC_PULL_TIMEOUT_S = 900.0
ASIDE_DIR = Path(".dvc") / "tmp" / "aside"  # outputs a checked-out version lacks (git-ignored)
FALLBACK_IDENTITY = {"user.name": "tsepipe", "user.email": "tsepipe@localhost"}
TRAILERS = {  # trailer key -> Version field
    "Flow": "flow",
    "Dataset-md5": "dataset_md5",
    "Raw-md5": "raw_md5",
    "Rows": "rows",
    "Champion": "champion",
    "Test-MCC": "test_mcc",
}


class VersionError(DataError):
    """A version cannot be recorded, read or checked out (exit status 3)."""


@dataclass
class Version:
    """One recorded version: a git commit of ``dvc.lock`` and the raw folder's DVC file."""

    commit: str  # full hash
    date: str  # author date, ISO 8601
    flow: str | None = None
    dataset_md5: str | None = None
    raw_md5: str | None = None
    rows: int | None = None
    champion: str | None = None
    test_mcc: float | None = None
    subject: str = ""
    params_changed: dict[str, list[Any]] = field(default_factory=dict)  # history: key ->
    # [value in the previous version, value in this one]
    pushed: bool | None = None  # record_version only: None when not asked or no remote
    model_version: str | None = None  # record_version only: the models' GTO tag, if new
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- subprocesses ------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, timeout: float | None = None, input: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``args``; on timeout kill its whole process group (ssh too) and return 124."""
    with subprocess.Popen(args, cwd=cwd, env=env, text=True, start_new_session=True,
                          stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            out, err = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            return subprocess.CompletedProcess(
                args, 124, out, f"{err}\ntimed out after {timeout:g} s".lstrip())
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def _git_env() -> dict[str, str]:
    # never wait for a password: no terminal prompt (and no tty: start_new_session)
    return os.environ | {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _git(project: Path, *args: str, check: bool = True, timeout: float = GIT_TIMEOUT_S,
         input: str | None = None) -> subprocess.CompletedProcess:
    done = _run(["git", *args], project, timeout=timeout, input=input, env=_git_env())
    if check and done.returncode != 0:
        stale_lock = "index.lock': File exists" in done.stderr and _index_lock_problem(project)
        raise VersionError(stale_lock or f"git {' '.join(args[:2])} failed: "
                                         f"{_last_lines(done)}")
    return done


def _index_lock_problem(project: Path) -> str | None:
    """The line for a ``.git/index.lock`` that is there (git's lock on its index: a git
    command runs, or one was killed and left it), or None."""
    found = _run(["git", "rev-parse", "--git-path", "index.lock"], project,
                 timeout=GIT_TIMEOUT_S, env=_git_env()).stdout.strip()
    lock = project / found if found else project / ".git" / "index.lock"
    if not lock.exists():
        return None
    shown = printable(os.path.relpath(lock, project))
    return (f"{shown} exists: another git command is running, or one was stopped half-way; "
            f"delete it if no git runs (rm {shown}), then commit the version or run again")


def _dvc(project: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``dvc ARGS`` with this interpreter's DVC, this environment's ``tsepipe`` on the PATH."""
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    return _run([sys.executable, "-m", "dvc", *args], project, timeout=timeout, env=env)


def _last_lines(done: subprocess.CompletedProcess, n: int = 3) -> str:
    lines = [line.strip() for line in f"{done.stdout or ''}\n{done.stderr or ''}".splitlines()
             if line.strip()]
    return printable("; ".join(lines[-n:]) or f"exit status {done.returncode}")


# -- the project's version files ---------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    raw_dvc: str  # the raw folder's DVC file, relative to the project (posix)
    dataset: Path  # relative to the project
    merge_summary: Path
    leaderboard: Path
    metrics: tuple[str, ...] = ()  # the DVC metrics files (posix): the headline

    @property
    def data_files(self) -> list[str]:
        """What identifies a version: a commit that changes one is a version."""
        return [LOCK_FILE, self.raw_dvc]

    @property
    def restored(self) -> list[str]:
        """What a checkout brings back: the data files, the parameters, the metrics."""
        return [*self.data_files, PARAMS_FILE, *self.metrics]

    @property
    def files(self) -> list[str]:
        """What a version commit holds: the data files, what made them (the parameters
        and the pipeline) and what they scored (the metrics)."""
        return [*self.data_files, PARAMS_FILE, PIPELINE_FILE, *self.metrics]


def _layout(project: Path, params_file: Path | None) -> _Layout:
    # params_file: as given (relative to the working folder, like --params)
    where = load_params(project / PARAMS_FILE if params_file is None else params_file).paths
    return _Layout(raw_dvc=where.raw_dvc.as_posix(), dataset=where.dataset,
                   merge_summary=where.merge_summary, leaderboard=where.leaderboard,
                   metrics=tuple(path.as_posix() for path in where.metrics_files))


def version_files(project: Path, params_file: Path | None = None) -> list[str]:
    """The files a version commit holds: ``dvc.lock``, the raw folder's DVC file,
    ``params.yaml``, ``dvc.yaml`` and the metrics file (``paths.metrics_files``)."""
    return _layout(Path(project), params_file).files


def require_repo(project: Path) -> None:
    """A ``VersionError`` (one line, the way out) unless ``project`` is in a git work tree:
    DVC tracks the data there and tsepipe commits each version to it."""
    if not project.is_dir():
        raise VersionError(f"{project}: no such folder")
    done = _git(project, "rev-parse", "--is-inside-work-tree", check=False)
    if done.returncode != 0 or done.stdout.strip() != "true":
        raise VersionError(f"{project}: not in a git work tree: DVC and the versions need "
                           "one (git init && git add -A && git commit -m start, or run "
                           "tsepipe from the project's checkout)")


def _locked_md5(lock: dict[str, Any], stage: str, path: Path) -> str | None:
    entry = (lock.get("stages") or {}).get(stage) or {}
    for item in (entry.get("deps") or []) + (entry.get("outs") or []):
        if Path(item.get("path", "")) == Path(path):
            return item.get("md5")
    return None


def _yaml(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _one_line(text: object) -> str:
    return " ".join(printable(text).split())


def _workspace_facts(project: Path, layout: _Layout) -> dict[str, Any]:
    """Dataset md5, raw md5, rows, champion and its test MCC, as the workspace has them."""
    lock = _yaml(_read(project / LOCK_FILE))
    dataset_md5 = _locked_md5(lock, MERGE_STAGE, layout.dataset)
    facts: dict[str, Any] = {
        "dataset_md5": dataset_md5,
        "raw_md5": recorded_md5(_yaml(_read(project / layout.raw_dvc))),
        "rows": _rows(project, layout, dataset_md5),
        "champion": None, "test_mcc": None,
    }
    board_text = _read(project / layout.leaderboard)
    evaluated_on = _locked_md5(lock, EVALUATE_STAGE, layout.dataset)
    if board_text and (evaluated_on is None or evaluated_on == dataset_md5):
        # a leaderboard evaluated on another dataset is not this version's: left out
        try:
            board = json.loads(board_text)
            champion = board.get("champion")
            mcc = ((board.get("models") or {}).get(champion) or {}).get("test", {}).get("mcc")
        except (ValueError, AttributeError):
            champion, mcc = None, None
        if champion:
            facts["champion"] = _one_line(champion)
            if isinstance(mcc, int | float) and math.isfinite(mcc):
                facts["test_mcc"] = float(mcc)
    return facts


def _rows(project: Path, layout: _Layout, dataset_md5: str | None) -> int | None:
    """Trading days in the dataset: the merge summary's count, else the Parquet footer."""
    summary = _read(project / layout.merge_summary)
    if summary:
        try:
            payload = json.loads(summary)
        except ValueError:
            payload = {}
        if isinstance(payload.get("rows"), int) and (
                dataset_md5 is None or payload.get("md5") in (None, dataset_md5)):
            return payload["rows"]
    if (project / layout.dataset).is_file():
        try:
            import pyarrow.parquet as pq

            return int(pq.read_metadata(project / layout.dataset).num_rows)
        except (OSError, ValueError, ImportError):
            return None
    return None


def commit_message(flow: str, facts: dict[str, Any]) -> str:
    """Subject, blank line, then one trailer per known fact (see the module docstring)."""
    flow = _one_line(flow) or "tsepipe"
    parts = []
    if facts.get("dataset_md5"):
        parts.append(f"dataset {facts['dataset_md5'][:8]}")
    if facts.get("rows") is not None:
        parts.append(f"{facts['rows']} rows")
    subject = f"Version from {flow}: " + (", ".join(parts) or "dvc.lock updated")
    if facts.get("champion"):
        subject += f"; champion {facts['champion']}"
        if facts.get("test_mcc") is not None:
            subject += f", test MCC {facts['test_mcc']:+.3f}"
    values = {"flow": flow} | facts
    trailers = []
    for key, name in TRAILERS.items():
        value = values.get(name)
        if value is None or value == "":
            continue
        text = f"{value:.4f}" if name == "test_mcc" else _one_line(value)
        trailers.append(f"{key}: {text}")
    return f"{subject}\n\n" + "\n".join(trailers) + "\n"


def git_identity(project: Path) -> list[str]:
    """``-c user.name=... -c user.email=...`` for whichever git has no value configured."""
    args = []
    for key, env_names in (("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")),
                           ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"))):
        configured = _git(project, "config", "--get", key, check=False).stdout.strip()
        from_env = all(os.environ.get(name) for name in env_names) or (
            key == "user.email" and os.environ.get("EMAIL"))
        if not configured and not from_env:
            args += ["-c", f"{key}={FALLBACK_IDENTITY[key]}"]
    return args


def _uncommitted(project: Path, files: list[str]) -> list[str]:
    # one file at a time: porcelain paths are relative to the repository's root, not ours
    return [name for name in files if _git(project, "status", "--porcelain",
                                           "--untracked-files=all", "--", name).stdout.strip()]


def uncommitted(project: Path, *, params_file: Path | None = None) -> list[str]:
    """The version files (``version_files``) that differ from HEAD or are new."""
    project = Path(project).resolve()
    require_repo(project)
    return _uncommitted(project, _layout(project, params_file).files)


# -- record ------------------------------------------------------------------------------


def record_version(project: Path, flow: str, push: bool = True, *,
                   params_file: Path | None = None) -> Version | None:
    """Commit the version files if ``dvc.lock`` or the raw folder's DVC file changed; push.

    The commit holds ``dvc.lock``, the raw DVC file, ``params.yaml``, ``dvc.yaml`` and the
    metrics files, those of them that changed (``git commit --only``): other staged or
    unstaged changes stay as they were, uncommitted. The message names ``flow`` and
    carries the dataset md5 (as ``dvc.lock`` records the merge stage's output), the raw
    snapshot's md5, the rows, and the champion with its test MCC (from the leaderboard,
    unless ``dvc.lock`` says it was evaluated on another dataset) as git trailers. With
    nothing changed there is no commit and the result is None.

    When ``push`` is true and the repository has a remote, the current branch is pushed
    (to its upstream, else ``origin``), each try bounded by ``PUSH_TIMEOUT_S``; a rejected
    push is retried once after ``git pull --rebase`` (``Version.commit`` is then the
    rebased commit). A failed push, or no remote to push to (``NO_GIT_REMOTE``), is a
    warning (logged, and in ``Version.warnings``), never an error: the commit stays.
    """
    project = Path(project).resolve()
    require_repo(project)
    layout = _layout(project, params_file)
    changed = _uncommitted(project, layout.files)  # new, modified or deleted
    if not set(changed) & set(layout.data_files):
        return None  # parameters edited but not run: not a version
    stale_lock = _index_lock_problem(project)
    if stale_lock:  # git would refuse to add, in words that do not name it
        raise VersionError(stale_lock)
    facts = _workspace_facts(project, layout)
    identity = git_identity(project)
    _git(project, "add", "--", *changed)  # an untracked path cannot be given to --only
    try:
        _git(project, *identity, "commit", "--quiet", "--only", "--file=-", "--", *changed,
             input=commit_message(flow, facts))
    except VersionError:
        _git(project, "reset", "--quiet", "--", *changed, check=False)  # as they were
        raise
    head = _git(project, "log", "-1", "--format=%H%x1f%aI%x1f%s").stdout.strip().split("\x1f")
    version = Version(commit=head[0], date=head[1], subject=head[2],
                      flow=_one_line(flow) or "tsepipe", **facts)
    log.info("recorded version %s: %s", version.commit[:8], version.subject)
    if push:
        version.pushed, version.warnings = _push(project, identity)
        version.commit = _git(project, "rev-parse", "HEAD").stdout.strip()  # if rebased
    version.model_version = _register_models(project, identity, version)
    if version.model_version and version.pushed:
        version.warnings += _push_tag(project, version.model_version)
    for warning in version.warnings:
        log.warning("warning: %s", warning)
    return version


def model_artifact(project: Path) -> tuple[str, str] | None:
    """(name, path) of the model artifact that ``dvc.yaml``'s ``artifacts:`` declares."""
    declared = _yaml(_read(project / PIPELINE_FILE)).get("artifacts") or {}
    for name, spec in declared.items():
        if isinstance(spec, dict) and spec.get("type") == "model" and spec.get("path"):
            return str(name), str(spec["path"])
    return None


def _register_models(project: Path, identity: list[str], version: Version) -> str | None:
    """When this version's models differ from the last version's, register them as the
    next version of the model artifact: a GTO tag ``NAME@vX.Y.Z`` on the commit (what
    ``dvc artifacts get REPO NAME`` and ``gto show`` read); the tag, or None."""
    artifact = model_artifact(project)
    if artifact is None:
        return None
    name, path = artifact
    now = _recorded_md5(_yaml(_read(project / LOCK_FILE)), Path(path))
    before = _recorded_md5(_yaml(_show(project, f"{version.commit}~1", LOCK_FILE)), Path(path))
    if now is None or now == before:
        return None
    listed = _git(project, "tag", "--list", f"{name}@v*", check=False).stdout.split()
    numbers = [int(tag.rsplit(".", 1)[1]) for tag in listed
               if tag.startswith(f"{name}@v0.0.") and tag.rsplit(".", 1)[1].isdigit()]
    tag = f"{name}@v0.0.{max(numbers, default=0) + 1}"
    champion = f"; champion {version.champion}" if version.champion else ""
    done = _git(project, *identity, "tag", "-a", tag, "-m",
                f"Registering artifact {name} version {tag.split('@')[1]}{champion}",
                version.commit, check=False)
    if done.returncode != 0:
        version.warnings.append(f"the models were not registered as {tag} (git tag failed: "
                                f"{_last_lines(done)})")
        return None
    log.info("registered %s (dvc artifacts get . %s)", tag, name)
    return tag


def _recorded_md5(lock: dict[str, Any], path: Path) -> str | None:
    """The md5 that any stage of ``dvc.lock`` records for ``path``."""
    return next(filter(None, (_locked_md5(lock, stage, path)
                              for stage in lock.get("stages") or {})), None)


def _push_tag(project: Path, tag: str) -> list[str]:
    """Push ``tag`` where the version's branch was pushed."""
    remote, _ = _push_target(project, _git(project, "remote", check=False).stdout.split())
    done = _git(project, "push", "--quiet", remote, f"refs/tags/{tag}", check=False,
                timeout=PUSH_TIMEOUT_S)
    return [] if done.returncode == 0 else [
        f"git push of the tag {tag} failed (push it later): {_last_lines(done)}"]


def _push_target(project: Path, remotes: list[str], branch: str = "") -> tuple[str, str]:
    """(remote, ref) a version is pushed to: the branch's upstream, else origin (or the
    first remote) and the branch of the same name."""
    branch = branch or _git(project, "symbolic-ref", "--quiet", "--short", "HEAD",
                            check=False).stdout.strip()
    remote = _git(project, "config", "--get", f"branch.{branch}.remote",
                  check=False).stdout.strip()
    if remote not in remotes:
        remote = "origin" if "origin" in remotes else remotes[0]
    merge = _git(project, "config", "--get", f"branch.{branch}.merge", check=False).stdout.strip()
    return remote, merge or f"refs/heads/{branch}"


NO_GIT_REMOTE = ("the version commit was not pushed: the repository has no git remote "
                 "(add one: git remote add origin URL)")


def _push(project: Path, identity: list[str]) -> tuple[bool | None, list[str]]:
    """Push the current branch: (pushed, warnings); (None, [why]) when there is no remote."""
    remotes = _git(project, "remote", check=False).stdout.split()
    if not remotes:
        return None, [NO_GIT_REMOTE]
    branch = _git(project, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if branch.returncode != 0:
        return False, ["HEAD is detached: the version commit was not pushed"]
    remote, target = _push_target(project, remotes, branch.stdout.strip())
    pushed = _git(project, "push", "--quiet", remote, f"HEAD:{target}", check=False,
                  timeout=PUSH_TIMEOUT_S)
    if pushed.returncode == 0:
        return True, []
    rejected = any(word in pushed.stderr for word in ("rejected", "fetch first",
                                                      "non-fast-forward"))
    if not rejected:
        return False, [f"git push to {remote} failed (the commit stays, push it later): "
                       f"{_last_lines(pushed)}"]
    pulled = _git(project, *identity, "pull", "--quiet", "--rebase", "--autostash", remote,
                  target, check=False, timeout=PUSH_TIMEOUT_S)
    if pulled.returncode != 0:
        _git(project, "rebase", "--abort", check=False)  # if a conflict stopped it
        return False, [f"git push to {remote} was rejected and git pull --rebase failed (the "
                       f"commit stays, merge and push it by hand): {_last_lines(pulled)}"]
    again = _git(project, "push", "--quiet", remote, f"HEAD:{target}", check=False,
                 timeout=PUSH_TIMEOUT_S)
    if again.returncode != 0:
        return False, [f"git push to {remote} failed after git pull --rebase (the commit "
                       f"stays, push it later): {_last_lines(again)}"]
    return True, []


# -- history -----------------------------------------------------------------------------


_LOG_FORMAT = "%x1e%H%x1f%aI%x1f%s%x1f%(trailers:only,unfold)"


def _parse_trailers(text: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        name = TRAILERS.get(key.strip())
        if not sep or name is None or name in values:
            continue
        value = value.strip()
        try:
            values[name] = (int(value) if name == "rows" else
                            float(value) if name == "test_mcc" else value)
        except ValueError:
            continue
    return values


def _versions(project: Path, layout: _Layout, *log_args: str) -> list[Version]:
    done = _git(project, "log", f"--format={_LOG_FORMAT}", *log_args, "--",
                *layout.data_files, check=False)
    if done.returncode != 0:  # no commits yet
        return []
    versions = []
    for record in done.stdout.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) < 4:
            continue
        sha, date, subject, trailers = fields[0], fields[1], fields[2], fields[3]
        version = Version(commit=sha, date=date, subject=subject, **_parse_trailers(trailers))
        if version.dataset_md5 is None:  # not recorded by tsepipe: read what git holds
            lock = _yaml(_show(project, sha, LOCK_FILE))
            version.dataset_md5 = _locked_md5(lock, MERGE_STAGE, layout.dataset)
        if version.raw_md5 is None:
            version.raw_md5 = recorded_md5(_yaml(_show(project, sha, layout.raw_dvc)))
        versions.append(version)
    return versions


def _show(project: Path, sha: str, path: str) -> str | None:
    done = _git(project, "show", f"{sha}:./{path}", check=False)
    return done.stdout if done.returncode == 0 else None


def history(project: Path, limit: int | None = None, *,
            params_file: Path | None = None) -> list[Version]:
    """The versions in ``git log`` of ``dvc.lock`` and the raw DVC file, newest first.

    Facts come from the commit trailers; a commit made by hand (no trailers) still shows
    the dataset and raw md5s that its files record. ``params_changed``: the parameters
    that differ from the version before (from ``params.yaml`` as each commit holds it;
    empty for the first version, or where a commit holds none). ``limit``: at most this
    many.
    """
    project = Path(project).resolve()
    require_repo(project)
    layout = _layout(project, params_file)
    args = [f"--max-count={limit + 1}"] if limit is not None else []
    versions = _versions(project, layout, *args)
    flat = [_flat_params(project, version.commit) for version in versions]
    for version, now, before in zip(versions, flat, flat[1:], strict=False):
        if now is not None and before is not None:
            version.params_changed = {key: [before.get(key), now.get(key)]
                                      for key in sorted(now.keys() | before.keys())
                                      if now.get(key) != before.get(key)}
    return versions[:limit]


def _flat_params(project: Path, sha: str) -> dict[str, Any] | None:
    """``params.yaml`` at ``sha`` as dotted keys (``split.test_fraction``), or None."""
    text = _show(project, sha, PARAMS_FILE)
    if text is None:
        return None
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(_yaml(text), "")
    return flat


# -- checkout ----------------------------------------------------------------------------


def _dvc_stage_names(project: Path) -> set[str]:
    return set(_yaml(_read(project / "dvc.yaml")).get("stages") or {})


def _checkout_targets(project: Path, layout: _Layout) -> list[str]:
    """The raw DVC file (if any) and each stage that ``dvc.lock`` records and dvc.yaml has."""
    targets = [layout.raw_dvc] if (project / layout.raw_dvc).exists() else []
    locked = _yaml(_read(project / LOCK_FILE)).get("stages") or {}
    known = _dvc_stage_names(project)
    return targets + [stage for stage in locked if stage in known]


def _dvc_failure(done: subprocess.CompletedProcess) -> tuple[str, list[str]]:
    """Why ``dvc checkout``/``pull`` failed: (a reason, then the outputs or DVC's lines)."""
    text = f"{done.stdout or ''}\n{done.stderr or ''}"
    missing, problems, listing = [], [], False
    for line in (line.strip() for line in text.splitlines()):
        if "Checkout failed for following targets" in line:
            listing = True
        elif listing and line and not line.startswith(("Is your cache", "<http", "ERROR",
                                                       "WARNING")):
            missing.append(line)
        else:
            listing = False
            if line.startswith(("ERROR", "timed out")):
                problems.append(line.removeprefix("ERROR: "))
    if done.returncode == 124:
        reason = "dvc timed out"
    elif missing or "Missing cache files" in text or "not found" in text:
        reason = "its data are neither in the DVC cache nor on the DVC remote"
    elif "without confirmation" in text:
        reason = ("dvc checkout would delete workspace files saved nowhere (not in the DVC "
                  "cache): dvc commit or move them first")
    else:
        reason = "dvc checkout failed"
    lines = [f"missing: {printable(path)}" for path in dict.fromkeys(missing)]
    if not missing:
        lines = [printable(line) for line in problems[:4]] or [_last_lines(done)]
    return reason, lines


def _dvc_failure_line(done: subprocess.CompletedProcess) -> str:
    """``_dvc_failure`` in one line: the reason, then at most three of its lines."""
    reason, lines = _dvc_failure(done)
    more = f" and {len(lines) - 3} more" if len(lines) > 3 else ""
    return f"{reason} ({'; '.join(lines[:3])}{more})"


def _has_dvc_remote(project: Path) -> bool:
    done = _dvc(project, "remote", "default", timeout=GIT_TIMEOUT_S)
    return done.returncode == 0 and bool(done.stdout.strip())


def checkout(project: Path, rev: str, *, params_file: Path | None = None) -> Version:
    """Bring back the data (and model) version recorded at ``rev``.

    ``dvc.lock``, ``data/raw.dvc``, ``params.yaml`` and the metrics files as of REV (those
    it holds) are written to the work tree (``git restore --source REV --worktree``:
    ``git checkout REV -- ...`` that leaves the index alone),
    then ``dvc checkout`` of the raw folder and of every stage that version's
    ``dvc.lock`` records; what is missing from the DVC cache is pulled from the default
    DVC remote when there is one (bounded by ``DVC_PULL_TIMEOUT_S``). Afterwards the
    workspace's dataset has that version's md5. What that version lacks (``_not_in_version``:
    a data-only version's models and reports) is moved aside into ``ASIDE_DIR/<time>/``.

    The checkout leaves those files modified relative to HEAD: commit them to make that
    version the current one, or restore them (``git checkout HEAD -- FILES && dvc
    checkout``) to go back.

    Raises ``VersionError`` for an unknown revision, a revision with no ``dvc.lock``, or a
    version whose data are neither in the cache nor on the remote; then the two files and
    the workspace's data are put back as they were.
    """
    project = Path(project).resolve()
    require_repo(project)
    layout = _layout(project, params_file)
    rev = rev.strip()
    resolved = _git(project, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}",
                    check=False) if rev and not rev.startswith("-") else None
    if resolved is None or resolved.returncode != 0:
        raise VersionError(f"{printable(rev)}: unknown revision (see tsepipe history)")
    sha = resolved.stdout.strip()
    present = [f for f in layout.restored if _show(project, sha, f) is not None]
    if LOCK_FILE not in present:
        raise VersionError(f"{printable(rev)} ({sha[:8]}): records no data version (no "
                           f"{LOCK_FILE} in that commit; see tsepipe history)")
    saved = {f: (project / f).read_bytes() if (project / f).is_file() else None
             for f in present}
    _git(project, "restore", f"--source={sha}", "--worktree", "--", *present)
    kept = _keep_readable_params(project, saved)
    targets = _checkout_targets(project, layout)
    done = _dvc(project, "checkout", *targets, timeout=DVC_CHECKOUT_TIMEOUT_S)
    if done.returncode != 0 and _has_dvc_remote(project):
        log.info("some data of %s are not in the DVC cache: dvc pull", sha[:8])
        done = _dvc(project, "pull", *targets, timeout=DVC_PULL_TIMEOUT_S)
    if done.returncode != 0:
        _put_back(project, layout, saved)
        raise VersionError(f"{printable(rev)} ({sha[:8]}): {_dvc_failure_line(done)}; the "
                           "workspace is left as it was")
    version = _version_at(project, layout, sha)
    version.warnings += kept
    version.warnings += _move_aside(project, _not_in_version(project, layout, saved, present))
    locked = _locked_md5(_yaml(_read(project / LOCK_FILE)), MERGE_STAGE, layout.dataset)
    if locked and (project / layout.dataset).is_file():
        actual = file_md5(project / layout.dataset)
        if actual != locked:
            raise VersionError(f"{layout.dataset}: md5 {actual} after dvc checkout, but "
                               f"{printable(rev)} records {locked}")
    version.dataset_md5 = locked or version.dataset_md5
    if version.rows is None:
        version.rows = _rows(project, layout, version.dataset_md5)
    return version


def _locked_outs(lock: dict[str, Any]) -> set[str]:
    """Every output path that ``dvc.lock`` records (posix, relative to the project)."""
    return {Path(item["path"]).as_posix() for entry in (lock.get("stages") or {}).values()
            if isinstance(entry, dict) for item in entry.get("outs") or []
            if isinstance(item, dict) and item.get("path")}


def _not_in_version(project: Path, layout: _Layout, saved: dict[str, bytes | None],
                    present: list[str]) -> list[str]:
    """What the workspace has that the checked-out version does not: the outputs that the
    workspace's ``dvc.lock`` recorded and the version's does not (a data-only version's
    models, reports, selection), and the metrics files that its commit lacks."""
    before = _yaml(saved[LOCK_FILE].decode("utf-8", "replace")) if saved.get(LOCK_FILE) else {}
    now = _locked_outs(_yaml(_read(project / LOCK_FILE)))
    extra = (_locked_outs(before) - now) | {m for m in layout.metrics if m not in present}
    return sorted(path for path in extra if (project / path).exists())


def move_aside(project: Path, paths: list[str]) -> Path:
    """Move ``paths`` (relative to the project) into ``ASIDE_DIR/<time>/``, keeping their
    places; that folder, relative to the project."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = ASIDE_DIR / stamp
    for path in paths:
        (project / aside / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).rename(project / aside / path)
    return aside


def _move_aside(project: Path, paths: list[str]) -> list[str]:
    """``move_aside`` the outputs a checked-out version lacks, so that the workspace holds
    one version; the warning that says where."""
    if not paths:
        return []
    aside = move_aside(project, paths)
    shown = ", ".join(printable(path) for path in paths[:4]) + (
        f" and {len(paths) - 4} more" if len(paths) > 4 else "")
    return [f"moved aside to {aside.as_posix()}/ the {len(paths)} outputs that version does "
            f"not have, so that the workspace holds that version only: {shown}"]


def _keep_readable_params(project: Path, saved: dict[str, bytes | None]) -> list[str]:
    """A version's ``params.yaml`` that today's schema refuses (written by an older
    tsepipe, say) is not brought back: the current one stays; the warning says so."""
    if saved.get(PARAMS_FILE) is None:
        return []
    try:
        load_params(project / PARAMS_FILE)
    except DataError as exc:
        (project / PARAMS_FILE).write_bytes(saved[PARAMS_FILE])
        return [f"{PARAMS_FILE} of that version is not readable by this tsepipe "
                f"({exc.lines[0]}); the current one is kept"]
    return []


def _version_at(project: Path, layout: _Layout, sha: str) -> Version:
    found = _versions(project, layout, "-1", sha)  # the version in effect at sha
    if found:
        return found[0]
    meta = _git(project, "log", "-1", "--format=%aI%x1f%s", sha).stdout.strip().split("\x1f")
    return Version(commit=sha, date=meta[0], subject=meta[-1])


def _put_back(project: Path, layout: _Layout, saved: dict[str, bytes | None]) -> None:
    """Undo a failed checkout: the two files as they were, then their data (best effort)."""
    for name, content in saved.items():
        path = project / name
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)
    targets = _checkout_targets(project, layout)
    if targets:
        _dvc(project, "checkout", *targets, timeout=DVC_CHECKOUT_TIMEOUT_S)
