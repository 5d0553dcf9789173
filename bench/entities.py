"""Benchmark: KPIs over entities (issue 13) against hand-written polars and DuckDB SQL on the same Parquet.

    python bench/entities.py --rows 10000000 --customers 1000000   # the issue's size
    python bench/entities.py --rows 200000 --customers 20000 --repeat 1   # a quick look

Three monthly KPIs: repeat purchase rate, new customers (first order ever in the month), and orders within
7 days of a signed-in session (a funnel). Every approach must give the same numbers before any time is
printed. Each approach runs in a fresh process (median wall time of ``--repeat`` runs after a warm-up in
that process; peak RSS of the process). Results are appended to bench/results.jsonl (or --results FILE).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
START = dt.datetime(2025, 1, 1)
AS_OF = dt.date(2025, 12, 31)

SPEC = """
version: 1
sources:
  orders: {connector: parquet, path: orders.parquet, time: ts, entities: {customer: customer_id}}
  sessions: {connector: parquet, path: sessions.parquet, time: ts, entities: {customer: customer_id}}
kpis:
  repeat_rate: {unit: percent, grain: month, formula: 100 * count(customer where count(orders) >= 2) / count(orders.customer)}
  new_customers: {unit: count, grain: month, formula: count(orders.customer where new)}
  funnel_7d: {unit: count, grain: month, formula: conversions(sessions, orders, 7 days)}
"""


def generate(rows: int, customers: int, folder: Path) -> None:
    """Orders and sessions over 2025, customers arriving through the year; seeded, written once."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "orders.parquet").exists():
        return
    rng = np.random.default_rng(13)
    for name, n in (("orders", rows), ("sessions", rows)):
        seconds = np.sort(rng.integers(0, 365 * 86_400, n))
        arrived = np.maximum(1, (customers * (seconds / (365 * 86_400)) ** 0.5).astype(np.int64))
        who = (rng.random(n) * arrived).astype(np.int64)
        frame = pl.DataFrame(
            {
                "ts": np.datetime64(START, "us") + (seconds * 1_000_000).astype("timedelta64[us]"),
                "customer_id": who,
                "amount": np.round(rng.gamma(3.0, 20.0, n), 2),
            }
        )
        frame.write_parquet(folder / f"{name}.parquet")
    (folder / "kpis.yaml").write_text(SPEC)


ENGINE = """
import datetime as dt, json, sys, time, kpi_engine
folder, repeat = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(repeat + 1):
    t = time.perf_counter()
    result = kpi_engine.load(folder).evaluate(dt.date(2025, 12, 31))
    times.append(time.perf_counter() - t)
out = {k: {str(r["start"]): r["value"] for r in result[k].iter_rows(named=True)} for k in result.series}
print(json.dumps({"times": times[1:], "values": out, "peak_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss}))
"""

POLARS = """
import datetime as dt, json, sys, time, polars as pl
folder, repeat = sys.argv[1], int(sys.argv[2])
def run():
    orders = pl.scan_parquet(f"{folder}/orders.parquet").filter(pl.col("ts") < dt.datetime(2026, 1, 1))
    sessions = pl.scan_parquet(f"{folder}/sessions.parquet").filter(pl.col("ts") < dt.datetime(2026, 1, 1))
    month = pl.col("ts").dt.truncate("1mo").dt.date().alias("m")
    per = orders.group_by(month, "customer_id").agg(pl.len().alias("n"))
    repeat_rate = per.group_by("m").agg((100 * (pl.col("n") >= 2).sum() / pl.len()).alias("v"))
    first = orders.group_by("customer_id").agg(pl.col("ts").min().dt.truncate("1mo").dt.date().alias("m"))
    new = first.group_by("m").agg(pl.len().alias("v"))
    o = orders.select("customer_id", pl.col("ts").alias("at")).sort("at")
    s = sessions.select("customer_id", pl.col("ts").alias("base"), month).sort("base")
    funnel = (
        o.join_asof(s, left_on="at", right_on="base", by="customer_id", strategy="backward",
                    tolerance=dt.timedelta(days=7) - dt.timedelta(microseconds=1), check_sortedness=False)
        .filter(pl.col("base").is_not_null()).group_by("m").agg(pl.len().alias("v"))
    )
    return pl.collect_all([repeat_rate, new, funnel])
times = []
for _ in range(repeat + 1):
    t = time.perf_counter()
    frames = run()
    times.append(time.perf_counter() - t)
names = ["repeat_rate", "new_customers", "funnel_7d"]
out = {n: {str(m): v for m, v in f.iter_rows()} for n, f in zip(names, frames)}
print(json.dumps({"times": times[1:], "values": out, "peak_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss}))
"""

