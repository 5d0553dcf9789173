"""Benchmark: pushdown (the database aggregates) against pulling the rows into polars, on PostgreSQL and DuckDB.

    python bench/pushdown.py --rows 10000000              # the issue's size (PostgreSQL and DuckDB)
    python bench/pushdown.py --rows 100000000 --repeat 1 --pull-cap-mb 16000
    python bench/pushdown.py --rows 200000 --repeat 1     # a quick look

The benchmark catalogue's KPIs over ads and sessions (16 KPIs: week x channel and month) run over the same
rows in a throwaway PostgreSQL cluster and in a DuckDB file, once aggregated in the database and once with
the rows read into polars (the sql connector's row scan, as before pushdown). Both must give the same
numbers before any time is printed. Reported: median wall time of ``--repeat`` runs after a warm-up, and
the bytes that left the database (the size of every frame the connector returned). With ``--pull-cap-mb``
the runs that pull the rows go in a child process stopped when its resident memory passes the cap (at 100M
rows the rows do not fit): the record then says where it stopped. Results are appended to
bench/results.jsonl (or --results FILE).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from generate import generate  # noqa: E402
from pgcluster import cluster  # noqa: E402

AS_OF = dt.date(2026, 12, 31)
TABLES = {"ads": "ad_events", "sessions": "sessions"}


def catalogue(location: str) -> str:
    """The benchmark catalogue's KPIs over ads and sessions, their sources in the database at ``location``."""
    text = (HERE / "catalogue.yaml").read_text()
    kpis = text[text.index("kpis:\n") :].splitlines(keepends=True)
    kept = "".join(line for line in kpis if "tickets" not in line and "mentions" not in line)
    where = f"url: '{location}'" if "://" in location else f"path: {location}"
    sources = "".join(f"  {n}: {{connector: sql, {where}, table: {t}, time: ts}}\n" for n, t in TABLES.items())
    return f"version: 1\ntimezone: UTC\nsources:\n{sources}{kept}"


def load_postgres(url: str, folder: Path) -> None:
    from dbload import to_postgres

    to_postgres(url, {table: pl.read_parquet(folder / f"{table}.parquet") for table in TABLES.values()})


def load_duckdb(path: Path, folder: Path) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        for table in TABLES.values():
            con.execute(f"CREATE TABLE \"{table}\" AS SELECT * FROM read_parquet('{folder / table}.parquet')")


def run(root: Path, pushdown: bool, repeat: int) -> dict:
    """Times and bytes moved of ``repeat`` runs (after a warm-up), pushed down or reading the rows."""
    import kpi_engine
    from kpi_sql import SqlConnector

    moved = [0]
    read, database = SqlConnector._read, SqlConnector.database

    def counted(self, source, env, sql, params):  # type: ignore[no-untyped-def]
        frame = read(self, source, env, sql, params)
        moved[0] += frame.estimated_size()
        return frame

    SqlConnector._read = counted  # type: ignore[method-assign]
    if not pushdown:
        SqlConnector.database = lambda self, source, env: None  # type: ignore[method-assign]
    try:
        times, values = [], {}
        for _ in range(repeat + 1):
            moved[0] = 0
            started = time.perf_counter()
            result = kpi_engine.load(root, allow_outside=True).evaluate(AS_OF)
            times.append(time.perf_counter() - started)
        values = {
            k: v.select("period", "is_total", *[c for c in v.columns if c == "channel"], "value")
            for k, v in result.series.items()
        }
        return {"times": times[1:], "bytes": moved[0], "values": values}
    finally:
        SqlConnector._read, SqlConnector.database = read, database  # type: ignore[method-assign]


def run_capped(root: Path, repeat: int, cap_mb: float) -> dict:
    """``run(root, False, repeat)`` in a child process watched by bench/memory.py's ``watched``, killed past
    ``cap_mb`` of resident memory: its result, or ``{"stopped_mb", "after_s"}``."""
    from memory import watched

    pull = watched([sys.executable, __file__, "--pull-child", str(root), "--repeat", str(repeat)], cap_mb)
    if not pull["ok"]:
        return {"stopped_mb": pull["peak_mb"], "after_s": pull["seconds"]}
    if pull["returncode"]:
        raise SystemExit(f"pulling the rows failed:\n{pull['err']}")
    result = json.loads(pull["out"])
    result["values"] = {k: pl.DataFrame({"value": v}) for k, v in result["values"].items()}
    return result | {"peak_mb": pull["peak_mb"]}


def agree(a: dict, b: dict) -> None:
    for kpi, frame in a.items():
        for x, y in zip(frame["value"].to_list(), b[kpi]["value"].to_list(), strict=True):
            assert (x is None) == (y is None) and (x is None or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)), kpi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    parser.add_argument("--pull-cap-mb", type=float, help="run the row pulls in a child stopped at this RSS")
    parser.add_argument("--pull-child", type=Path, help=argparse.SUPPRESS)  # (run_capped's child)
    args = parser.parse_args()
    if args.pull_child:
        pulled = run(args.pull_child, False, args.repeat)
        values = {k: v["value"].cast(pl.Float64).to_list() for k, v in pulled["values"].items()}
        print(json.dumps({"times": pulled["times"], "bytes": pulled["bytes"], "values": values}))
        return
    folder = args.data / str(args.rows)
    generate(args.rows, folder)
    work = folder.parent / f"{folder.name}-pushdown"  # beside the data: a spec inside it would join its catalogue
    work.mkdir(exist_ok=True)
    record = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "kind": "pushdown",
        "rows": args.rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": {},
    }
    with cluster() as url:
        started = time.perf_counter()
        load_postgres(url, folder)
        print(f"loaded {args.rows:,} rows per table into PostgreSQL in {time.perf_counter() - started:.0f} s")
        duck = work / "shop.duckdb"
        if not duck.exists():
            load_duckdb(duck, folder)
        for backend, location in (("postgres", url), ("duckdb", str(duck))):
            root = work / backend
            root.mkdir(exist_ok=True)
            (root / "kpis.yaml").write_text(catalogue(location))
            pushed = run(root, True, args.repeat)
            pulled = (
                run_capped(root, args.repeat, args.pull_cap_mb) if args.pull_cap_mb else run(root, False, args.repeat)
            )
            fast = statistics.median(pushed["times"])
            if "stopped_mb" in pulled:  # the rows did not fit under the cap
                print(
                    f"{backend}: pushdown {fast:.2f} s, {pushed['bytes']:,} bytes moved; pulling the rows into polars "
                    f"stopped at the {args.pull_cap_mb:,.0f} MB cap after {pulled['after_s']:.0f} s"
                )
                record["results"][backend] = {"pushdown_s": fast, "pushdown_bytes": pushed["bytes"], "pull": pulled}
                continue
            agree(pushed["values"], pulled["values"])
            slow = statistics.median(pulled["times"])
            share = pushed["bytes"] / pulled["bytes"]
            print(
                f"{backend}: pushdown {fast:.2f} s, rows pulled into polars {slow:.2f} s ({slow / fast:.1f}x); "
                f"bytes moved {pushed['bytes']:,} vs {pulled['bytes']:,} ({100 * share:.3f}%)"
            )
            record["results"][backend] = {
                "pushdown_s": fast,
                "pull_s": slow,
                "pushdown_bytes": pushed["bytes"],
                "pull_bytes": pulled["bytes"],
            }
    with open(args.results, "a") as fh:
        fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
