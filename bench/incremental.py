"""Benchmark of incremental re-evaluation (``kpi watch``): two years of demo data in monthly Parquet files, then
one new day in a file of its own, re-evaluated with the cache against a full run.

    python bench/incremental.py                    # the shipped catalogue over the demo data, scale 1
    python bench/incremental.py --scale 10         # ten times the rows
    python bench/incremental.py --plain            # only the KPIs without entities or conversions

Timed in one process (as ``kpi watch`` runs): ``Catalog.evaluate`` with no cache (full run), and with a cache
primed on the first 730 days, after the 731st day's file lands (median of ``--repeat``, the cache restored
before each). Both results are checked equal, value for value, before any time is reported. Appends a JSON
line to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

HERE = Path(__file__).parent
ROOT = HERE.parent
START = dt.date(2024, 7, 1)
DAYS = 730


def write_data(folder: Path, scale: float) -> dt.date:
    """The demo tables for DAYS + 1 days: monthly files for the first DAYS, the last day in its own file
    (under ``new/``, moved in by the benchmark). Returns the new day."""
    from kpi_demo.generate import generate

    new_day = START + dt.timedelta(days=DAYS)
    for table, frame in generate(42, scale, START, DAYS + 1).items():
        time = next(c for c, t in frame.schema.items() if t == pl.Datetime("us"))
        day = pl.col(time).dt.date()
        (folder / table).mkdir(parents=True)
        (folder / "new").mkdir(exist_ok=True)
        old = frame.filter(day < new_day)
        for (month,), part in old.group_by(pl.col(time).dt.strftime("%Y-%m"), maintain_order=True):
            part.write_parquet(folder / table / f"{month}.parquet")
        frame.filter(day == new_day).write_parquet(folder / "new" / f"{table}.parquet")
    return new_day


def write_specs(folder: Path, data: Path, plain: bool) -> Path:
    """The shipped catalogue with each demo source read from its Parquet folder (``--plain``: KPIs over
    entities or conversions left out)."""
    specs = folder / "specs"
    shutil.copytree(ROOT / "kpi_specs", specs, ignore=shutil.ignore_patterns("tests"))
    text = (specs / "sources.yaml").read_text()
    text = re.sub(r"connector: demo, table: (\w+)", lambda m: f"connector: parquet, path: {data / m[1]}", text)
    (specs / "sources.yaml").write_text(text + f"data_root: {data}\n")
    if plain:
        from kpi_engine import load

        catalog = load(specs)
        heavy = {
            k
            for k, b in catalog.bound.items()
            if re.search(r"\bper\b|conversions\(|\bnew\b|active\(|over_next", b.spec.formula)
        }
        for path in specs.glob("*.yaml"):
            lines = path.read_text()
            for kpi in heavy:
                lines = re.sub(rf"(?ms)^  {kpi}:\n(?:    .*\n|\s*\n)*", "", lines)
            path.write_text(lines)
    return specs


def same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert a.series.keys() == b.series.keys()
    for k in a.series:
        assert_frame_equal(a.series[k], b.series[k], check_exact=True)
    assert a.freshness == b.freshness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plain", action="store_true", help="only KPIs without entities or conversions")
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    args = parser.parse_args()

    from kpi_engine import load
    from kpi_engine.increment import Cache

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        new_day = write_data(data, args.scale)
        catalog = load(write_specs(root, data, args.plain))
        primed = root / "primed"
        catalog.evaluate(new_day - dt.timedelta(days=1), cache=Cache(primed))
        for table in (data / "new").glob("*.parquet"):
            shutil.move(table, data / table.stem / f"{new_day}.parquet")
        catalog = load(root / "specs")
        rows = sum(
            pl.scan_parquet(t / "*.parquet").select(pl.len()).collect().item()
            for t in data.iterdir()
            if t.is_dir() and t.name != "new"
        )

        full_times, inc_times = [], []
        for _ in range(args.repeat + 1):  # the first of each is a warm-up
            start = time.perf_counter()
            full = catalog.evaluate(new_day)
            full_times.append(time.perf_counter() - start)
            work = root / "work"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(primed, work)
            cache = Cache(work)
            start = time.perf_counter()
            inc = catalog.evaluate(new_day, cache=cache)
            inc_times.append(time.perf_counter() - start)
            same(full, inc)
        full_s, inc_s = statistics.median(full_times[1:]), statistics.median(inc_times[1:])
        print(f"{len(catalog.bound)} KPIs, {rows:,} rows in {sum(1 for _ in data.rglob('*.parquet'))} files")
        print(f"full run            {full_s:.3f} s")
        print(f"incremental (+1 day) {inc_s:.3f} s = {inc_s / full_s:.1%} of a full run (results identical)")
        for line in cache.summary():
            print("  " + line)
        record = {
            "bench": "incremental",
            "when": dt.datetime.now().isoformat(timespec="seconds"),
            "scale": args.scale,
            "plain": args.plain,
            "kpis": len(catalog.bound),
            "rows": rows,
            "full_s": round(full_s, 4),
            "incremental_s": round(inc_s, 4),
            "ratio": round(inc_s / full_s, 4),
        }
        with args.results.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "plugins"))
    main()
