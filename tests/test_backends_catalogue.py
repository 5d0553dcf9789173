"""Issue 14: the shipped catalogue (40 KPIs, kpi_specs/) gives the same numbers when its demo tables live in a
DuckDB file or a PostgreSQL database instead of Parquet files: what the database can aggregate is pushed
down (entity history and cohorts included), the rest (conversions, plugin functions) reads the rows from it."""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from dbload import to_duckdb, to_postgres, to_sqlite
from test_backends import same

import kpi_engine
from kpi_engine.connectors import ScanRequest
from kpi_engine.plan import Window
from kpi_engine.pushdown import push_plan
from kpi_engine.targets import span_requests

from conftest import pg_database, require

duckdb = require("duckdb")
psycopg = require("psycopg")
SPECS = Path(__file__).parent.parent / "kpi_specs"
AS_OF = dt.date(2026, 6, 30)


@pytest.fixture(scope="module")
def demo() -> tuple[kpi_engine.Result, dict[str, pl.DataFrame]]:
    """The catalogue's result over the demo connector (with its targets' windows), and every demo table."""
    catalog = kpi_engine.load(SPECS)
    tables = {}
    for spec in catalog.project.sources.values():
        schema = catalog.schemas[spec.name]
        frame = catalog.registry.connectors["demo"].scan(spec, ScanRequest(tuple(schema), spec.time), catalog.env)
        tables[spec.options["table"]] = frame.collect()
    return catalog.evaluate(AS_OF, spans=span_requests(catalog.project, AS_OF)), tables


def moved(tmp_path: Path, location: str) -> Path:
    """A copy of kpi_specs/ whose sources are tables of the database at ``location`` (a source's options,
    ``{table}`` standing for each demo table's name)."""
    root = tmp_path / "specs"
    shutil.copytree(SPECS, root, ignore=shutil.ignore_patterns("tests"))
    text = (root / "sources.yaml").read_text()
    text, n = re.subn(r"connector: demo, table: (\w+)", lambda m: location.format(table=m.group(1)), text)
    assert n == 9
    (root / "sources.yaml").write_text(text)
    return root


def test_the_catalogue_in_duckdb(demo, tmp_path, monkeypatch):
    """... and the rows that do leave DuckDB are only the columns their groups need: the funnel's sessions,
    the orders it matches (customer and time), the survey's scores."""
    from kpi_sql import SqlConnector

    expected, tables = demo
    to_duckdb(tmp_path / "demo.duckdb", tables)
    scans, scan = {}, SqlConnector.scan

    def recorded(self, source, request, env):
        scans[source.name] = request.columns
        return scan(self, source, request, env)

    monkeypatch.setattr(SqlConnector, "scan", recorded)
    check(moved(tmp_path, f"connector: sql, path: {tmp_path / 'demo.duckdb'}, table: {{table}}"), expected)
    assert sorted(scans) == ["orders", "sessions", "survey"]
    assert scans["orders"] == ("customer_id", "ordered_at")


def test_the_catalogue_in_postgres(demo, pg_server, tmp_path):
    expected, tables = demo
    url = pg_database(pg_server, "demo")
    to_postgres(url, tables)
    check(moved(tmp_path, f"connector: sql, url: '{url}', table: {{table}}"), expected)


def test_the_catalogue_in_sqlite(demo, tmp_path):
    """The catalogue's time zone is not UTC, which SQLite cannot convert to: every source reads its rows."""
    expected, tables = demo
    to_sqlite(tmp_path / "demo.db", tables)
    check(moved(tmp_path, f"connector: sql, path: {tmp_path / 'demo.db'}, table: {{table}}"), expected, pushes=False)


def test_the_catalogue_on_spark(demo, tmp_path):
    """Spark in local mode over the demo tables as Parquet files."""
    require("pyspark")
    expected, tables = demo
    data = tmp_path / "lake"
    data.mkdir()
    for name, frame in tables.items():
        frame.write_parquet(data / f"{name}.parquet")
    root = moved(tmp_path, f"connector: spark, master: 'local[2]', path: {data}/{{table}}.parquet")
    check(root, expected)


def check(root: Path, expected: kpi_engine.Result, pushes: bool = True) -> None:
    catalog = kpi_engine.load(root, allow_outside=True)
    pushed, reasons = push_plan(catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions)
    if pushes:  # sums, ratios, durations, entity history and cohorts run in the database
        assert sorted(pushed) == ["ads", "brand", "crm", "feedback", "mentions", "orders", "sessions", "tickets"]
        rest = {name: set(p.rest.values()) for name, p in pushed.items() if p.rest}
        assert rest == {"sessions": {"`conversions(sessions, orders, 7 days per customer)` matches rows in polars"}}
        matched = {name: sorted(p.matched) for name, p in pushed.items() if p.matched}
        assert matched == {"orders": ["customer_id", "ordered_at"]}  # all orders reads: what the funnel matches
        assert reasons == {"survey": "nps() is a plugin's function, computed in polars"}  # (a plugin's function)
        explained = catalog.explain(Window(AS_OF))
        assert "its rows are read for the conversions that match them (columns ['customer_id', 'ordered_at'])" in explained
    else:
        assert pushed == {} and len(reasons) == 9
    result = catalog.evaluate(AS_OF, spans=span_requests(catalog.project, AS_OF))
    assert sorted(result.series) == sorted(expected.series) and len(result.series) == 40
    assert result.spans.keys() == expected.spans.keys() and expected.spans  # targets' windows and baselines
    for key, frame in expected.spans.items():
        assert_close(result.spans[key], frame, key)
    everything = catalog.evaluate(AS_OF, all_time=True)  # one span per KPI: every day up to as-of
    for kpi, frame in kpi_engine.load(SPECS).evaluate(AS_OF, all_time=True).series.items():
        assert_close(everything[kpi], frame, kpi)
    assert same(result, expected) > 5000
    assert result.cohorts.keys() == expected.cohorts.keys() and expected.cohorts  # the cohort matrices too
    for kpi, columns in expected.cohorts.items():
        for k, frame in columns.items():
            assert_close(result.cohorts[kpi][k], frame, (kpi, k))


def assert_close(got: pl.DataFrame, frame: pl.DataFrame, what: object) -> None:
    """Equal frames, values to 1e-9 relative."""
    assert got.drop("value").equals(frame.drop("value")), what
    assert all(
        (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9))
        for a, b in zip(got["value"].to_list(), frame["value"].to_list(), strict=True)
    ), what
