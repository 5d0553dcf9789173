"""Text in a database compares, groups, counts and joins by its bytes, as polars does, whatever the
database's collation.

A database sorts text by its collation: PostgreSQL servers usually run `en_US.UTF-8` or an ICU locale,
where `"B" < "a"` is false, and a column may declare a case-insensitive collation (`COLLATE NOCASE` in
SQLite and DuckDB, a nondeterministic ICU collation in PostgreSQL), where `"Email" == "email"`. The polars
path compares UTF-8 bytes. A pushed-down query must give the polars numbers on such databases too.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from dbload import (
    case_insensitive_duckdb,
    case_insensitive_postgres,
    case_insensitive_sqlite,
    to_duckdb,
    to_postgres,
    to_sqlite,
)

import kpi_engine
from kpi_engine.plan import Window

from conftest import pg_database, require, same, write_spec

psycopg = require("psycopg")
duckdb = require("duckdb")

AS_OF = dt.date(2026, 1, 7)
DAY = dt.datetime(2026, 1, 5, 9)

#: (hours after 9:00 on 5 January, channel, name, customer, value)
ROWS = [
    (0, "Email", "b", "Ann", 1),
    (1, "affiliate", "B", "ann", 2),
    (2, "email", "é", "Bob", 4),
    (24, "Search", "a", "bob", 8),
    (25, "display", "A", "Ann", 16),
    (26, "E-mail", "Z", "Zoë", 32),
    (48, "email", "z", "ANN", 64),
    (49, "émail", None, "ann", 128),
    (50, None, "ä", None, 256),
]
#: the case-insensitive columns of each table (the lookup's key too)
KEYS = {"t": ("channel", "customer"), "people": ("customer",)}
PEOPLE = [("Ann", "North"), ("bob", "South"), ("Zoë", "West"), ("ANN", "East")]  # "ann" and "Bob" are not in it

KPIS = """
kpis:
  below_b: {unit: count, grain: day, formula: 'count(t where channel < "b")'}
  from_a: {unit: count, grain: day, formula: 'sum(t.v where name >= "a")'}
  by_channel: {unit: count, grain: day, dimensions: [channel], formula: sum(t.v)}
  email: {unit: count, grain: day, formula: 'count(t where channel == "email")'}
  listed: {unit: count, grain: day, formula: 'count(t where channel in ["email", "Search"])'}
  not_email: {unit: count, grain: day, formula: 'count(t where channel != "email")'}
  channels: {unit: count, grain: day, formula: count_distinct(t.channel)}
  customers: {unit: count, grain: week, formula: count_distinct(t.customer)}
  by_region: {unit: count, grain: day, dimensions: [region], formula: sum(t.v)}
  per_customer: {unit: ratio, grain: week, formula: mean(sum(t.v) per customer)}
  new_customers: {unit: count, grain: day, dimensions: [channel], formula: count(customer where new)}
  plain_by_channel: {unit: count, grain: day, dimensions: [channel], formula: sum(plain.v)}
  plain_per_buyer: {unit: ratio, grain: week, formula: mean(sum(plain.v) per buyer)}
  plain_new_buyers: {unit: count, grain: day, dimensions: [channel], formula: count(buyer where new)}
  kept: {unit: count, grain: day, formula: count(customer where not new and active(-1))}
