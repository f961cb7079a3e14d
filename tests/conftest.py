"""Shared fixtures: the real study files, generated sample files, throw-away projects."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

# Import Prefect now, while sys.stderr is pytest's session stream: imported first inside a
# CliRunner invocation, it binds its log handlers and console to that invocation's
# temporary stream, which is closed afterwards (a later write kills the interpreter).
import flows.data  # noqa: F401
import pipelines  # noqa: F401  (telemetry off before any tool is imported)
from pipelines.data import sample
from tests.support import browser
from tests.support.tsetmc_server import EXAMPLES

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = EXAMPLES / "tse-indices-1397-1398"  # the 16 real exports (data/examples/README.md)
TARGET = "IRX6XTPI0009"
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _restore_root_log_handlers():
    """Prefect adds root handlers bound to a test's captured stderr; drop them after it."""
    before = list(logging.getLogger().handlers)
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The 16 real exports of 1397-1398 in the repository (read-only: copy before changing)."""
    return REAL_DATA


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 16 sample exports at their default size (read-only: copy before changing)."""
    folder = tmp_path_factory.mktemp("sample") / "raw"
    sample.generate(folder)
    return folder


@pytest.fixture(scope="session")
def small_sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 sample exports of 300 trading days, for tests that run whole stages many times."""
    folder = tmp_path_factory.mktemp("small-sample") / "raw"
    sample.generate(folder, n_days=300)
    return folder


def chromium_or_skip() -> str:
    """The headless browser the browser tests need. Missing, the test fails where it could
    have been installed (as root, as CI runs, or with TSEPIPE_REQUIRE_BROWSER=1) and is
    skipped with the reason otherwise: tools/ensure-chromium installs it only as root."""
    try:
        return browser.find_chromium()
    except browser.BrowserError as error:
        reason = str(error)
    if os.geteuid() == 0 or os.environ.get("TSEPIPE_REQUIRE_BROWSER"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(f"{reason} (skipped: not root, so tools/ensure-chromium could not install it)")


def tracked_files() -> list[str]:
    """The project's code and configuration as git has them, without its data versions
    (``dvc.lock`` and ``*.dvc``, which a run of the checkout, ``make demo`` say, commits)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()
            and name != "dvc.lock" and not name.endswith(".dvc")]


def env() -> dict[str, str]:
    """The environment for subprocesses: this venv first on the PATH, telemetry off."""
    return os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def as_a_terminal_would() -> None:
    """``preexec_fn`` for a process a test will Ctrl-C: SIGINT's default action. A shell
    starts a background job (``make test &``, a CI script's ``&``) with SIGINT ignored
    (POSIX), and its children inherit that, so without this a test's SIGINT does nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def isolated(tmp_path: Path) -> dict[str, str]:
    """The subprocess environment with its own Prefect home (an ephemeral server)."""
    environment = env() | {"PREFECT_HOME": str(tmp_path / "prefect-home")}
    environment.pop("PREFECT_API_URL", None)
    return environment


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh clone-like copy of the project (tracked files only) in its own git repo."""
    return new_project(tmp_path / "project")


@dataclass(frozen=True)
class TrainedRun:
    project: Path  # read-only: copy it first (the trained_project fixture does)
    output: str  # what its `tsepipe run --no-push` printed (stdout and stderr)


@pytest.fixture(scope="session")
def trained_sample(tmp_path_factory: pytest.TempPathFactory, small_sample_dir: Path
                   ) -> TrainedRun:
    """One run of the whole pipeline per session: the 300-day sample through `tsepipe run
    --no-push` (ephemeral Prefect, DVC, the version committed), in a project of its own.
    The tests that start from a trained project (a retraining stopped by a signal, a killed
    evaluate, a damaged model file, versions compared) each get a copy of it."""
    # the suite's processes (``pytest -n``) share it: the first one trains, the others wait
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, above each worker's own
    root = shared / "trained-sample"
    with FileLock(str(shared / "trained-sample.lock")):
        target, output = root / "project", root / "output.txt"
        if output.exists():
            return TrainedRun(target, output.read_text(encoding="utf-8"))
        shutil.rmtree(root, ignore_errors=True)  # a failed try of another process
        new_project(target)
        copy_exports(small_sample_dir, target / "data/raw")
        done = subprocess.run([str(BIN / "tsepipe"), "run", "--no-push"], cwd=target,
                              env=isolated(root), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        output.write_text(done.stdout + done.stderr, encoding="utf-8")
        return TrainedRun(target, done.stdout + done.stderr)


@pytest.fixture
def trained_project(trained_sample: TrainedRun, tmp_path: Path) -> Path:
    """A copy of the session's trained project (its git history, DVC cache and outputs)."""
    target = tmp_path / "project"
    shutil.copytree(trained_sample.project, target, symlinks=True)
    return target


def new_project(target: Path) -> Path:
    """The project's tracked files in ``target``, a git repository of their own, committed
    (fast training settings)."""
    for name in tracked_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    fast_training(target / "params.yaml")
    run(["git", "init", "-q"], target)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], target)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], target)
    return target


def fast_training(params_file: Path) -> None:
    """Shrink the training settings so a whole pipeline runs in seconds (same code path)."""
    import yaml

    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    params["train"]["seeds"] = [1]
    for spec in params["train"]["models"].values():
        spec.update(units=[8], epochs=3, patience=2)
    params["evaluate"].update(refit_every=100, bootstrap_samples=200)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def copy_exports(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.suffix == ".csv":
            shutil.copy2(path, target / path.name)
    return target
