"""Timing whole processes for the benchmarks: the median of several runs, from exec to exit."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def compile_engine() -> None:
    """Compile the engine's bytecode once, as pip does when it installs a package: an editable install run
    with PYTHONDONTWRITEBYTECODE=1 (this machine sets it) compiles every module from source in every process."""
    folders = [str(ROOT / d) for d in ("kpi_engine", "plugins", "reports")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], check=True)


def timed(command: list[str], repeat: int) -> float:
    """Median wall time of ``repeat`` runs of ``command`` (each must succeed)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
