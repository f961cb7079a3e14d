"""What both benchmarks record about the machine and the process."""

from __future__ import annotations

import os
import platform
import re
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.core.fileio import write_json
from pipelines.core.provenance import package_versions


def machine_info(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Cores (all and usable), platform, Python, and the versions of ``packages``."""
    usable_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        **{package.replace("-", "_"): version
           for package, version in (dict.fromkeys(packages) | package_versions(packages)).items()},
    }


def peak_rss_mib() -> float:
    """The process's own peak resident set size so far, in MiB: VmHWM on Linux (a child's
    ru_maxrss also holds its parent's memory at the fork, kept across exec), else
    ru_maxrss (bytes on macOS)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024
        return round(peak * scale / 2**20, 1)
    return round(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024, 1)


def finish(result: dict[str, Any], out: Path, started: float,
           summary: Callable[[dict[str, Any]], None]) -> None:
    """Record the script's run time, write ``result`` to ``out`` (atomically), summarise it."""
    result["script_runtime_s"] = round(time.perf_counter() - started, 1)
    write_json(out, result)
    summary(result)
    print(f"wrote {out} in {result['script_runtime_s']} s")
