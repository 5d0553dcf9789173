"""Larger than memory: the benchmark catalogue under a resident-memory cap, per polars engine and on Spark.

    python bench/memory.py --rows 50000000 --cap-mb 1500
    python bench/memory.py --rows 50000000 --cap-mb 2000 --modes streaming spark --spark-memory 1g

Each mode runs in a fresh process that this script watches (VmRSS from /proc, every 20 ms) and kills as
soon as it passes the cap, which works without root or cgroups and, unlike ``ulimit -v``, is not fooled by
the allocator's large virtual reservations. ``in-memory`` is polars' in-memory engine, ``auto`` what
``kpi run`` uses by default, ``streaming`` what ``kpi run --streaming`` uses. ``spark`` reads the same
Parquet files through the ``spark`` connector in local mode (``local[2]``), its driver's heap set by
``--spark-memory``: Spark aggregates and only the aggregates come back. The RSS counted is the process
tree's (Python and Spark's JVM). A mode that finishes under the cap prints its peak RSS and wall time; one
that does not prints where it was stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

MODES = ("in-memory", "auto", "streaming", "spark")

CHILD = """
import datetime as dt, sys, time
import polars as pl
import kpi_engine
from kpi_engine import execute

mode, folder = sys.argv[1], sys.argv[2]
if mode == "spark":  # the same files through the spark connector: the spec beside the data (spark_spec)
    folder = folder + "-spark"
if mode == "in-memory":  # not a CLI option: only here to show what streaming saves
    collect_all = pl.collect_all
    execute.pl.collect_all = lambda queries, **kw: collect_all(queries, engine="in-memory")
result = kpi_engine.load(folder, allow_outside=True).evaluate(dt.date(2026, 12, 31), streaming=mode == "streaming")
values = sum(frame.height for frame in result.series.values())
total = sum(frame["value"].cast(pl.Float64).sum() for frame in result.series.values())
print(values, repr(total))  # (the sum of every value: the modes must agree)
"""


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and every process under it (Spark's JVM is a child of Python)."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                total += sum(rss_mb(int(child)) for child in fh.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def spark_spec(folder: Path) -> None:
    """The benchmark catalogue with its sources read by the spark connector (local[2]), in a folder beside
    the data's (``<rows>-spark``), its paths pointing at the same Parquet files."""
    text = (folder / "kpis.yaml").read_text()
    spark = text.replace("connector: parquet, path: ", f"connector: spark, master: 'local[2]', path: {folder}/")
    (folder.parent / f"{folder.name}-spark").mkdir(exist_ok=True)
    (folder.parent / f"{folder.name}-spark" / "kpis.yaml").write_text(spark)


def watched(cmd: list[str], cap_mb: float, env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` in its own process group, its output in files (a pipe would fill and block it), and kill
    the group as soon as its resident memory (children included) passes ``cap_mb``. Returns ``ok``,
    ``peak_mb`` and ``seconds``; when it finished, also ``returncode``, ``out`` and ``err``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, start_new_session=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, rss_mb(proc.pid))
            if peak > cap_mb:
                os.killpg(proc.pid, 9)  # (the group: Spark's JVM too)
                proc.wait()
                return {"ok": False, "peak_mb": peak, "seconds": time.perf_counter() - start}
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        done = {"ok": True, "peak_mb": peak, "seconds": time.perf_counter() - start}
        return done | {"returncode": proc.returncode, "out": out.read(), "err": err.read()}


def capped(mode: str, folder: Path, cap_mb: float, spark_memory: str = "1g") -> dict:
    """Run one mode in a fresh process; kill it (and its children) when their RSS passes ``cap_mb``."""
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS=f"--driver-memory {spark_memory} pyspark-shell")
    run = watched([sys.executable, "-c", CHILD, mode, str(folder)], cap_mb, env)
    if not run["ok"]:
        return {"mode": mode, "ok": False, "peak_mb": run["peak_mb"], "stopped_after_s": run["seconds"]}
    if run["returncode"] != 0:
        raise SystemExit(f"{mode} failed:\n{run['err']}")
    rows, total = run["out"].split()[:2]
    return {
        "mode": mode,
        "ok": True,
        "peak_mb": run["peak_mb"],
        "seconds": run["seconds"],
        "rows": int(rows),
        "value_sum": float(total),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--cap-mb", type=float, default=1500)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES[:3]), help="default: polars' three")
    parser.add_argument("--spark-memory", default="1g", help="the Spark driver's heap (local mode runs in it)")
    parser.add_argument(
        "--data", type=Path, default=HERE / "data", help="where to generate the data (default bench/data)"
    )
    parser.add_argument(
        "--results", type=Path, default=HERE / "results.jsonl", help="the JSON-lines file a run appends to"
    )
    args = parser.parse_args()
    from run import prepare

    folder = prepare(args.rows, args.data)
    spark_spec(folder)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 1e6
    print(f"{args.rows:,} rows per table ({size:,.0f} MB of Parquet), cap {args.cap_mb:,.0f} MB resident")
    results = []
    for mode in args.modes:
        r = capped(mode, folder, args.cap_mb, args.spark_memory)
        results.append(r)
        if r["ok"]:
            print(
                f"{mode:<10} finished: peak {r['peak_mb']:,.0f} MB, {r['seconds']:.1f} s, {r['rows']:,} series rows, values sum to {r['value_sum']:,.6f}"
            )
        else:
            print(f"{mode:<10} stopped at the cap: {r['peak_mb']:,.0f} MB after {r['stopped_after_s']:.1f} s")
    with open(args.results, "a") as fh:
        record = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kind": "memory_cap",
            "rows": args.rows,
            "cap_mb": args.cap_mb,
            "spark_memory": args.spark_memory,
            "results": results,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
