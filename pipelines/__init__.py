"""tsepipe stage code: plain functions over files and DataFrames (no Prefect here).

Importing the package turns off the telemetry of every tool in the stack, so that no
entry point (CLI, DVC stage, Prefect flow, test) can forget to.
"""

import os

_TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "DVC_NO_UPDATE_CHECK": "1",  # dvc's own "new version" probe
}
for _name, _value in _TELEMETRY_OFF.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
