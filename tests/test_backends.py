"""Issue 14: databases aggregate their own rows (pushdown), with the same numbers as the polars engine.

The acceptance example's rows go into a DuckDB file, a SQLite file and a throwaway PostgreSQL server; the
same KPIs run over each (`connector: sql`) and over the Parquet/CSV files (polars), and must agree to 1e-9
relative on every period, dimension value and flag. Two calendars: UTC with Monday weeks, and
Europe/Paris with Sunday weeks and an April fiscal year. Pushdown is proven, not assumed: on DuckDB and
PostgreSQL the connector's row scan is made to fail, so any row read would stop the run.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import sys
from pathlib import Path

import polars as pl
import pytest
from dbload import to_duckdb, to_postgres, to_sqlite

import kpi_engine
from kpi_engine.plan import Window
from kpi_engine.pushdown import push_plan

import datagen
from conftest import pg_database, require, same, write_spec

duckdb = require("duckdb")
psycopg = require("psycopg")
AS_OF = dt.date(2026, 6, 30)

KPIS = """
kpis:
  ctr: {unit: percent, grain: week, dimensions: [channel], formula: 100 * sum(ads.clicks) / sum(ads.impressions)}
  spend: {unit: currency, grain: month, dimensions: [channel, campaign], formula: sum(ads.cost)}
  roi: {unit: percent, grain: month, formula: 100 * (sum(ads.revenue) - sum(ads.cost)) / sum(ads.cost)}
  clicks_q: {unit: count, grain: quarter, formula: sum(ads.clicks)}
  clicks_y: {unit: count, grain: year, dimensions: [utm_source], formula: sum(ads.clicks)}
  per_cost: {unit: ratio, grain: month, formula: sum(ads.revenue / ads.cost) + sum(ads.clicks % 7)}
  leads: {unit: count, grain: month, formula: count(sessions where lead)}
  bounce: {unit: percent, grain: week, formula: 100 * count(sessions where pageviews == 1) / count(sessions)}
  visitors: {unit: count, grain: month, dimensions: [channel], formula: count_distinct(sessions.visitor_id)}
  converted: {unit: count, grain: day, formula: sum(sessions.converted)}
  pages_p90: {unit: count, grain: month, formula: quantile(sessions.pageviews, 0.9)}
  duration_p75: {unit: count, grain: week, formula: quantile_disc(sessions.duration_s, 0.75)}
  duration_median: {unit: count, grain: month, dimensions: [channel], formula: median(sessions.duration_s)}
  longest: {unit: count, grain: week, formula: max(sessions.duration_s where channel in ["social", "email"])}
  mean_duration: {unit: count, grain: month, formula: mean(sessions.duration_s where not lead)}
  answered: {unit: count, grain: month, dimensions: [channel], formula: count(tickets.first_response_at)}
  response: {unit: count, grain: week, formula: mean(minutes(tickets.first_response_at - tickets.created_at))}
  unanswered: {unit: count, grain: month, formula: count(tickets where first_response_at is null)}
  by_weekday: {unit: count, grain: month, dimensions: [time.weekday], formula: count(sessions)}
  by_hour: {unit: count, grain: quarter, dimensions: [time.hour], formula: count(sessions where converted)}
  clicks_last_day: {unit: count, grain: month, dimensions: [channel], formula: sum_last_day(ads.clicks)}
  last_cost: {unit: currency, grain: week, dimensions: [channel], formula: last(ads.cost)}
  first_pages: {unit: count, grain: month, formula: first(sessions.pageviews where lead)}
  cost_first_day: {unit: currency, grain: week, formula: 'sum_first_day(ads.cost where channel == "search")'}
  clicks_by_month_of_year: {unit: count, grain: year, dimensions: [channel, time.month_of_year], formula: sum(ads.clicks)}
  repeat_visitors: {unit: count, grain: month, dimensions: [channel], formula: count(visitor where count(sessions) >= 2)}
  pages_per_visitor: {unit: ratio, grain: week, formula: mean(sum(sessions.pageviews) per visitor)}
  engaged: {unit: count, grain: month, formula: count(visitor where sum(sessions.duration_s) > 600 and count(sessions where lead) >= 1)}
  visits_median: {unit: ratio, grain: quarter, formula: median(count(sessions) per visitor)}
  last_durations: {unit: count, grain: month, dimensions: [channel], formula: sum(last(sessions.duration_s) per visitor)}
  last_day_pages: {unit: count, grain: week, formula: sum(sum_last_day(sessions.pageviews) per visitor)}
  clicks_moved: {unit: count, grain: month, dimensions: [channel], formula: 'previous(sum(ads.clicks), 5 days)'}
  last_cost_moved: {unit: currency, grain: week, formula: 'previous(sum_last_day(ads.cost), 3 days) + previous(sum(ads.cost), 10 days)'}
  new_visitors: {unit: count, grain: month, dimensions: [channel], formula: count(visitor where new)}
  back_again: {unit: percent, grain: week, formula: 100 * count(visitor where active(-1)) / count(visitor)}
  retained: {unit: percent, grain: month, formula: 100 * count(visitor where new and active(1)) / count(visitor where new)}
  pages_ahead: {unit: ratio, grain: quarter, dimensions: [channel], formula: sum(over_next(sum(sessions.pageviews), 2) per visitor where new) / count(visitor where new)}
