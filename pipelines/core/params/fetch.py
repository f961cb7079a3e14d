"""``fetch:``: the daily feed from TSETMC's public API (``tsepipe fetch``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pipelines.core.params.base import NonNegative, Seconds, Section
from pipelines.core.params.data import IndexId  # it names its file in the raw folder

# ISIN -> TSETMC insCode (from GetIndexB1LastAll/All/1), the 13 TSE indices of the study
TSE_INDICES = {
    "IRX6XTPI0009": 32097828799138957, "IRX6XTPI0025": 67130298613737946,
    "IRXYXTPI0009": 5798407779416661, "IRXYXTPI0025": 8384385859414435,
    "IRX6XAFF0005": 49579049405614711, "IRX6XTAL0001": 62752761908615603,
    "IRX6XALS0002": 71704845530629737, "IRX6XSNT0009": 43754960038275285,
    "IRX6XS300003": 10523825119011581, "IRX6XSLC0000": 69932667409721265,
    "IRX6XWAI0001": 46342955726788357, "IRX6X27T0007": 32453344048876642,
    "IRX6X44T0006": 33626672012415176,
}


Finite = Field(allow_inf_nan=False)


class FetchSection(Section):
    enabled: bool = Field(False, description=(
        "the data flow fetches first when true (the data deployment sets it); the demo and "
        "the tests stay offline"))
    base_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+")] = Field(
        "https://cdn.tsetmc.com/api",
        description="GET {base_url}/Index/GetIndexB2History/{code}")
    timeout_seconds: Annotated[float, Field(gt=0), Finite] = Field(20, description="per request")
    retries: NonNegative = Field(3, description=(
        "more tries per request after a timeout, a 5xx or a 429"))
    backoff_seconds: Annotated[Seconds, Finite] = Field(2.0, description=(
        "wait before retry k: backoff_seconds * 2 ** (k - 1)"))
    pace_seconds: Annotated[Seconds, Finite] = Field(1.0, description=(
        "pause between requests: a public service, be polite"))
    indices: Annotated[dict[IndexId, Annotated[int, Field(gt=0)]], Field(min_length=1)] = Field(
        default_factory=lambda: dict(TSE_INDICES),
        description="ISIN -> TSETMC insCode (GetIndexB1LastAll/All/1); the ISIN names the file")
