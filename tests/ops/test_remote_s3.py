"""The shared DVC remote on S3-compatible storage: params, environment, `tsepipe remote`.

The S3 service is a real moto server (``moto_server``, a subprocess on 127.0.0.1), not a
mock of DVC: ``dvc push`` and ``dvc pull`` talk HTTP to it through dvc-s3 / boto.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.dvc_commands import locked_hash
from pipelines.core.errors import DataError
from pipelines.core.params.load import load_params
from pipelines.core.params.remote import RemoteSection
from pipelines.ops.remote import ENDPOINT_ENV, URL_ENV, remote_settings
from tests.conftest import ROOT, env
from tests.support.prefect_server import free_port
from tests.support.s3_server import s3_server
from tsepipe.cli import app

SECRET = "tsepipe-test-secret-" + uuid.uuid4().hex  # must never reach a file, git or output
KEY_ID = "tsepipe-test-key"
DVC_SECONDS = 300  # a bound on each dvc/git command: a hang fails the test, never blocks it


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _run(args: list[str], cwd: Path, extra: dict[str, str] | None = None,
         timeout: float = DVC_SECONDS, check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(args, cwd=cwd, env=env() | (extra or {}), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)}: no end in {timeout:.0f} s")
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """A moto S3 server on a free port of 127.0.0.1 (tests/support/s3_server.py); its URL."""
    with s3_server(tmp_path_factory.mktemp("moto")) as remote:
        yield remote["TSEPIPE_S3_ENDPOINT_URL"]


@pytest.fixture
def aws_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials in the environment, and nothing of this machine's AWS set-up."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 URL_ENV, ENDPOINT_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _s3(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                        config=Config(connect_timeout=5, read_timeout=30,
                                      retries={"max_attempts": 2}))


def _bucket(endpoint: str) -> str:
    name = f"tsepipe-{uuid.uuid4().hex[:12]}"
    _s3(endpoint).create_bucket(Bucket=name)
    return name


def _tiny_project(folder: Path) -> Path:
    """git + dvc init, this params.yaml, one `dvc add`ed file: enough for push and pull."""
    folder.mkdir(parents=True)
    _run(["git", "init", "-q"], folder)
    _run(["dvc", "init", "-q"], folder)
    (folder / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    (folder / "data.bin").write_bytes(bytes(range(256)) * 64)
    _run(["dvc", "add", "-q", "data.bin"], folder)
    return folder


def _no_secret_in(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and ".dvc/cache" not in path.as_posix() and \
                "/.git/objects/" not in path.as_posix():
            assert SECRET.encode() not in path.read_bytes(), path


# ------------------------------------------------------------------ params and environment


def _params(**remote: str) -> RemoteSection:
    return load_params(ROOT / "params.yaml").remote.model_copy(update=remote)


def test_the_default_remote_is_the_demo_folder():
    settings = remote_settings(load_params(ROOT / "params.yaml").remote, environ={})
    assert (settings.name, settings.url, settings.endpoint_url) == ("local", "dvcstore", "")
    # .dvc/config's default is the same folder (relative to .dvc/), for a fresh clone
    config = (ROOT / ".dvc" / "config").read_text(encoding="utf-8")
    assert "remote = local" in config and "url = ../dvcstore" in config


def test_environment_overrides_url_and_endpoint():
    environ = {URL_ENV: "s3://team-bucket/tsepipe", ENDPOINT_ENV: "https://minio.example:9000"}
    settings = remote_settings(_params(), environ)
    assert settings.url == "s3://team-bucket/tsepipe"
    assert settings.endpoint_url == "https://minio.example:9000"
    assert (settings.url_from, settings.endpoint_from) == (URL_ENV, ENDPOINT_ENV)
    # empty variables leave params.yaml's values
    settings = remote_settings(_params(url="s3://b/p"), {URL_ENV: "", ENDPOINT_ENV: " "})
    assert (settings.url, settings.endpoint_url, settings.url_from) == ("s3://b/p", "",
                                                                        "params.yaml")


@pytest.mark.parametrize("environ, expected", [
    ({URL_ENV: "s3://AKIAEXAMPLE:hunter2@bucket/p"}, f"{URL_ENV}: must not hold credentials"),
    ({ENDPOINT_ENV: "http://127.0.0.1:9000"}, "an endpoint is for an s3:// remote"),
    ({URL_ENV: "s3://b/p", ENDPOINT_ENV: "ftp://host"}, "not an http(s):// URL"),
])
def test_a_wrong_variable_is_one_clear_line(environ, expected):
    with pytest.raises(DataError) as caught:
        remote_settings(_params(), environ)
    assert any(expected in line for line in caught.value.lines)
    assert "hunter2" not in str(caught.value)


def test_credentials_in_params_are_refused(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["remote"]["url"] = "s3://AKIAEXAMPLE:hunter2@bucket/tsepipe"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_params(path)
    assert caught.value.lines == [
        f"{path}: remote.url: must not hold credentials (user:password@); set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead",
    ]


def test_cli_writes_config_local_only(tmp_path, monkeypatch, aws_env):
    project = _tiny_project(tmp_path / "p")
    config_before = (project / ".dvc" / "config").read_bytes()
    monkeypatch.chdir(project)

    monkeypatch.setenv(URL_ENV, "s3://team-bucket/tsepipe")
    monkeypatch.setenv(ENDPOINT_ENV, "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["remote"])
    assert result.exit_code == 0, result.output
    assert "s3://team-bucket/tsepipe" in result.stdout and "http://127.0.0.1:9" in result.stdout
    assert "AWS_ACCESS_KEY_ID" in result.stdout and SECRET not in result.output
    local = (project / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert "url = s3://team-bucket/tsepipe" in local and "endpointurl = http://127.0.0.1:9" \
        in local and "remote = local" in local
    assert (project / ".dvc" / "config").read_bytes() == config_before

    # back to params.yaml's folder: the endpoint goes with the S3 remote
    monkeypatch.delenv(URL_ENV)
    monkeypatch.delenv(ENDPOINT_ENV)
    result = CliRunner().invoke(app, ["remote"])
    assert result.exit_code == 0, result.output
    assert str(project.resolve() / "dvcstore") in result.stdout
    local = (project / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert "url = ../dvcstore" in local and "endpointurl" not in local
    listed = "".join(_run(["dvc", "remote", "list"], project).stdout.split())  # unwrapped
    assert "(default)" in listed and str(project.resolve() / "dvcstore") in listed
    _no_secret_in(project)


# ------------------------------------------------------------------ a real S3 service


@pytest.mark.slow
def test_pipeline_data_round_trips_through_s3(project, tmp_path, s3_endpoint, aws_env):
    """Push the pipeline's data to S3 from one checkout, pull it into a fresh clone."""
    bucket = _bucket(s3_endpoint)
    remote_env = {URL_ENV: f"s3://{bucket}/tsepipe", ENDPOINT_ENV: s3_endpoint}
    _run(["tsepipe", "sample-data", "--out", "data/raw", "--days", "300"], project)
    _run(["dvc", "add", "-q", "data/raw"], project)
    _run(["dvc", "repro", "merge"], project)
    dataset = project / "data" / "processed" / "merged.parquet"
    assert dataset.exists()

    shown = _run(["tsepipe", "remote"], project, remote_env)
    assert f"s3://{bucket}/tsepipe" in shown.stdout and s3_endpoint in shown.stdout
    assert SECRET not in shown.stdout + shown.stderr
    assert (project / ".dvc" / "config").read_bytes() == (ROOT / ".dvc" / "config").read_bytes()
    pushed = _run(["dvc", "push"], project)
    assert "pushed" in pushed.stdout
    keys = [item["Key"] for item in
            _s3(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(key.startswith("tsepipe/files/md5/") for key in keys)
    assert not (project / "dvcstore").exists()  # nothing went to the demo's folder remote

    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    _run([*git, "add", "-A"], project)
    _run([*git, "commit", "-qm", "data version"], project)
    tracked = _run(["git", "ls-files"], project).stdout.split()
    assert ".dvc/config.local" not in tracked and "dvc.lock" in tracked
    assert _run(["git", "grep", "-q", SECRET], project, check=False).returncode == 1
    assert _run(["git", "grep", "-q", s3_endpoint], project, check=False).returncode == 1
    _no_secret_in(project)

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "data" / "processed" / "merged.parquet").exists()
    assert not (clone / ".dvc" / "cache").exists()  # its own, empty cache: S3 or nothing
    _run(["tsepipe", "remote"], clone, remote_env)
    # the stages after merge have not run: their outputs are in no lock entry yet
    _run(["dvc", "pull", "--allow-missing"], clone)

    pulled = clone / "data" / "processed" / "merged.parquet"
    assert pulled.read_bytes() == dataset.read_bytes()
    assert _md5(pulled) == _md5(dataset) == locked_hash(clone, "merge",
                                                        "data/processed/merged.parquet")
    for raw in sorted((project / "data" / "raw").iterdir()):
        assert _md5(clone / "data" / "raw" / raw.name) == _md5(raw)
    _no_secret_in(clone)


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["missing bucket", "wrong endpoint"])
def test_an_unreachable_remote_fails_clearly_and_soon(tmp_path, s3_endpoint, aws_env, fault):
    project = _tiny_project(tmp_path / "p")
    if fault == "missing bucket":
        remote_env = {URL_ENV: "s3://no-such-bucket-tsepipe/x", ENDPOINT_ENV: s3_endpoint}
        expected = "bucket does not exist"
    else:  # a port where nothing listens
        remote_env = {URL_ENV: f"s3://{_bucket(s3_endpoint)}/x",
                      ENDPOINT_ENV: f"http://127.0.0.1:{free_port()}"}
        expected = "Could not connect to the endpoint URL"
    _run(["tsepipe", "remote"], project, remote_env)

    started = time.monotonic()
    pushed = _run(["dvc", "push"], project, timeout=120, check=False)
    assert time.monotonic() - started < 120
    output = pushed.stdout + pushed.stderr
    assert pushed.returncode != 0, output
    assert "ERROR" in output and expected in output, output
    assert "Traceback" not in output and SECRET not in output
