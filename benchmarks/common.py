"""What both benchmarks record about the machine and the process."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import sys
from typing import Any


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Cores (all and usable), platform, Python, and the versions of ``packages``."""
    usable_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        **{package.replace("-", "_"): package_version(package) for package in packages},
    }


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB (ru_maxrss: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes
    return round(peak * scale / 2**20, 1)