"""

CALENDARS = {
    "utc": "timezone: UTC\nweek_start: monday\n",
    "paris": "timezone: Europe/Paris\nweek_start: sunday\nfiscal_year_start: 4\n",
}
TABLES = {"ads": "ad_events", "sessions": "sessions", "tickets": "support_tickets"}
ENTITIES = {"sessions": ", entities: {visitor: visitor_id}"}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    folder = tmp_path_factory.mktemp("backend_data")
    datagen.write_example_data(folder)
    tickets = pl.read_csv(folder / "support_tickets.csv", try_parse_dates=True)
    return {
        "ads": pl.read_parquet(folder / "ad_events.parquet"),
        "sessions": pl.read_parquet(folder / "sessions.parquet"),
        "tickets": tickets.with_columns(pl.col("created_at", "first_response_at").cast(pl.Datetime("us"))),
    }


def files_spec(root: Path, tables: dict[str, pl.DataFrame], calendar: str, engine: str = "polars") -> Path:
    """The reference: the same rows as Parquet files, aggregated by polars (or by DuckDB: ``engine``, or by
    Spark in local mode: ``engine="spark"``)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.write_parquet(root / f"{name}.parquet")
    times = {"ads": "ts", "sessions": "ts", "tickets": "created_at"}
    how = "connector: spark, master: 'local[2]'" if engine == "spark" else f"connector: parquet, engine: {engine}"
    sources = "".join(f"  {n}: {{{how}, path: {n}.parquet, time: {times[n]}{ENTITIES.get(n, '')}}}\n" for n in tables)
    return write_spec(root, f"version: 1\n{CALENDARS[calendar]}sources:\n{sources}{KPIS}")


def sql_spec(root: Path, location: str, calendar: str) -> Path:
    times = {"ads": "ts", "sessions": "ts", "tickets": "created_at"}
    sources = "".join(
        f"  {n}: {{connector: sql, {location}, table: {TABLES[n]}, time: {times[n]}{ENTITIES.get(n, '')}}}\n"
        for n in TABLES
    )
    return write_spec(root, f"version: 1\n{CALENDARS[calendar]}sources:\n{sources}{KPIS}")


@pytest.fixture(scope="module")
def postgres(pg_server, tables):
    url = pg_database(pg_server, "backends")
    to_postgres(url, {TABLES[n]: frame for n, frame in tables.items()})
    return url


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory, tables, postgres) -> dict[str, str]:
    """Where each backend's copy of the rows is, as a source's location option."""
    folder = tmp_path_factory.mktemp("dbs")
    to_duckdb(folder / "shop.duckdb", {TABLES[n]: frame for n, frame in tables.items()})
    to_sqlite(folder / "shop.db", {TABLES[n]: frame for n, frame in tables.items()})
    return {
        "duckdb": f"path: {folder / 'shop.duckdb'}",
        "sqlite": f"path: {folder / 'shop.db'}",
        "postgres": f"url: '{postgres}'",
    }


@pytest.mark.parametrize("calendar", list(CALENDARS))
@pytest.mark.parametrize("backend", ["duckdb", "postgres", "sqlite", "parquet-duckdb", "spark"])
def test_every_backend_gives_the_polars_numbers(backend, calendar, tables, databases, tmp_path):
    reference = kpi_engine.load(files_spec(tmp_path / "files", tables, calendar)).evaluate(AS_OF)
    if backend == "parquet-duckdb":  # `engine: duckdb` on Parquet files: DuckDB's read_parquet, in process
        root = files_spec(tmp_path / "duck", tables, calendar, engine="duckdb")
    elif backend == "spark":  # Spark in local mode over the same Parquet files
        require("pyspark")
        root = files_spec(tmp_path / "spark", tables, calendar, engine="spark")
    else:
        root = sql_spec(tmp_path / "db", databases[backend], calendar)
    catalog = kpi_engine.load(root, allow_outside=True)
    pushed, reasons = push_plan(
        catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions
    )
    rest = {name: sorted(set(p.rest.values())) for name, p in pushed.items() if p.rest}
    if backend in ("duckdb", "postgres", "parquet-duckdb"):
        assert sorted(pushed) == ["ads", "sessions", "tickets"] and reasons == {} and rest == {}
    elif backend == "spark":  # (PERCENTILE_DISC too: sqlglot would render it approximate)
        assert sorted(pushed) == ["ads", "sessions", "tickets"] and reasons == {} and rest == {}
    elif calendar == "utc":  # SQLite has no percentiles and no interval type: those groups read their rows
        assert sorted(pushed) == ["ads", "sessions", "tickets"] and reasons == {}
        assert rest == {
            "sessions": ["sqlite has no discrete percentile function", "sqlite has no exact percentile function"],
            "tickets": ["sqlite has no interval type for minutes()"],
        }
    else:  # nor time zones
        assert pushed == {} and set(reasons.values()) == {"sqlite cannot convert times to the time zone Europe/Paris"}
    assert same(catalog.evaluate(AS_OF), reference) > 600


