"""A smoke run of the benchmark (100k rows): it must keep working and its four approaches must agree.
No timing is asserted here; times are judged by the benchmark itself (docs/performance.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require

ROOT = Path(__file__).parents[1]


@pytest.fixture()
def bench(tmp_path: Path):
    """Run a benchmark script with its data and results under tmp_path: tests never write into the tree."""

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        where = ["--data", str(tmp_path / "data"), "--results", str(tmp_path / "results.jsonl")]
        return subprocess.run(
            [sys.executable, f"bench/{script}", *args, *where], cwd=ROOT, capture_output=True, text=True, timeout=600
        )

    return run


def test_benchmark_smoke_run_agrees(bench, tmp_path):
    require("duckdb")
    results = tmp_path / "results.jsonl"
    before = 0
    res = bench("run.py", "--rows", "100000", "--repeat", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all approaches agree on" in res.stdout
    for name in ("engine", "fused_polars", "duckdb_sql", "naive_per_kpi"):
        assert name in res.stdout
    lines = results.read_text().splitlines()
    assert len(lines) == before + 1
    record = json.loads(lines[-1])
    assert record["rows"] == 100000 and record["ratios"]["fused_polars"] == 1.0


def test_memory_cap_run_stops_a_mode_at_the_cap_and_lets_the_others_finish(bench):
    """bench/memory.py at 100k rows: with no practical cap every mode finishes; with a cap below what
    Python and polars need to start, every mode is stopped (the watch works)."""
    ok = bench("memory.py", "--rows", "100000", "--cap-mb", "100000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count("finished: peak") == 3, ok.stdout
    capped = bench("memory.py", "--rows", "100000", "--cap-mb", "30", "--modes", "streaming")
    assert capped.returncode == 0 and "streaming  stopped at the cap" in capped.stdout, capped.stdout + capped.stderr


def test_memory_cap_run_on_spark_gives_the_polars_values(bench, tmp_path):
    """bench/memory.py's spark mode reads the same files through the spark connector, its JVM counted in the
    resident memory, and its values sum to polars'."""
    require("pyspark")
    res = bench("memory.py", "--rows", "100000", "--cap-mb", "100000", "--modes", "streaming", "spark")
    assert res.returncode == 0, res.stdout + res.stderr
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    polars_run, spark_run = record["results"]
    assert spark_run["mode"] == "spark" and spark_run["ok"] and spark_run["rows"] == polars_run["rows"] > 7000
    assert math.isclose(spark_run["value_sum"], polars_run["value_sum"], rel_tol=1e-9)
    assert spark_run["peak_mb"] > 300  # the JVM's memory is counted, not only Python's


def test_entity_benchmark_smoke_run_agrees(bench, tmp_path):
    """bench/entities.py at 100k rows: the engine, hand-written polars and DuckDB SQL agree on repeat rate,
    new customers and a 7-day funnel (the check runs before any time is printed)."""
    require("duckdb")
    res = bench("entities.py", "--rows", "100000", "--customers", "10000", "--repeat", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all approaches agree" in res.stdout
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["kind"] == "entities" and set(record["results"]) == {"engine", "polars", "duckdb"}


def test_pushdown_benchmark_smoke_run_agrees_and_caps_the_pull(bench, tmp_path):
    """bench/pushdown.py at 20k rows on a throwaway PostgreSQL and a DuckDB file: pushed and pulled values
    agree before any time is printed, pushdown moves fewer bytes, and a pull under a cap too small for the
    rows is stopped and recorded as such."""
    require("duckdb")
    require("psycopg")
    res = bench("pushdown.py", "--rows", "20000", "--repeat", "1", "--pull-cap-mb", "100000")
    assert res.returncode == 0, res.stdout + res.stderr
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    for backend in ("postgres", "duckdb"):
        figures = record["results"][backend]
        assert figures["pushdown_bytes"] < figures["pull_bytes"], figures
    capped = bench("pushdown.py", "--rows", "20000", "--repeat", "1", "--pull-cap-mb", "60")
    assert capped.returncode == 0, capped.stdout + capped.stderr
    assert "pulling the rows into polars stopped at the 60 MB cap" in capped.stdout
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert record["results"]["postgres"]["pull"]["stopped_mb"] > 60


def test_report_benchmark_smoke_run(tmp_path):
    """bench/report.py grows the demo catalogue and times both commands (one run, 42 KPIs)."""
    results = tmp_path / "results.jsonl"
    res = subprocess.run([sys.executable, "bench/report.py", "--kpis", "42", "--repeat", "1", "--results", str(results)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    line = json.loads(results.read_text().splitlines()[-1])
    assert line["kpis"] == 42 and line["report_s"] > 0 and line["run_s"] > 0
    assert "42 KPIs (42 report sections)" in res.stdout


def test_incremental_benchmark_smoke_run(tmp_path):
    """bench/incremental.py on a small scale: the cached re-run after one new day equals a full run (it checks
    before timing) and recomputes only from the new day on for the sources without entity KPIs."""
    results = tmp_path / "results.jsonl"
    res = subprocess.run([sys.executable, "bench/incremental.py", "--scale", "0.05", "--repeat", "1", "--results", str(results)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    line = json.loads(results.read_text().splitlines()[-1])
    assert line["kpis"] == 40 and 0 < line["incremental_s"] and 0 < line["full_s"]
    assert "(results identical)" in res.stdout
    assert "ads: rows changed from 2026-07-01, periods from 2026-07-01 recomputed" in res.stdout
