"""A description of the machine and its load, stored beside every result."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine() -> dict[str, Any]:
    import psutil

    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
    }


def load_average() -> float:
    """Return the 1-minute load average, the number of runnable processes averaged over the last minute."""
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
