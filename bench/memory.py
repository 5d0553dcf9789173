"""Larger than memory: the benchmark catalogue under a resident-memory cap, per polars engine.

    python bench/memory.py --rows 50000000 --cap-mb 1500

Each mode runs in a fresh process that this script watches (VmRSS from /proc, every 20 ms) and kills as
soon as it passes the cap, which works without root or cgroups and, unlike ``ulimit -v``, is not fooled by
the allocator's large virtual reservations. ``in-memory`` is polars' in-memory engine, ``auto`` what
``kpi run`` uses by default, ``streaming`` what ``kpi run --streaming`` uses. A mode that finishes under
the cap prints its peak RSS and wall time; one that does not prints where it was stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

MODES = ("in-memory", "auto", "streaming")

CHILD = """
import datetime as dt, sys, time
import polars as pl
import kpi_engine
from kpi_engine import execute

mode, folder = sys.argv[1], sys.argv[2]
if mode == "in-memory":  # not a CLI option: only here to show what streaming saves
    collect_all = pl.collect_all
    execute.pl.collect_all = lambda queries, **kw: collect_all(queries, engine="in-memory")
result = kpi_engine.load(folder).evaluate(dt.date(2026, 12, 31), streaming=mode == "streaming")
values = sum(frame.height for frame in result.series.values())
print(values)
"""


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def capped(mode: str, folder: Path, cap_mb: float) -> dict:
    """Run one mode in a fresh process; kill it when its RSS passes ``cap_mb``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, rss_mb(proc.pid))
        if peak > cap_mb:
            proc.kill()
            proc.wait()
            return {"mode": mode, "ok": False, "peak_mb": peak, "stopped_after_s": time.perf_counter() - start}
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{err}")
    return {"mode": mode, "ok": True, "peak_mb": peak, "seconds": time.perf_counter() - start, "rows": int(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--cap-mb", type=float, default=1500)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--data", type=Path, default=HERE / "data", help="where to generate the data (default bench/data)")
    parser.add_argument(
        "--results", type=Path, default=HERE / "results.jsonl", help="the JSON-lines file a run appends to"
    )
    args = parser.parse_args()
    from run import prepare

    folder = prepare(args.rows, args.data)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 1e6
    print(f"{args.rows:,} rows per table ({size:,.0f} MB of Parquet), cap {args.cap_mb:,.0f} MB resident")
    results = []
    for mode in args.modes:
        r = capped(mode, folder, args.cap_mb)
        results.append(r)
        if r["ok"]:
            print(f"{mode:<10} finished: peak {r['peak_mb']:,.0f} MB, {r['seconds']:.1f} s, {r['rows']:,} series rows")
        else:
            print(f"{mode:<10} stopped at the cap: {r['peak_mb']:,.0f} MB after {r['stopped_after_s']:.1f} s")
    with open(args.results, "a") as fh:
        record = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kind": "memory_cap",
            "rows": args.rows,
            "cap_mb": args.cap_mb,
            "results": results,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