def test_pushed_sources_read_no_rows(databases, tables, tmp_path, monkeypatch):
    """Only aggregates leave the database: the connector's row scan is never called."""
    from kpi_sql import SqlConnector

    def no_rows(*args, **kwargs):
        raise AssertionError("a pushed source read its rows")

    from kpi_spark import SparkConnector

    monkeypatch.setattr(SqlConnector, "scan", no_rows)
    monkeypatch.setattr(SparkConnector, "scan", no_rows)
    for backend in ("duckdb", "postgres"):
        root = sql_spec(tmp_path / backend, databases[backend], "paris")
        result = kpi_engine.load(root, allow_outside=True).evaluate(AS_OF)
        assert result["ctr"].height > 20
    root = files_spec(tmp_path / "spark", {"ads": tables["ads"]}, "paris", engine="spark")
    (root / "kpis.yaml").write_text(
        (root / "kpis.yaml").read_text().split("kpis:")[0] + "kpis:\n" + KPIS.split("kpis:\n")[1].split("  leads:")[0]
    )
    assert kpi_engine.load(root).evaluate(AS_OF)["ctr"].height > 20


def test_a_group_with_no_sql_form_reads_only_its_columns(databases, tables, tmp_path, monkeypatch):
    """A source whose database aggregates most of its groups reads rows only for the others, and only the
    columns those need; the numbers stay the polars engine's."""
    from kpi_sql import SqlConnector

    kpis = (
        "kpis:\n"
        "  ctr: {unit: percent, grain: week, dimensions: [channel], formula: 100 * sum(ads.clicks) / sum(ads.impressions)}\n"
        "  spend: {unit: currency, grain: month, formula: sum(ads.cost)}\n"
        "  clicks_28d: {unit: count, grain: day, window: 28d, formula: sum(ads.clicks)}\n"  # (from the days)
        "  campaigns_28d: {unit: count, grain: week, window: 28d, formula: count_distinct(ads.campaign)}\n"
    )
    reference = files_spec(tmp_path / "files", {"ads": tables["ads"]}, "paris")
    (reference / "kpis.yaml").write_text((reference / "kpis.yaml").read_text().split("kpis:")[0] + kpis)
    root = sql_spec(tmp_path / "db", databases["duckdb"], "paris")
    (root / "kpis.yaml").write_text((root / "kpis.yaml").read_text().split("kpis:")[0] + kpis)
    scans, scan = [], SqlConnector.scan

    def recorded(self, source, request, env):
        scans.append((source.name, request.columns))
        return scan(self, source, request, env)

    monkeypatch.setattr(SqlConnector, "scan", recorded)
    catalog = kpi_engine.load(root, allow_outside=True)
    pushed, reasons = push_plan(
        catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions
    )
    assert reasons == {} and len(pushed["ads"].groups) >= 1
    assert set(pushed["ads"].rest.values()) == {"`window: 28d` periods are computed from the rows"}
    assert same(catalog.evaluate(AS_OF), kpi_engine.load(reference).evaluate(AS_OF)) > 20
    assert scans == [("ads", ("campaign", "ts"))]  # the window's columns (not channel, cost, impressions)
    explained = catalog.explain(Window(AS_OF))
    assert (
        "reads its rows into polars (columns ['campaign', 'ts']): `window: 28d` periods are computed from the rows"
        in explained
    )
    assert 'SUM("impressions")' in explained


