"""A real S3-compatible server for the tests: moto in server mode on 127.0.0.1.

``s3_server()`` starts ``moto_server`` as a subprocess on a free port, waits (bounded)
until it answers, creates the bucket and yields the environment a DVC client needs:
``TSEPIPE_DVC_REMOTE_URL`` (``s3://BUCKET/dvc``), ``TSEPIPE_S3_ENDPOINT_URL`` and test
credentials in the usual AWS variables. The server is always stopped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import BIN
from tests.support.prefect_server import free_port

START_TIMEOUT = 60
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "tsepipe-test", "AWS_SECRET_ACCESS_KEY": "tsepipe-test",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


@contextmanager
def s3_server(folder: Path, bucket: str = "tsepipe") -> Iterator[dict[str, str]]:
    """Start moto's S3 server; yield the DVC remote's environment (see the docstring)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (folder / "moto.log").open("w", encoding="utf-8")
    process = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env=os.environ | CREDENTIALS)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise AssertionError("moto_server did not come up:\n"
                                     + (folder / "moto.log").read_text()[-3000:])
            time.sleep(0.2)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, **{
            "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region_name": CREDENTIALS["AWS_DEFAULT_REGION"]}).create_bucket(Bucket=bucket)
        yield CREDENTIALS | {"TSEPIPE_DVC_REMOTE_URL": f"s3://{bucket}/dvc",
                             "TSEPIPE_S3_ENDPOINT_URL": endpoint}
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        log.close()


def bucket_keys(endpoint: str, bucket: str = "tsepipe") -> list[str]:
    """Every key in the bucket (paginated)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint,
                          aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                          region_name=CREDENTIALS["AWS_DEFAULT_REGION"])
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys
