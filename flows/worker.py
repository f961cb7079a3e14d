"""A worker's project checkout: the pull step of every deployment (``prefect.yaml``).

A worker on another machine has neither the code nor the data. Before each flow run the
pull step ``flows.worker.checkout`` finds or makes the folder the flow must run in and
makes it the working directory:

- with ``TSEPIPE_GIT_URL`` set (a team: the project's git remote), a checkout of it under
  ``TSEPIPE_WORKER_DIR`` (default ``~/.cache/tsepipe/checkouts``), cloned the first time
  and brought to the remote's head afterwards (a worker's checkout is disposable: its own
  commits were pushed by the run that made them); then the DVC remote is configured from
  the environment (``pipelines.ops.remote``) and ``dvc pull`` brings the data and models the
  lock file names (what is not in the remote yet, e.g. before the first data run, is
  skipped);
- otherwise ``TSEPIPE_PROJECT_DIR``: one machine, the checkout the workers were started
  for (``TSEPIPE_PROJECT_DIR=$PWD prefect worker start ...``).

Every git and DVC command is bounded by ``TSEPIPE_WORKER_TIMEOUT`` seconds (600).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from flows.dvc_commands import dvc
from pipelines.ops.remote import configure_remote

GIT_URL = "TSEPIPE_GIT_URL"
GIT_BRANCH = "TSEPIPE_GIT_BRANCH"
WORKER_DIR = "TSEPIPE_WORKER_DIR"
PROJECT_DIR = "TSEPIPE_PROJECT_DIR"
DEFAULT_WORKER_DIR = "~/.cache/tsepipe/checkouts"


class CheckoutError(RuntimeError):
    """The worker could not prepare its checkout (one line for the flow run's log)."""


def _timeout() -> float:
    return float(os.environ.get("TSEPIPE_WORKER_TIMEOUT", "600"))


def git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              timeout=_timeout(), check=False)
    except subprocess.TimeoutExpired as exc:
        raise CheckoutError(f"git {' '.join(args)}: no answer in {_timeout():.0f} s") from exc
    if done.returncode != 0:
        raise CheckoutError(f"git {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    return done.stdout.strip()


def checkout_folder(url: str, base: Path) -> Path:
    """One folder per repository under ``base``, named after the URL (readable, unique)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").removesuffix(".git")).strip("-")
    return base / name[-120:]


def update_checkout(url: str, base: Path, branch: str | None = None) -> Path:
    """Clone ``url`` into its folder under ``base``, or bring that clone to the remote's head."""
    folder = checkout_folder(url, base)
    if not (folder / ".git").is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        git(folder.parent, "clone", "--quiet", *(["--branch", branch] if branch else []), url,
            str(folder))
        return folder
    git(folder, "remote", "set-url", "origin", url)
    git(folder, "fetch", "--quiet", "--prune", "origin")
    if not branch:
        head = git(folder, "ls-remote", "--symref", "origin", "HEAD")
        match = re.search(r"ref: refs/heads/(\S+)\s+HEAD", head)
        branch = match.group(1) if match else git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    git(folder, "checkout", "--quiet", "-B", branch, f"origin/{branch}")
    git(folder, "reset", "--quiet", "--hard", f"origin/{branch}")
    return folder


def pull_data(folder: Path) -> None:
    """Configure the DVC remote from the environment, then pull what the lock file names."""
    configure_remote(folder)
    result = dvc(folder, "pull", "--allow-missing")
    if not result.ok:
        tail = result.output.strip().splitlines()[-5:]
        raise CheckoutError("dvc pull failed: " + " | ".join(tail))


def prepare() -> Path:
    """The folder this worker's flow run must run in (see the module's docstring)."""
    url = os.environ.get(GIT_URL, "").strip()
    if url:
        base = Path(os.environ.get(WORKER_DIR) or DEFAULT_WORKER_DIR).expanduser()
        folder = update_checkout(url, base, os.environ.get(GIT_BRANCH) or None)
        pull_data(folder)
        return folder
    local = os.environ.get(PROJECT_DIR, "").strip()
    if not local:
        raise CheckoutError(f"set {GIT_URL} (workers on other machines: the project's git "
                            f"remote) or {PROJECT_DIR} (one machine: the project checkout) "
                            "in the worker's environment")
    folder = Path(local).expanduser().resolve()
    if not (folder / "dvc.yaml").is_file():
        raise CheckoutError(f"{PROJECT_DIR}={local}: not a tsepipe project (no dvc.yaml)")
    return folder


def checkout() -> dict[str, str]:
    """The pull step: prepare the folder and run the flow there (``{"directory": ...}``)."""
    folder = prepare()
    os.chdir(folder)
    return {"directory": str(folder)}


def main() -> int:
    """``python -m flows.worker``: prepare the checkout by hand and print its folder."""
    try:
        folder = prepare()
    except CheckoutError as exc:
        print(f"error: worker checkout: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
