"""Timing whole processes for the benchmarks: the median of several runs, from exec to exit."""

from __future__ import annotations

import statistics
import subprocess
import time


def timed(command: list[str], repeat: int) -> float:
    """Median wall time of ``repeat`` runs of ``command`` (each must succeed)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
