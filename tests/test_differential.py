"""Differential tests across backends: random rows and a random catalogue (formulas, grains, dimensions, time
zone, week start, fiscal year, as-of date) must give the same numbers on polars, on DuckDB (its own file and
`engine: duckdb` over the Parquet file), on SQLite and on PostgreSQL, to 1e-9 relative. The databases sort
text as English (PostgreSQL) and their text column ignores case, as real ones may: polars compares bytes.

Rows cluster around the instants where bucketing goes wrong: DST changes (including Lord Howe's half-hour
one), local midnights, month and year ends, and the zones a whole-hour offset misses (Kolkata, Chatham).
CI runs the same examples every time (a red build means the change, not luck); explore with more and new
ones: ``KPI_DIFF_EXAMPLES=500 KPI_DIFF_EXPLORE=1 pytest tests/test_differential.py``.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from dbload import (
    case_insensitive_duckdb,
    case_insensitive_postgres,
    case_insensitive_sqlite,
    to_duckdb,
    to_postgres,
    to_sqlite,
)
from hypothesis import HealthCheck, given, settings
from randomcat import as_of, calendars, catalogue, frame_of, kpis, rows

import kpi_engine

from conftest import pg_database, require, same, write_spec

require("duckdb")
require("psycopg")

EXAMPLES = int(os.environ.get("KPI_DIFF_EXAMPLES", "12"))
RANDOM = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("KPI_DIFF_EXPLORE"),
)


@pytest.fixture(scope="module")
def postgres(pg_server):
    """Its text sorts as English, not by bytes, and `k` ignores case (below): the engine must not care."""
    return pg_database(pg_server, "differential", icu="en")


D = dt.datetime
# what the first runs found, kept as fixed cases: SQLite took 31 March minus 9 months to 1 July (a fiscal
# quarter too late); a SQLite read with no rows failed; SQL's % took the dividend's sign; round() differed;
# an entity's SQL sum of nulls was NULL (polars: 0); days() of two DATE columns failed in SQL; PostgreSQL
# columns with no rows or only NULLs were typed Null; text took the database's collation (test_text_order)
FOUND = [
    (
        [(D(2026, 3, 31, 22, 57), None, 9, -1.25, 2.5, 4)],
        [("count(e.x)", "quarter", "[k]")],
        ("UTC", "saturday", 10),
        dt.date(2026, 4, 19),
    ),
    (
        [(D(2026, 3, 29, 1), None, 0, None, None, 0)],
        [("sum(e.n)", "day", "[]")],
        ("Europe/Paris", "monday", 1),
        dt.date(2026, 1, 15),
    ),
    (
        [(D(2026, 2, 1, 12), "a", -5, -1.75, 1.0, 1), (D(2026, 2, 2, 12), "b", 7, 0.5, None, 1)],
        [
            ("sum(e.x % 0.75) + sum(e.n % -4)", "month", "[k]"),
            ("sum(e.n where x is null) - sum(e.n % 3)", "month", "[]"),
            ("count(visitor where count(e) % 2 == 1)", "month", "[]"),
        ],
        ("UTC", "monday", 1),
        dt.date(2026, 2, 28),
    ),
    (
        [(D(2026, 2, 1, 12), "a", 1, 0.5, 0.5, 1), (D(2026, 2, 2, 12), "a", -7, -2.5, 2.5, 2)],
        [
            ("sum(round(e.x, 0)) + sum(round(e.y * 0.3, 1))", "month", "[]"),
            ("sum(round(e.n * 1.005, 2)) + sum(round(e.n * 25, -2))", "week", "[]"),
        ],
        ("Asia/Kolkata", "sunday", 4),
        dt.date(2026, 2, 28),
    ),
    (
        [(D(2026, 2, 1, 12), "a", 1, None, 0.5, 1), (D(2026, 2, 2, 12), "a", 2, -2.5, 2.5, 2)],
        [("quantile(sum(e.x) per visitor, 0.75) + median(sum(e.n) per visitor)", "month", "[]")],
        ("UTC", "monday", 1),
        dt.date(2026, 2, 28),
    ),
    (
        [(D(2026, 2, 1, 12), "a", 1, None, 0.5, 1), (D(2026, 2, 2, 12), "b", 2, -2.5, 2.5, 2)],
        [("mean(days(e.at - e.at)) + mean(e.n / e.x)", "week", "[k]"), ("sum(e.n)", "day", "[]", 0)],
        ("Europe/Paris", "monday", 1, "date"),
        dt.date(2026, 2, 28),
    ),
    (
        [(D(2026, 3, 29, 1), None, 0, None, None, 0)],
        [
            ('count(e where k in ["a", null]) + sum(e.n where x is not null)', "day", "[]"),
            ("count_distinct(e.v)", "day", "[]"),
        ],
        ("UTC", "monday", 1),
        dt.date(2026, 1, 15),
    ),
    (  # text took the database's collation: English order, and "A" was "a" in a case-insensitive column
        [
            (D(2026, 5, 4, 9), "A", 1, 0.5, 1.0, 1),
            (D(2026, 5, 4, 10), "a", 2, 1.0, None, 2),
            (D(2026, 5, 4, 11), "é", 4, None, 2.5, 1),
            (D(2026, 5, 4, 12), "b", 8, 2.0, 0.0, 3),
        ],
        [
            ('count(e where k < "b") + sum(e.n where k >= "B")', "day", "[k]"),
            ("count_distinct(e.k)", "week", "[]"),
        ],
        ("UTC", "monday", 1),
        dt.date(2026, 5, 10),
    ),
]


@RANDOM
@given(rows, kpis, calendars, as_of)
def test_random_catalogues_agree_on_every_backend(tmp_path_factory, postgres, data, chosen, calendar, day):
    agree(tmp_path_factory, postgres, data, chosen, calendar, day)


@pytest.mark.parametrize("case", range(len(FOUND)))
def test_what_the_random_catalogues_found(tmp_path_factory, postgres, case):
    agree(tmp_path_factory, postgres, *FOUND[case], spark=True)


def agree(
    tmp_path_factory,
    postgres: str,
    data: list[tuple],
    chosen: list[tuple],
    calendar: tuple,
    day: dt.date,
    spark: bool = False,
) -> None:
    """Evaluate the catalogue over the rows on every backend (Spark too when ``spark``: a few seconds a
    catalogue, so for the fixed cases only); each must give the polars engine's frames."""
    folder = tmp_path_factory.mktemp("diff")
    frame = frame_of(data, calendar[3] if len(calendar) > 3 else "naive")
    head, body = catalogue(calendar, chosen)
    frame.write_parquet(folder / "e.parquet")
    to_duckdb(folder / "e.duckdb", {"e": frame})
    to_sqlite(folder / "e.db", {"e": frame})
    table = f"e_{folder.name.replace('-', '_')}"
    to_postgres(postgres, {table: frame})
    # the databases find "A" equal to "a", as a case-insensitive column does: the engine compares bytes
    case_insensitive_duckdb(folder / "e.duckdb", {"e": ("k",)})
    case_insensitive_sqlite(folder / "e.db", {"e": ("k",)})
    case_insensitive_postgres(postgres, {table: ("k",)})
    entity = ", entities: {visitor: v}"
    where = {
        "polars": "connector: parquet, path: ../e.parquet",
        "parquet-duckdb": "connector: parquet, engine: duckdb, path: ../e.parquet",
        "duckdb": f"connector: sql, path: {folder / 'e.duckdb'}, table: e",
        "sqlite": f"connector: sql, path: {folder / 'e.db'}, table: e",
        "postgres": f"connector: sql, url: '{postgres}', table: {table}",
    }
    if spark:
        require("pyspark")
        where["spark"] = "connector: spark, path: ../e.parquet, master: 'local[2]'"
    results = {}
    for backend, source in where.items():
        root = write_spec(folder / backend, f"version: 1\n{head}sources:\n  e: {{{source}, time: at{entity}}}\n{body}")
        results[backend] = kpi_engine.load(root, allow_outside=True).evaluate(day)
    for backend, result in results.items():
        assert not result.failures, (backend, result.failures)
        if backend != "polars":
            assert same(result, results["polars"], backend) >= 1


