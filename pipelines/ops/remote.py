"""The project's DVC remote, from params.yaml (``remote:``) and the environment.

``configure_remote`` writes the remote into ``.dvc/config.local`` (git-ignored by DVC:
nothing machine-specific reaches git) and makes it the default, with DVC's own CLI::

    dvc remote add --local -d -f NAME URL
    dvc remote modify --local NAME endpointurl ENDPOINT     # only when an endpoint is set

- ``remote.url`` / ``TSEPIPE_DVC_REMOTE_URL``: a folder (relative to the project root) or
  ``s3://bucket/prefix``; the variable, when set and not empty, wins.
- ``remote.endpoint_url`` / ``TSEPIPE_S3_ENDPOINT_URL``: an S3-compatible service (MinIO,
  Ceph, moto...); empty: AWS itself.
- Credentials never come from here: dvc-s3 (boto) reads ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``) and ``AWS_DEFAULT_REGION`` itself, at
  each ``dvc push`` / ``pull``. A URL carrying ``user:password@`` is refused.

``.dvc/config`` keeps the demo's default (remote ``local`` -> ``dvcstore/``), so a fresh
clone pushes and pulls without any of this. No Prefect here: plain subprocesses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipelines.core.errors import DataError, StageCrash, printable
from pipelines.core.params.load import load_params
from pipelines.core.params.remote import RemoteSection, url_credentials

URL_ENV = "TSEPIPE_DVC_REMOTE_URL"
ENDPOINT_ENV = "TSEPIPE_S3_ENDPOINT_URL"
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_PROFILE", "AWS_DEFAULT_REGION")
DVC_TIMEOUT_SECONDS = 120.0  # `dvc remote add/modify` only edit a file: seconds at most
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class RemoteSettings:
    name: str
    url: str  # as DVC is given it: a URL, or a folder relative to the project root
    endpoint_url: str  # "" = the service's default (AWS for s3://)
    url_from: str  # "params.yaml" or the variable that set it
    endpoint_from: str

    @property
    def is_s3(self) -> bool:
        return self.url.lower().startswith("s3://")

    def describe(self, project: Path | str = ".") -> str:
        """One line for people: where pushes go, and where each part came from (no secrets)."""
        where = redact(self.url)
        if not _SCHEME.match(self.url):
            where = str((Path(project) / self.url).resolve())
        parts = [f"DVC remote '{self.name}' (default): {printable(where)}"]
        if self.endpoint_url:
            parts.append(f"endpoint {printable(redact(self.endpoint_url))}")
        elif self.is_s3:
            parts.append("endpoint AWS")
        origin = f"url from {self.url_from}"
        if self.endpoint_url or self.endpoint_from != "params.yaml":
            origin += f", endpoint from {self.endpoint_from}"
        parts.append(origin)
        if self.is_s3:
            present = [name for name in CREDENTIAL_ENV if os.environ.get(name)]
            parts.append("credentials: " + (", ".join(present) + " set" if present else
                                            "none in the environment (boto's default chain)"))
        return "; ".join(parts)


def redact(url: str) -> str:
    """``url`` without a user, password or query string (what may be printed or logged)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def remote_settings(section: RemoteSection, environ: Mapping[str, str] | None = None
                    ) -> RemoteSettings:
    """The remote of params.yaml's ``remote:`` section, with the environment's overrides."""
    environ = os.environ if environ is None else environ
    url, url_from = section.url, "params.yaml"
    if environ.get(URL_ENV, "").strip():
        url, url_from = environ[URL_ENV].strip(), URL_ENV
    endpoint, endpoint_from = section.endpoint_url, "params.yaml"
    if environ.get(ENDPOINT_ENV, "").strip():
        endpoint, endpoint_from = environ[ENDPOINT_ENV].strip(), ENDPOINT_ENV
    problems = []
    for value, origin in ((url, url_from), (endpoint, endpoint_from)):
        if url_credentials(value):
            problems.append(f"{origin}: must not hold credentials (user:password@); set "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
    if endpoint and not re.match(r"^https?://\S+$", endpoint):
        problems.append(f"{endpoint_from}: not an http(s):// URL: {printable(redact(endpoint))}")
    settings = RemoteSettings(section.name, url, endpoint, url_from, endpoint_from)
    if endpoint and not settings.is_s3:
        problems.append(f"{endpoint_from}: an endpoint is for an s3:// remote, but the url "
                        f"({url_from}) is {printable(redact(url))}")
    if problems:
        raise DataError(problems)
    return settings


def _dvc(project: Path, *args: str) -> None:
    command = [sys.executable, "-m", "dvc", *args]
    try:
        done = subprocess.run(command, cwd=project, capture_output=True, text=True,
                              timeout=DVC_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise StageCrash(f"dvc {args[0]} {args[1]}: no answer in {DVC_TIMEOUT_SECONDS:.0f} s") \
            from None
    if done.returncode != 0:
        # the command line holds URLs only (never credentials); DVC's message may echo them
        lines = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise StageCrash([f"dvc {args[0]} {args[1]} exited {done.returncode}"]
                         + [printable(line) for line in lines])


def configure_remote(project: Path | str = ".", params_path: Path | str | None = None,
                     environ: Mapping[str, str] | None = None) -> RemoteSettings:
    """Make the remote of params + environment the project's default, in .dvc/config.local.

    Re-running replaces the previous local setting (an endpoint no longer set is dropped).
    A wrong section or variable is a DataError; a failing ``dvc`` a StageCrash.
    """
    project = Path(project)
    if not (project / ".dvc").is_dir():
        raise DataError(f"{project}: not a DVC project (no .dvc/); run from the project root")
    params = load_params(project / "params.yaml" if params_path is None else params_path)
    settings = remote_settings(params.remote, environ)
    # The URL is given as is: DVC stores a relative folder relative to .dvc/, as it would
    # from a shell in the project root.
    _dvc(project, "remote", "add", "--local", "-d", "-f", "--", settings.name, settings.url)
    if settings.endpoint_url:
        _dvc(project, "remote", "modify", "--local", settings.name, "endpointurl",
             settings.endpoint_url)
    return settings