DUCKDB = """
import json, sys, time, duckdb
folder, repeat = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")  # it prints to stdout when a query runs long
o = f"(SELECT * FROM read_parquet('{folder}/orders.parquet') WHERE ts < TIMESTAMP '2026-01-01')"
s = f"(SELECT * FROM read_parquet('{folder}/sessions.parquet') WHERE ts < TIMESTAMP '2026-01-01')"
queries = {
    "repeat_rate": f"SELECT m, 100.0 * count(*) FILTER (WHERE n >= 2) / count(*) FROM (SELECT date_trunc('month', ts)::DATE m, customer_id, count(*) n FROM {o} GROUP BY ALL) GROUP BY m",
    "new_customers": f"SELECT m, count(*) FROM (SELECT customer_id, date_trunc('month', min(ts))::DATE m FROM {o} GROUP BY 1) GROUP BY m",
    "funnel_7d": f"SELECT date_trunc('month', base)::DATE, count(*) FROM (SELECT ord.ts, sess.ts AS base FROM {o} ord ASOF JOIN {s} sess ON ord.customer_id = sess.customer_id AND ord.ts >= sess.ts) WHERE base > ts - INTERVAL 7 DAY GROUP BY 1",
}
times = []
for _ in range(repeat + 1):
    t = time.perf_counter()
    out = {k: {str(m): v for m, v in con.execute(q).fetchall()} for k, q in queries.items()}
    times.append(time.perf_counter() - t)
print(json.dumps({"times": times[1:], "values": out, "peak_kb": __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss}))
"""


def measure(code: str, folder: Path, repeat: int) -> dict:
    """Run one approach in a fresh process: its times, values and peak RSS (MB, the process's own)."""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), str(repeat)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    *_, last = proc.stdout.strip().splitlines()  # anything printed before is the approach's own output
    out = json.loads(last)
    out["peak_mb"] = out.pop("peak_kb") / 1024
    return out


def agree(reference: dict, other: dict, name: str) -> None:
    for kpi, values in reference.items():
        theirs = {k: v for k, v in other[kpi].items() if v}
        ours = {k: v for k, v in values.items() if v}
        assert ours.keys() == theirs.keys(), (name, kpi, sorted(set(ours) ^ set(theirs)))
        for k, v in ours.items():
            assert abs(v - theirs[k]) <= 1e-9 * max(1.0, abs(v)), (name, kpi, k, v, theirs[k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    args = parser.parse_args()
    folder = args.data / f"entities-{args.rows}-{args.customers}"
    generate(args.rows, args.customers, folder)
    runs = {
        name: measure(code, folder, args.repeat)
        for name, code in (("engine", ENGINE), ("polars", POLARS), ("duckdb", DUCKDB))
    }
    agree(runs["polars"]["values"], runs["engine"]["values"], "engine")
    agree(runs["polars"]["values"], runs["duckdb"]["values"], "duckdb")
    base = statistics.median(runs["polars"]["times"])
    print(f"{args.rows:,} orders and sessions, {args.customers:,} customers: all approaches agree")
    print(f"{'approach':<10}{'median s':>10}{'vs polars':>11}{'peak MB':>10}")
    for name, run in runs.items():
        median = statistics.median(run["times"])
        print(f"{name:<10}{median:>10.2f}{median / base:>11.2f}{run['peak_mb']:>10,.0f}")
    with open(args.results, "a") as fh:
        record = {
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "kind": "entities",
            "rows": args.rows,
            "customers": args.customers,
            "results": {
                n: {"median_s": statistics.median(r["times"]), "peak_mb": r["peak_mb"]} for n, r in runs.items()
            },
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