def test_sqlite_values_of_another_type_are_read_and_checked(tmp_path):
    """SQLite lets a TIMESTAMP column hold epoch numbers: such a source is not pushed (DATE() would misread
    them silently), its rows are read, and the run stops naming the value."""
    con = sqlite3.connect(tmp_path / "crm.db")
    con.execute("CREATE TABLE t (ts TIMESTAMP, n INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [("2026-04-01 10:00:00", 1), (1777593600, 2)])
    con.commit()
    con.close()
    write_spec(
        tmp_path,
        "version: 1\nsources:\n  t: {connector: sql, path: crm.db, table: t, time: ts}\n"
        "kpis:\n  n: {unit: count, grain: month, formula: sum(t.n)}\n",
    )
    catalog = kpi_engine.load(tmp_path)
    pushed, reasons = push_plan(
        catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions
    )
    assert pushed == {} and reasons == {
        "t": "column `ts` holds values of another type than declared: its rows are read and checked"
    }
    with pytest.raises(kpi_engine.KpiError, match="declared TIMESTAMP but row 2 holds '1777593600'"):
        catalog.evaluate(AS_OF)


def test_explain_shows_the_sql_and_no_password(databases, postgres, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from kpi_engine.cli import main

    monkeypatch.setenv("SHOP_DB", postgres)
    root = sql_spec(tmp_path, "url: '${env:SHOP_DB}'", "paris")
    res = CliRunner().invoke(main, ["run", str(root), "--as-of", "2026-06-30", "--kpi", "ctr", "--explain"])
    assert res.exit_code == 0, res.output
    assert "source ads aggregates in postgres (postgresql://kpi:***@127.0.0.1:" in res.output
    assert 'FROM "ad_events"' in res.output and "AT TIME ZONE" in res.output and "%(p" in res.output
    assert "s3cret" not in res.output
    monkeypatch.delenv("SHOP_DB")
    res = CliRunner().invoke(main, ["run", str(root), "--as-of", "2026-06-30", "--kpi", "ctr"])
    assert res.exit_code == 2
    assert "reads the environment variable `SHOP_DB` (option `url`), which is not set" in res.output


def test_a_database_error_names_the_source_without_the_password(postgres, tmp_path):
    wrong = postgres.replace(":s3cret@", ":wrong-s3cret@")
    root = sql_spec(tmp_path, f"url: '{wrong}'", "utc")
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(root).evaluate(AS_OF)
    text = info.value.render()
    assert "cannot query source `ads`" in text and "password authentication failed" in text
    assert "s3cret" not in text


GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("dialect", ["bigquery", "snowflake", "spark"])
def test_rendering_only_dialects_match_their_golden_sql(dialect, tables, tmp_path):
    """BigQuery, Snowflake and Spark SQL are rendered, not run (no server here): every group of the Paris
    calendar's plan must render as the golden file says, parse back in that dialect, and hold no value
    inline (every value a parameter). KPI_UPDATE_GOLDEN=1 rewrites the files after a deliberate change."""
    import os

    import sqlglot
    from sqlglot import exp

    from kpi_engine.sqlentities import entity_queries
    from kpi_engine.sqlgen import NotPushable, SqlCompiler

    catalog = kpi_engine.load(files_spec(tmp_path, tables, "paris"))
    plan = catalog.plan(Window(AS_OF))
    parts = []
    for name, sp in plan.sources.items():
        compiler = SqlCompiler(dialect, sp, plan, exp.Table(this=exp.to_identifier(TABLES[name], quoted=True)), {})
        for group in (g for g in sp.groups.values() if g.derive_from is None):
            try:
                queries = {"": compiler.group(group), **entity_queries(compiler, group)}
            except NotPushable as why:
                parts.append(f"-- {name}: {group.grain} x {list(group.dims)}: rows read ({why})\n")
                continue
            for per, query in queries.items():
                sqlglot.parse_one(query.sql, read=dialect)  # valid in its dialect
                assert "'Europe/Paris'" not in query.sql and "2026-07-01" not in query.sql
                params = ", ".join(f"{k}={v!r}" for k, v in query.params.items())
                what = f" per {per}" if per else ""
                parts.append(f"-- {name}: {group.grain} x {list(group.dims)}{what} -- {params}\n{query.pretty};\n")
    text = "\n".join(parts)
    golden = GOLDEN / f"{dialect}.sql"
    if os.environ.get("KPI_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
    assert text.count("SELECT") >= 5


EDGES = """
kpis:
  total: {unit: count, grain: day, formula: sum(e.n)}
  ratio: {unit: ratio, grain: day, dimensions: [k], formula: sum(e.x / e.y)}
  share: {unit: percent, grain: month, formula: 100 * sum(e.x) / sum(e.y)}
  nulls: {unit: count, grain: month, dimensions: [k], formula: count(e.x) + count(e where x is null)}
  distinct: {unit: count, grain: week, formula: count_distinct(e.k)}
  last_x: {unit: ratio, grain: month, formula: last(e.x)}
  first_y: {unit: ratio, grain: month, dimensions: [k], formula: first(e.y)}
  hours: {unit: count, grain: year, dimensions: [time.hour], formula: sum(e.n)}
"""


def edge_rows() -> pl.DataFrame:
    """Rows at DST changes and local midnights (Europe/Paris), nulls, zero denominators, a null dimension."""
    at = [
        dt.datetime(2026, 3, 28, 22, 59),
        dt.datetime(2026, 3, 28, 23, 0),  # 23:59 / 00:00 Paris (UTC+1)
        dt.datetime(2026, 3, 29, 0, 30),
        dt.datetime(2026, 3, 29, 1, 0),  # the spring-forward night
        dt.datetime(2026, 10, 24, 21, 59),
        dt.datetime(2026, 10, 24, 22, 0),  # 23:59 / 00:00 Paris (UTC+2)
        dt.datetime(2026, 10, 25, 0, 30),
        dt.datetime(2026, 10, 25, 1, 30),  # the fall-back night, twice 02:30
        dt.datetime(2026, 12, 31, 22, 59),
        dt.datetime(2026, 12, 31, 23, 0),  # the year's last minute in Paris
        dt.datetime(2026, 12, 31, 22, 59),
        dt.datetime(2026, 3, 28, 22, 59),  # ties: the greater value is last
    ]
    return pl.DataFrame(
        {
            "at": at,
            "k": ["a", "b", None, "a", "b", "b", "a", None, "a", "b", "a", "a"],
            "n": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 0],
            "x": [1.0, None, 2.5, 0.0, 3.0, None, 1.5, 2.0, 4.0, 0.5, 6.0, None],
            "y": [2.0, 1.0, 0.0, 0.0, None, 3.0, 1.0, 0.0, 8.0, 2.0, 2.0, 0.5],
        }
    )


@pytest.mark.parametrize("backend", ["duckdb", "postgres", "parquet-duckdb", "spark"])
def test_edge_cases_agree_with_polars(backend, postgres, tmp_path):
    """DST nights and local midnights in Europe/Paris, nulls, division by zero and a null dimension value
    give the polars engine's values (SQLite has no time zones: its rows are read, as tested above)."""
    frame = edge_rows()
    head = "version: 1\ntimezone: Europe/Paris\nweek_start: sunday\nsources:\n"
    (tmp_path / "files").mkdir()
    frame.write_parquet(tmp_path / "files" / "e.parquet")
    reference = write_spec(tmp_path / "files", head + "  e: {connector: parquet, path: e.parquet, time: at}\n" + EDGES)
    if backend == "parquet-duckdb":
        root = write_spec(
            tmp_path / "files2",
            head + "  e: {connector: parquet, path: ../files/e.parquet, time: at, engine: duckdb}\n" + EDGES,
        )
    elif backend == "spark":
        root = write_spec(
            tmp_path / "files2",
            head + "  e: {connector: spark, path: ../files/e.parquet, time: at, master: 'local[2]'}\n" + EDGES,
        )
    elif backend == "duckdb":
        with duckdb.connect(str(tmp_path / "e.duckdb")) as con:
            con.register("frame", frame.to_arrow())
            con.execute("CREATE TABLE e AS SELECT * FROM frame")
        root = write_spec(
            tmp_path / "db",
            head + f"  e: {{connector: sql, path: {tmp_path / 'e.duckdb'}, table: e, time: at}}\n" + EDGES,
        )
    else:
        with psycopg.connect(postgres, autocommit=True) as con:
            con.execute(
                'DROP TABLE IF EXISTS e; CREATE TABLE e ("at" TIMESTAMP, k TEXT, n BIGINT, x DOUBLE PRECISION, y DOUBLE PRECISION)'
            )
            with con.cursor().copy("COPY e FROM STDIN") as copy:
                for row in frame.rows():
                    copy.write_row(row)
        root = write_spec(
            tmp_path / "db", head + f"  e: {{connector: sql, url: '{postgres}', table: e, time: at}}\n" + EDGES
        )
    expected = kpi_engine.load(reference).evaluate(dt.date(2026, 12, 31))
    catalog = kpi_engine.load(root, allow_outside=True)
    pushed, _ = push_plan(
        catalog.plan(Window(dt.date(2026, 12, 31))),
        catalog.registry.connectors,
        catalog.env,
        catalog.registry.functions,
    )
    assert list(pushed) == ["e"]
    assert same(catalog.evaluate(dt.date(2026, 12, 31)), expected) > 100
    days = {r["start"]: r["value"] for r in expected["total"].iter_rows(named=True) if r["value"]}
    # Paris days: 28 Mar 23:59 is the 28th, 00:00 the 29th; both spring-forward rows on the 29th; 23:59 and
    # 00:00 around 25 Oct; both fall-back rows on the 25th; the year's last minute on the 31st
    assert [r["value"] for r in expected["last_x"].iter_rows(named=True) if r["start"] == dt.date(2026, 12, 1)] == [6.0]
    march = {r["k"]: r["value"] for r in expected["first_y"].iter_rows(named=True) if r["start"] == dt.date(2026, 3, 1)}
    assert march["a"] == 0.5  # 28 Mar 23:59 Paris holds y 2.0 and 0.5 for k a: the smaller is first
    assert days == {
        dt.date(2026, 3, 28): 1,
        dt.date(2026, 3, 29): 2 + 3 + 4,
        dt.date(2026, 10, 24): 5,
        dt.date(2026, 10, 25): 6 + 7 + 8,
        dt.date(2026, 12, 31): 9,
    }, days  # (1 Jan 2027 is after as-of)


def test_integer_sums_past_64_bits_stop_the_run_on_every_backend(postgres, tmp_path):
    """Exact integer sums: a total past the 64-bit range is an error naming the KPI, never a wrapped or
    rounded number, pushed down or not."""
    big = pl.DataFrame({"at": [dt.datetime(2026, 5, 1, 12)] * 2, "n": [2**62, 2**62]})
    kpis = "kpis:\n  total: {unit: count, grain: month, formula: sum(e.n)}\n"
    big.write_parquet(tmp_path / "e.parquet")
    with duckdb.connect(str(tmp_path / "e.duckdb")) as con:
        con.register("frame", big.to_arrow())
        con.execute("CREATE TABLE e AS SELECT * FROM frame")
    with psycopg.connect(postgres, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS e; CREATE TABLE e (at TIMESTAMP, n BIGINT)")
        with con.cursor().copy("COPY e FROM STDIN") as copy:
            for row in big.rows():
                copy.write_row(row)
    for where in (
        "{connector: parquet, path: e.parquet, time: at}",
        "{connector: parquet, path: e.parquet, time: at, engine: duckdb}",
        "{connector: sql, path: e.duckdb, table: e, time: at}",
        f"{{connector: sql, url: '{postgres}', table: e, time: at}}",
    ):
        root = write_spec(tmp_path, f"version: 1\nsources:\n  e: {where}\n{kpis}")
        with pytest.raises(
            kpi_engine.KpiError,
            match=r"sum\(e.n\) is 9223372036854775808 in 2026-05, past the 64-bit integer range .*KPIs: total",
        ):
            kpi_engine.load(root).evaluate(dt.date(2026, 5, 31))


def test_connection_settings_from_a_profiles_file(postgres, tmp_path, monkeypatch):
    """`url: ${profile:shop.url}` reads a profiles file outside the repository (KPI_PROFILES, else
    ~/.kpi/profiles.yml), like dbt's profiles.yml; what is missing is named, passwords never shown."""
    profiles = tmp_path / "secrets" / "profiles.yml"
    profiles.parent.mkdir()
    profiles.write_text(f"shop:\n  url: '{postgres}'\n")
    monkeypatch.setenv("KPI_PROFILES", str(profiles))
    root = sql_spec(tmp_path / "spec", "url: '${profile:shop.url}'", "utc")
    assert kpi_engine.load(root).evaluate(AS_OF)["ctr"].height > 20
    for ref, message in (
        ("${profile:shp.url}", f"no profile `shp` in {profiles}"),
        ("${profile:shop.uri}", f"profile `shop` in {profiles} has no `uri`"),
    ):
        root = sql_spec(tmp_path / ref[10:13], f"url: '{ref}'", "utc")
        with pytest.raises(kpi_engine.KpiError) as info:
            kpi_engine.load(root)
        text = info.value.render()
        assert message in text and "s3cret" not in text, text
    monkeypatch.setenv("KPI_PROFILES", str(tmp_path / "nowhere.yml"))
    with pytest.raises(kpi_engine.KpiError, match="there is no profiles file at"):
        kpi_engine.load(sql_spec(tmp_path / "gone", "url: '${profile:shop.url}'", "utc"))


def test_connection_errors_are_named(tmp_path, monkeypatch):
    """A profile reference without a setting, a profiles file that is no YAML, a spark source with both or
    neither of table and path, and a sql `query` that is no SQL: each a one-screen error naming it."""
    profiles = tmp_path / "profiles.yml"
    profiles.write_text("shop: [unclosed\n")
    monkeypatch.setenv("KPI_PROFILES", str(profiles))
    for ref, message in (
        ("${profile:shop}", "`${profile:shop}` names no setting"),
        ("${profile:shop.url}", "cannot read the profiles file"),
    ):
        with pytest.raises(kpi_engine.KpiError, match=re.escape(message)):
            kpi_engine.load(sql_spec(tmp_path / ref[10:14], f"url: '{ref}'", "utc"))
    for options in ("table: t, path: x.parquet", "master: 'local[1]'"):
        root = write_spec(
            tmp_path / f"spark{len(options)}",
            f"version: 1\nsources:\n  s: {{connector: spark, {options}, time: ts}}\nkpis:\n  n: {{unit: count, grain: day, formula: count(s)}}\n",
        )
        with pytest.raises(kpi_engine.KpiError, match="source `s` needs exactly one of `table` or `path`"):
            kpi_engine.load(root)
    with sqlite3.connect(tmp_path / "q.db") as con:
        con.execute("CREATE TABLE t (ts TIMESTAMP, n INTEGER)")
        con.execute("INSERT INTO t VALUES ('2026-04-01 10:00:00', 1)")
    root = write_spec(
        tmp_path / "q",
        f"version: 1\nsources:\n  s: {{connector: sql, path: {tmp_path / 'q.db'}, query: 'SELECT ts, n FROM t WHERE n >>> 0 ,', time: ts}}\nkpis:\n  n: {{unit: count, grain: day, formula: sum(s.n)}}\n",
    )
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(root, allow_outside=True).evaluate(AS_OF)
    assert "source `s`" in info.value.render()


def test_a_missing_driver_says_what_to_install(databases, postgres, tables, tmp_path, monkeypatch):
    """Without duckdb, psycopg or pyspark installed, a source that needs one stops the run with exit code 2,
    naming the package and the pip command, never a traceback."""
    from click.testing import CliRunner

    from kpi_engine.cli import main

    spark_root = files_spec(tmp_path / "spark", {"ads": tables["ads"]}, "utc", engine="spark")
    spark_spec = (spark_root / "kpis.yaml").read_text().replace("local[2]", "local[1]")  # (a session not made yet)
    (spark_root / "kpis.yaml").write_text(
        spark_spec.split("kpis:")[0] + "kpis:\n" + KPIS.split("kpis:\n")[1].split("  spend:")[0]
    )
    cases = {
        "duckdb": (
            sql_spec(tmp_path / "duck", databases["duckdb"], "utc"),
            "reading a DuckDB database needs the duckdb package",
            "pip install 'kpi-engine[duckdb]'",
        ),
        "psycopg": (
            sql_spec(tmp_path / "pg", databases["postgres"], "utc"),
            "reading PostgreSQL needs the psycopg driver",
            "pip install 'kpi-engine[postgres]'",
        ),
        "pyspark": (spark_root, "the spark connector needs pyspark", "pip install 'kpi-engine[spark]' (and Java 17)"),
        "duckdb-engine": (
            files_spec(tmp_path / "engine", tables, "utc", engine="duckdb"),
            "says `engine: duckdb`, which needs DuckDB",
            "pip install 'kpi-engine[duckdb]', or remove `engine: duckdb`",
        ),
    }
    for package, (root, message, hint) in cases.items():
        with monkeypatch.context() as patch:
            for module in [
                m for m in sys.modules if m == package.split("-")[0] or m.startswith(package.split("-")[0] + ".")
            ]:
                patch.setitem(sys.modules, module, None)
            patch.setitem(sys.modules, package.split("-")[0], None)  # `import x` raises ImportError
            res = CliRunner().invoke(
                main, ["run", str(root), "--as-of", "2026-06-30", "--kpi", "ctr", "--allow-outside"]
            )
        assert res.exit_code == 2, (package, res.output)
        assert message in res.output and hint in res.output, (package, res.output)
        assert "Traceback" not in res.output


@pytest.mark.parametrize("backend", ["polars", "duckdb", "postgres", "sqlite", "parquet-duckdb", "spark"])
def test_an_approximate_distinct_count_only_when_asked_by_name(backend, databases, tables, tmp_path):
    """``approx_count_distinct`` is an estimate in DuckDB and Spark (HyperLogLog): on ~200-700 visitors a
    month, each within 10% and 4% off on average, and not exact. polars, PostgreSQL and SQLite count
    exactly (polars' own estimate was off by up to 16% here). ``count_distinct`` stays exact."""
    kpis = (
        "kpis:\n"
        "  visitors: {unit: count, grain: month, dimensions: [channel], formula: count_distinct(sessions.visitor_id)}\n"
        "  visitors_est: {unit: count, grain: month, dimensions: [channel], formula: approx_count_distinct(sessions.visitor_id)}\n"
    )
    if backend in ("polars", "parquet-duckdb", "spark"):
        engine = {"polars": "polars", "parquet-duckdb": "duckdb", "spark": "spark"}[backend]
        if engine == "spark":
            require("pyspark")
        root = files_spec(tmp_path, {"sessions": tables["sessions"]}, "paris", engine=engine)
    else:
        root = sql_spec(tmp_path, databases[backend], "utc")
    (root / "kpis.yaml").write_text((root / "kpis.yaml").read_text().split("kpis:")[0] + kpis)
    result = kpi_engine.load(root, allow_outside=True).evaluate(AS_OF)
    exact, estimate = result["visitors"]["value"].to_list(), result["visitors_est"]["value"].to_list()
    assert len(exact) > 20 and result["visitors_est"].schema["value"] == pl.Int64
    if backend in ("polars", "postgres", "sqlite"):
        assert estimate == exact
    else:
        errors = [abs(e - x) / x for e, x in zip(estimate, exact, strict=True)]
        assert max(errors) < 0.1 and sum(errors) / len(errors) < 0.04 and max(errors) > 0, (estimate, exact)


def test_explain_prints_every_query_a_source_runs(databases, tmp_path):
    """--explain shows each query a pushed source runs: its groups, their aggregates over entities, moved
    rows, and its data span, each with its parameters."""
    catalog = kpi_engine.load(sql_spec(tmp_path, databases["duckdb"], "paris"), allow_outside=True)
    explained = catalog.explain(Window(AS_OF))
    for title in (
        "-- month x ['channel'], over each visitor_id",
        "-- month x ['channel'], rows moved 5 days",
        "-- the data's first and last day, and rows",
    ):
        assert title in explained, title
    assert explained.count("-- parameters: ") >= explained.count("\n  -- month x") > 5
    assert "ROW_NUMBER() OVER" in explained  # (new visitors: each one's first row)


def test_a_text_time_column_in_a_database_is_read_and_windowed_after_parsing(postgres, tmp_path):
    """A table whose time column is text: the connector gets no time window to compare it with (a VARCHAR
    against a TIMESTAMP failed the source); the engine parses the times and keeps the window's rows. Text
    days are the spec's days (New York here), as in files."""
    frame = pl.DataFrame(
        {"at": ["2026-03-02", "2026-03-30T02:00:00", "2026-03-30", "2026-04-02T12:00:00"], "n": [1, 2, 4, 8]}
    )
    to_duckdb(tmp_path / "t.duckdb", {"t": frame})
    with psycopg.connect(postgres, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS t_text")
    to_postgres(postgres, {"t_text": frame})
    kpis = "kpis:\n  n: {unit: count, grain: day, formula: sum(e.n)}\n"
    for where in (
        f"{{connector: sql, path: {tmp_path / 't.duckdb'}, table: t, time: at}}",
        f"{{connector: sql, url: '{postgres}', table: t_text, time: at}}",
    ):
        root = write_spec(tmp_path / "spec", f"version: 1\ntimezone: America/New_York\nsources:\n  e: {where}\n{kpis}")
        result = kpi_engine.load(root, allow_outside=True).evaluate(dt.date(2026, 3, 31), start=dt.date(2026, 3, 29))
        days = {r["start"]: r["value"] for r in result["n"].iter_rows(named=True)}
        # 02:00 UTC on 30 March is 22:00 on the 29th in New York; 2 March is before the window, 2 April after
        # as-of (so the data ends on the 30th: the 31st has none)
        assert days == {dt.date(2026, 3, 29): 2, dt.date(2026, 3, 30): 4, dt.date(2026, 3, 31): None}, where


def test_a_sqlite_time_column_of_epoch_numbers_or_other_text_keeps_its_rows_in_any_window(tmp_path):
    """SQLite lets a TIMESTAMP or DATE column hold anything: Unix times (`time_unit`), or text in another
    format (`time_format`). A window compared with them as ISO text dropped every row (a number sorts
    before any text, "05/03/2026" before "2026-..."), so `--from` emptied the KPI. Values never depend on
    the window; numbers with no `time_unit` are an error in any window, never an empty KPI."""
    days = [dt.datetime(2026, 3, d, 12, tzinfo=dt.UTC) for d in range(1, 11)]
    cases = {
        "epoch": ("TIMESTAMP", [int(d.timestamp()) for d in days], ", time_unit: s"),
        "text": ("DATE", [d.strftime("%d/%m/%Y") for d in days], ", time_format: '%d/%m/%Y'"),
        "undeclared": ("TIMESTAMP", [int(d.timestamp()) for d in days], ""),
    }
    for name, (declared, values, options) in cases.items():
        path = tmp_path / f"{name}.sqlite"
        with sqlite3.connect(path) as con:
            con.execute(f"CREATE TABLE t (ts {declared}, n INTEGER)")
            con.executemany("INSERT INTO t VALUES (?, ?)", [(v, i + 1) for i, v in enumerate(values)])
        source = f"{{connector: sql, path: {path}, table: t, time: ts{options}}}"
        root = write_spec(
            tmp_path / name,
            f"version: 1\nsources:\n  e: {source}\nkpis:\n  n: {{unit: count, grain: day, formula: sum(e.n)}}\n",
        )
        catalog = kpi_engine.load(root, allow_outside=True)
        for start in (None, dt.date(2026, 3, 5)):
            if name == "undeclared":
                with pytest.raises(kpi_engine.KpiError, match="time_unit"):
                    catalog.evaluate(dt.date(2026, 3, 10), start=start)
                continue
            result = catalog.evaluate(dt.date(2026, 3, 10), start=start)
            got = {r["start"].day: r["value"] for r in result["n"].iter_rows(named=True)}
            assert got == {d: d for d in range(start.day if start else 1, 11)}, (name, start)
