"""Start-up: a whole `kpi run` process for 2 KPIs against a Python process running the same query in DuckDB.

    python bench/startup.py                 # 1M rows, median of 9 runs each
    python bench/startup.py --rows 100000 --repeat 3

CTR and ROI by week and channel over one Parquet file of ad events: `kpi run --format json` (every import,
the spec, the plan, the query, the JSON) against `python duck.py` (import duckdb, one SQL query, fetch the
rows), and against the same query hand-written in polars and a bare `import polars` (the floor of any
polars-based engine). All are timed as whole processes, from exec to exit. Also reports which heavy modules
`kpi run` loads. Appends a JSON line to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402
from timing import compile_engine, timed  # noqa: E402

SPEC = """version: 1
sources:
  ads: {connector: parquet, path: ad_events.parquet, time: ts}
kpis:
  ctr: {unit: percent, formula: 100 * sum(ads.clicks) / sum(ads.impressions), grain: week, dimensions: [channel]}
  roi: {unit: percent, formula: 100 * (sum(ads.revenue) - sum(ads.cost)) / sum(ads.cost), grain: week, dimensions: [channel]}
"""
DUCK = """import duckdb
rows = duckdb.sql('''
SELECT date_trunc('week', ts) AS week, channel,
       100.0 * sum(clicks::BIGINT) / sum(impressions::BIGINT) AS ctr,
       100.0 * (sum(revenue) - sum(cost)) / sum(cost) AS roi
FROM read_parquet('{path}') WHERE ts < TIMESTAMP '2026-07-01'
GROUP BY ALL ORDER BY ALL''').fetchall()
assert rows
"""
#: the same query hand-written in polars, the engine's own floor: its import is most of the DuckDB script's time
POLARS = """import polars as pl
ads = pl.scan_parquet('{path}').filter(pl.col('ts') < pl.datetime(2026, 7, 1))
rows = (ads.group_by(pl.col('ts').dt.truncate('1w').alias('week'), 'channel')
    .agg(ctr=100 * pl.col('clicks').sum() / pl.col('impressions').sum(),
         roi=100 * (pl.col('revenue').sum() - pl.col('cost').sum()) / pl.col('cost').sum())
    .sort('week', 'channel').collect())
assert rows.height
"""
HEAVY = ("numpy", "vl_convert", "jinja2", "sqlglot", "duckdb", "pyarrow", "smtplib", "urllib.request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    args = parser.parse_args()
    folder = args.data / f"startup-{args.rows}"
    files = generate(args.rows, folder)
    (folder / "kpis.yaml").write_text(SPEC)
    (folder / "duck.py").write_text(DUCK.format(path=files["ad_events"]))
    (folder / "polars_script.py").write_text(POLARS.format(path=files["ad_events"]))
    kpi = [
        sys.executable,
        "-m",
        "kpi_engine",
        "run",
        str(folder),
        "--as-of",
        "2026-06-30",
        "--format",
        "json",
        "-o",
        str(folder / "out.json"),
    ]
    probe = "import sys, runpy; sys.argv = {argv!r}\ntry: runpy.run_module('kpi_engine', run_name='__main__')\nexcept SystemExit: pass\nprint(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe.format(argv=["kpi", *kpi[3:]])], capture_output=True, text=True, check=True
    ).stdout.split()
    compile_engine()
    timed(kpi, 1)  # warm the file cache
    engine = timed(kpi, args.repeat)
    duck = timed([sys.executable, str(folder / "duck.py")], args.repeat)
    floor = timed([sys.executable, str(folder / "polars_script.py")], args.repeat)
    bare = timed([sys.executable, "-c", "import polars"], args.repeat)
    heavy = [m for m in HEAVY if m in loaded]
    print(
        f"kpi run: {engine:.3f} s; DuckDB script: {duck:.3f} s; ratio {engine / duck:.2f}x ({args.rows:,} rows, median of {args.repeat})"
    )
    print(f"the same query hand-written in polars: {floor:.3f} s; `import polars` alone: {bare:.3f} s")
    print(f"heavy modules kpi run loads: {', '.join(heavy) or 'none'}")
    line = {"bench": "startup", "rows": args.rows, "kpi_run_s": round(engine, 3), "duckdb_script_s": round(duck, 3),
            "polars_script_s": round(floor, 3), "import_polars_s": round(bare, 3),
            "ratio": round(engine / duck, 2), "heavy_modules": heavy}  # fmt: skip
    with args.results.open("a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