"""


def frames() -> dict[str, pl.DataFrame]:
    t = pl.DataFrame(
        {
            "ts": [DAY + dt.timedelta(hours=h) for h, *_ in ROWS],
            "channel": [r[1] for r in ROWS],
            "name": [r[2] for r in ROWS],
            "customer": [r[3] for r in ROWS],
            "v": [r[4] for r in ROWS],
        }
    )
    people = pl.DataFrame({"customer": [p for p, _ in PEOPLE], "region": [r for _, r in PEOPLE]})
    return {"t": t, "people": people}


def spec(root: Path, where: str) -> Path:
    """The catalogue over tables `t` and `people` at ``where`` (a source's location fields)."""
    head = (
        "version: 1\ntimezone: UTC\n"
        f"lookups:\n  people: {{{where.format(table='people')}, key: customer}}\n"
        f"sources:\n  t: {{{where.format(table='t')}, time: ts, lookups: [people], entities: {{customer: customer}}}}\n"
        # the table itself, joined to nothing (PostgreSQL: its columns' collations are looked up)
        f"  plain: {{{where.format(table='t')}, time: ts, entities: {{buyer: customer}}}}\n"
    )
    return write_spec(root, head + KPIS)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """The polars path's numbers, over the same tables in Parquet files."""
    root = tmp_path_factory.mktemp("text-polars")
    for name, frame in frames().items():
        frame.write_parquet(root / f"{name}.parquet")
    return kpi_engine.load(spec(root, "connector: parquet, path: {table}.parquet")).evaluate(AS_OF)


def test_the_polars_path_compares_bytes(reference):
    """The reference itself, against values worked out by hand from ROWS (upper case before lower case,
    accents after both; "Email" and "email" are two channels)."""
    values = lambda kpi: {(r["start"].day, r.get("channel")): r["value"] for r in reference[kpi].iter_rows(named=True)}  # noqa: E731
    assert values("below_b") == {(5, None): 2, (6, None): 2, (7, None): 0}  # Email, affiliate; Search, E-mail
    assert values("from_a") == {(5, None): 5, (6, None): 8, (7, None): 64 + 256}  # b, é; a; z, ä
    assert values("email") == {(5, None): 1, (6, None): 0, (7, None): 1}
    assert values("channels") == {(5, None): 3, (6, None): 3, (7, None): 2}
    customers = {r["start"]: r["value"] for r in reference["customers"].iter_rows(named=True)}
    assert customers == {dt.date(2026, 1, 5): 6}  # Ann, ann, Bob, bob, Zoë, ANN (a null is none)
    rows = [r for r in reference["by_region"].iter_rows(named=True) if r["start"].day == 5 and r["value"]]
    regions = {"total" if r["is_total"] else r["region"]: r["value"] for r in rows}
    assert regions == {"North": 1, "unknown": 6, "total": 7}  # "ann" and "Bob" are not "Ann" and "bob"


@pytest.fixture(scope="module")
def pg_url(pg_server) -> str:
    """A database whose default collation is ICU's English, `channel` and `customer` (and the lookup's key)
    case-insensitive; and `t_det`, the same rows with the database's own (deterministic) collation."""
    url = pg_database(pg_server, "kpi_text_order", icu="en")
    to_postgres(url, frames())
    case_insensitive_postgres(url, KEYS)
    with psycopg.connect(url, autocommit=True) as con:
        # the database does see the rows its own way: the test would prove nothing otherwise
        assert con.execute("SELECT count(*) FROM t WHERE channel = 'EMAIL'").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM t WHERE name >= 'a'").fetchone()[0] == 8
        keys = ", ".join(f'CAST("{c}" AS TEXT) COLLATE "default" AS "{c}"' for c in ("channel", "customer"))
        con.execute(f"CREATE TABLE t_det AS SELECT ts, name, v, {keys} FROM t")
    return url


def _sqlite(root: Path) -> str:
    path = root / "shop.sqlite"
    to_sqlite(path, frames())
    case_insensitive_sqlite(path, KEYS)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM t WHERE channel = 'EMAIL'").fetchone()[0] == 3
    return f"connector: sql, path: {path}, table: {{table}}"


def _duckdb(root: Path) -> Path:
    path = root / "shop.duckdb"
    to_duckdb(path, frames())
    case_insensitive_duckdb(path, KEYS)
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT count(*) FROM t WHERE channel = 'EMAIL'").fetchone()[0] == 3
    return path


@pytest.mark.parametrize("backend", ["postgres", "sqlite", "duckdb"])
def test_text_compares_groups_counts_and_joins_by_its_bytes(backend, reference, pg_url, tmp_path):
    where = {
        "postgres": lambda: f"connector: sql, url: '{pg_url}', table: {{table}}",
        "sqlite": lambda: _sqlite(tmp_path),
        "duckdb": lambda: f"connector: sql, path: {_duckdb(tmp_path)}, table: {{table}}",
    }
    catalog = kpi_engine.load(spec(tmp_path / "spec", where[backend]()), allow_outside=True)
    explained = catalog.explain(Window(AS_OF))
    for source in ("t", "plain"):
        pushed = next(line for line in explained.splitlines() if line.startswith(f"source {source} aggregates in"))
        assert pushed.endswith("only aggregates are read"), pushed  # pushed down, not read
    assert same(catalog.evaluate(AS_OF), reference, backend) > 30


@pytest.mark.parametrize("backend", ["postgres", "duckdb"])
def test_a_key_stays_plain_where_its_collation_groups_by_bytes(backend, reference, pg_url, tmp_path):
    """`COLLATE` on a group key hides the column's statistics from PostgreSQL's planner, which then picks
    slower plans, and slows DuckDB's grouping: a table column whose collation groups by bytes already stays
    a plain key. One that does not (`t`), or a key of a query or a view, is compared by its bytes. In
    PostgreSQL every comparison is too (the database's locale orders text); DuckDB's plain columns compare
    by their bytes already."""
    if backend == "postgres":
        location, mark = f"url: '{pg_url}'", '"C"'
    else:
        location, mark = f"path: {_duckdb(tmp_path)}", '"binary"'
        with duckdb.connect(location.removeprefix("path: ")) as con:  # (a CAST keeps DuckDB's collation)
            con.register("rows", frames()["t"].to_arrow())
            con.execute("CREATE TABLE t_det AS SELECT * FROM rows")
    kpis = KPIS[KPIS.index("  plain_by_channel") : KPIS.index("  kept")]
    kpis += "  below_b: {unit: count, grain: day, formula: 'count(plain where channel < \"b\")'}\n"
    for table, plain in (("t_det", True), ("t", False)):
        where = f"connector: sql, {location}, table: {table}"
        text = f"version: 1\ntimezone: UTC\nsources:\n  plain: {{{where}, time: ts, entities: {{buyer: customer}}}}\n"
        catalog = kpi_engine.load(write_spec(tmp_path / table, text + "kpis:\n" + kpis), allow_outside=True)
        explained = " ".join(catalog.explain(Window(AS_OF)).split())
        compared = f'( "channel" COLLATE {mark} ) < (' in explained
        assert compared is (backend == "postgres" or not plain), table
        assert (f'"channel" COLLATE {mark} AS "channel"' not in explained) is plain, table
        assert (f'"customer" COLLATE {mark} AS "__who"' not in explained) is plain, table
        assert same(reference, catalog.evaluate(AS_OF), table) > 10  # (each of this catalogue's KPIs)


def test_duckdb_over_parquet_files_compares_their_bytes_with_no_collate(reference, tmp_path):
    """Parquet's strings have no collation, and DuckDB compares them by their bytes: `engine: duckdb` over
    the files writes no `COLLATE` (it costs DuckDB 10% in grouping) and gives the polars numbers.

    A lookup in other Parquet files is joined in polars: the query would read the lookup's `$files` as the
    source's (it checked `t.parquet` for repeated keys, and joined `t` to itself)."""
    for name, frame in frames().items():
        frame.write_parquet(tmp_path / f"{name}.parquet")
    catalog = kpi_engine.load(spec(tmp_path, "connector: parquet, path: {table}.parquet, engine: duckdb"))
    explained = catalog.explain(Window(AS_OF))
    assert "READ_PARQUET" in explained.upper() and "COLLATE" not in explained.upper()
    assert (
        "source t reads its rows into polars (projected, filtered to the days): it joins the lookup people" in explained
    )
    assert same(catalog.evaluate(AS_OF), reference, "parquet via duckdb") > 30
