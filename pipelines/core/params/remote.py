"""``remote:``: where ``dvc push`` and ``dvc pull`` go (``pipelines.ops.remote``).

Credentials never go here: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from pipelines.core.params.base import Section


def url_credentials(url: str) -> bool:
    """Whether ``url`` carries a user or password (``scheme://user:secret@host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.netloc) and "@" in parts.netloc


class RemoteSection(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = Field(
        "local", description="the DVC remote's name (.dvc/config's default is `local`)")
    url: Annotated[str, Field(min_length=1)] = Field("dvcstore", description=(
        "a folder (relative to the project root) or s3://bucket/prefix; env "
        "TSEPIPE_DVC_REMOTE_URL overrides it"))
    endpoint_url: Annotated[str, Field(pattern=r"^(https?://\S+)?$")] = Field("", description=(
        "an S3-compatible service (MinIO, Ceph...); empty: AWS. Env TSEPIPE_S3_ENDPOINT_URL "
        "overrides it"))

    @model_validator(mode="after")
    def _no_secrets(self) -> RemoteSection:
        for key in ("url", "endpoint_url"):
            if url_credentials(getattr(self, key)):
                raise ValueError(f"{key}: must not hold credentials (user:password@); set "
                                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
        return self
