"""Prefect flows: thin wrappers that run the DVC stages, add retries and artifacts.

Importing this package sets the Prefect defaults every entry point needs before
``prefect`` itself is imported: telemetry off (via ``pipelines``) and a start-up
timeout for the ephemeral API server long enough for a cold start on 2 cores
(14-24 s measured, against Prefect's default of 20 s).
"""

import os

import pipelines  # noqa: F401  (turns telemetry off)

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