@RANDOM
@given(rows, kpis, calendars, as_of)
def test_random_catalogues_agree_on_every_file_format(tmp_path_factory, data, chosen, calendar, day):
    """The same rows as Parquet, CSV and NDJSON (its time column text: JSON has no dates) give the same
    frames. The text formats declare their column types, as an export with empty columns must."""
    folder = tmp_path_factory.mktemp("formats")
    frame = frame_of(data, calendar[3])
    frame.write_parquet(folder / "e.parquet")
    frame.write_csv(folder / "e.csv")
    frame.write_ndjson(folder / "e.ndjson")
    head, body = catalogue(calendar, chosen)
    dtypes = "x: float, y: float, k: str, n: int, v: int" + (", at: date" if calendar[3] == "date" else "")
    results = {}
    for fmt in ("parquet", "csv", "ndjson"):
        typed = f", dtypes: {{{dtypes}}}" if fmt != "parquet" else ""
        source = f"connector: {fmt}, path: ../e.{fmt}, time: at, entities: {{visitor: v}}{typed}"
        root = write_spec(folder / fmt, f"version: 1\n{head}sources:\n  e: {{{source}}}\n{body}")
        results[fmt] = kpi_engine.load(root, allow_outside=True).evaluate(day)
    for fmt in ("csv", "ndjson"):
        assert not results[fmt].failures, (fmt, results[fmt].failures)
        assert same(results[fmt], results["parquet"], fmt) >= 1
