"""Issue 13, item 5: lookup tables joined to sources through their key, checked against DuckDB.

A lookup's columns become dimensions and filter columns of the sources that list it; a key the lookup
lacks (or a null key) is counted under `unknown`, never dropped; a repeated key, a clash of column names,
a missing key column and a key of another type are refused with the file and field at fault.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from pathlib import Path

import polars as pl
import pytest

import kpi_engine
from kpi_engine.execute import build_queries
from kpi_engine.plan import Window

from conftest import require, write_spec

duckdb = require("duckdb")

SPEC = """
version: 1
lookups:
  campaigns: {connector: csv, path: campaigns.csv, key: campaign_id}
sources:
  ads: {connector: parquet, path: ads.parquet, time: ts, lookups: [campaigns]}
  leads: {connector: parquet, path: leads.parquet, time: ts, lookups: [campaigns]}
kpis:
  spend: {unit: currency, grain: week, dimensions: [channel], formula: sum(ads.cost)}
  paid_social: {unit: currency, grain: month, formula: sum(ads.cost where channel == "social" and budget >= 500)}
  cpl: {unit: currency, grain: month, dimensions: [channel], formula: sum(ads.cost) / count(leads)}
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lookups")
    rng = random.Random(17)
    campaigns = [(i, rng.choice(["search", "social", "email"]), rng.choice([200, 500, 900])) for i in range(1, 30)]
    (root / "campaigns.csv").write_text("campaign_id,channel,budget\n" + "".join(f"{i},{c},{b}\n" for i, c, b in campaigns))
    for name, n in (("ads", 5000), ("leads", 800)):
        pl.DataFrame(
            {
                "ts": [dt.datetime(2026, 1, 1) + dt.timedelta(minutes=rng.randrange(60 * 24 * 90)) for _ in range(n)],
                # ids 30-34 are not in the lookup, and some rows have none: both count as `unknown`
                "campaign_id": [rng.choice([*range(1, 35), None]) for _ in range(n)],
                "cost": [round(rng.uniform(1, 50), 2) for _ in range(n)],
            }
        ).write_parquet(root / f"{name}.parquet")
    write_spec(root, SPEC)
    return root


@pytest.fixture(scope="module")
def con(shop: Path):
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute(f"CREATE VIEW c AS SELECT * FROM read_csv('{shop / 'campaigns.csv'}')")
    for name in ("ads", "leads"):
        db.execute(
            f"CREATE VIEW {name} AS SELECT t.*, coalesce(c.channel, 'unknown') AS channel, c.budget "
            f"FROM read_parquet('{shop / (name + '.parquet')}') t LEFT JOIN c USING (campaign_id)"
        )
    yield db
    db.close()


def test_lookup_columns_are_dimensions_and_filters(shop, con):
    result = kpi_engine.load(shop).evaluate(dt.date(2026, 3, 31))
    rows = con.execute(
        "SELECT date_trunc('week', ts)::DATE, channel, sum(cost) FROM ads GROUP BY ALL "
        "UNION ALL SELECT date_trunc('week', ts)::DATE, 'total', sum(cost) FROM ads GROUP BY ALL"
    ).fetchall()
    got = {(r["start"], "total" if r["is_total"] else r["channel"]): r["value"] for r in result["spend"].iter_rows(named=True)}
    assert got.keys() == {(w, ch) for w, ch, _ in rows}
    assert all(math.isclose(got[(w, ch)], v, rel_tol=1e-12) for w, ch, v in rows)
    assert any(ch == "unknown" for _, ch in got)  # unmatched and missing keys are kept
    social = dict(
        con.execute(
            "SELECT date_trunc('month', ts)::DATE, sum(cost) FROM ads WHERE channel = 'social' AND budget >= 500 GROUP BY 1"
        ).fetchall()
    )
    got = {r["start"]: r["value"] for r in result["paid_social"].iter_rows(named=True)}
    assert got == pytest.approx(social, rel=1e-12)
    cpl = con.execute(
        """SELECT a.m, a.channel, a.cost / l.n FROM
           (SELECT date_trunc('month', ts)::DATE m, channel, sum(cost) cost FROM ads GROUP BY ALL) a JOIN
           (SELECT date_trunc('month', ts)::DATE m, channel, count(*) n FROM leads GROUP BY ALL) l USING (m, channel)"""
    ).fetchall()
    got = {(r["start"], r["channel"]): r["value"] for r in result["cpl"].iter_rows(named=True) if not r["is_total"]}
    assert got == pytest.approx({(m, ch): v for m, ch, v in cpl}, rel=1e-12)


def test_each_source_and_the_lookup_are_read_once(shop, monkeypatch):
    catalog = kpi_engine.load(shop)
    csv = catalog.registry.connectors["csv"]
    reads = []
    original = csv.scan
    monkeypatch.setattr(csv, "scan", lambda source, request, env: reads.append(source.name) or original(source, request, env))
    queries, _ = build_queries(catalog.plan(Window(dt.date(2026, 3, 31))), catalog.registry.connectors, {}, catalog.env)
    text = pl.explain_all(queries)
    assert sorted(Path(p).name for p in re.findall(r"Parquet SCAN \[([^\]]+)\]", text)) == ["ads.parquet", "leads.parquet"]
    assert reads == ["campaigns"]  # read into memory once, though two sources join it
    assert "campaigns.csv" not in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("\n2,", "\n2,email,200\n2,"), "lookup `campaigns` has 2 rows with campaign_id = 2: its key must be unique"),
        (("campaign_id,channel,budget", "campaign_id,cost,budget"), "column `cost` of lookup `campaigns` clashes with a column of `ads`"),
        (("key: campaign_id}", "key: campaign}"), "key `campaign` is not a column of lookup `campaigns`"),
        (("lookups: [campaigns]}\n  leads", "lookups: [campaign]}\n  leads"), "source `ads` joins unknown lookup `campaign`"),
    ],
)
def test_lookup_mistakes_are_refused(shop, tmp_path, change, message):
    for f in shop.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    old, new = change
    for name in ("kpis.yaml", "campaigns.csv"):
        text = (tmp_path / name).read_text()
        if old in text:
            (tmp_path / name).write_text(text.replace(old, new, 1))
            break
    else:
        pytest.fail(f"{old!r} not found")
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path).evaluate(dt.date(2026, 3, 31))
    assert message in info.value.render(), info.value.render()


def test_explain_names_the_lookup_a_source_joins(shop):
    from click.testing import CliRunner

    from kpi_engine.cli import main

    res = CliRunner().invoke(main, ["run", str(shop), "--as-of", "2026-03-31", "--explain"])
    assert res.exit_code == 0, res.stderr
    assert "joins lookup campaigns on campaign_id: ['budget', 'channel']" in res.stdout
    assert "joins lookup campaigns on campaign_id: ['channel']" in res.stdout  # leads reads only the channel


AS_OF = dt.date(2026, 3, 31)


def test_a_lookup_in_the_same_database_is_joined_there(shop, pg_server, tmp_path, monkeypatch):
    """Issue 14: when the lookup is a table of the source's own database (DuckDB file, PostgreSQL), the join
    runs there with the aggregates, `unknown` for keys it lacks, and no row leaves the database; a lookup in
    a CSV file makes the source read its rows, and --explain says why. Same numbers as the files."""
    require("psycopg")
    from dbload import to_duckdb, to_postgres
    from kpi_sql import SqlConnector

    from conftest import pg_database
    from kpi_engine.pushdown import push_plan

    campaigns = pl.read_csv(shop / "campaigns.csv")
    tables = {"campaigns": campaigns, **{t: pl.read_parquet(shop / f"{t}.parquet") for t in ("ads", "leads")}}
    to_duckdb(tmp_path / "shop.duckdb", tables)
    url = pg_database(pg_server, "lookups")
    to_postgres(url, tables)
    expected = kpi_engine.load(shop).evaluate(AS_OF)

    def no_rows(*args, **kwargs):
        raise AssertionError("a pushed source read its rows")

    for where in (f"path: {tmp_path / 'shop.duckdb'}", f"url: '{url}'"):
        root = tmp_path / ("pg" if "url" in where else "duck")
        spec = (
            SPEC.replace("connector: csv, path: campaigns.csv", f"connector: sql, {where}, table: campaigns")
            .replace("connector: parquet, path: ads.parquet", f"connector: sql, {where}, table: ads")
            .replace("connector: parquet, path: leads.parquet", f"connector: sql, {where}, table: leads")
        )
        write_spec(root, spec)
        catalog = kpi_engine.load(root, allow_outside=True)
        pushed, reasons = push_plan(catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions)
        assert sorted(pushed) == ["ads", "leads"] and reasons == {}
        with monkeypatch.context() as patch:
            patch.setattr(SqlConnector, "scan", no_rows)
            got = catalog.evaluate(AS_OF)
        assert_same(got, expected)
        assert "unknown" in got["spend"]["channel"].to_list()
        assert "-- lookup campaigns: a repeated key" in catalog.explain(Window(AS_OF))
    mixed = tmp_path / "mixed"  # the lookup stays a CSV file: the sources read their rows, and say why
    write_spec(mixed, spec.replace(f"connector: sql, {where}, table: campaigns", f"connector: csv, path: {shop / 'campaigns.csv'}"))
    catalog = kpi_engine.load(mixed, allow_outside=True)
    _, reasons = push_plan(catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions)
    assert reasons == {s: "it joins the lookup campaigns, which is not in the same database: read into memory" for s in ("ads", "leads")}
    assert_same(catalog.evaluate(AS_OF), expected)
    texts = tmp_path / "narrow"  # the lookup's key is a 32-bit integer there: the rows are read (polars
    texts.mkdir()  # casts the key to the source's type), and --explain says why
    narrow = campaigns.with_columns(pl.col("campaign_id").cast(pl.Int32))
    to_duckdb(texts / "shop.duckdb", {**tables, "campaigns": narrow})
    write_spec(texts, spec.replace(url, str(texts / "shop.duckdb")).replace("url: '", "path: '"))
    catalog = kpi_engine.load(texts, allow_outside=True)
    _, reasons = push_plan(catalog.plan(Window(AS_OF)), catalog.registry.connectors, catalog.env, catalog.registry.functions)
    assert reasons == {s: "it joins the lookup campaigns on `campaign_id`, of another type there" for s in ("ads", "leads")}
    assert_same(catalog.evaluate(AS_OF), expected)
    twice = tmp_path / "twice"  # a repeated key, checked in the database before any aggregate
    twice.mkdir()
    to_duckdb(twice / "shop.duckdb", {**tables, "campaigns": pl.concat([campaigns, campaigns.filter(pl.col("campaign_id") == 7)])})
    write_spec(twice, spec.replace(url, str(twice / "shop.duckdb")).replace("url: '", "path: '"))
    with pytest.raises(kpi_engine.KpiError, match="lookup `campaigns` has 2 rows with campaign_id = 7: its key must be unique"):
        kpi_engine.load(twice, allow_outside=True).evaluate(AS_OF)


def assert_same(got: kpi_engine.Result, expected: kpi_engine.Result) -> None:
    for kpi, frame in expected.series.items():
        assert got[kpi].drop("value").equals(frame.drop("value")), kpi
        for a, b in zip(got[kpi]["value"], frame["value"], strict=True):
            assert (a is None) == (b is None) and (a is None or math.isclose(a, b, rel_tol=1e-9)), kpi


def test_an_incremental_run_joins_the_lookup_like_a_full_run(shop, tmp_path, monkeypatch):
    """`kpi watch`'s cache reads the sources file by file: each file's rows join the lookup, read once for
    both reads of the run; a new file of ads gives the numbers a full run gives."""
    from kpi_engine.increment import Cache

    for f in shop.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    folder = tmp_path / "ads"
    folder.mkdir()
    (tmp_path / "ads.parquet").rename(folder / "2026-q1.parquet")
    (tmp_path / "kpis.yaml").write_text((tmp_path / "kpis.yaml").read_text().replace("path: ads.parquet", "path: ads"))
    cache, day = Cache(tmp_path / "cache"), dt.date(2026, 3, 31)
    kpi_engine.load(tmp_path).evaluate(day, cache=cache)
    extra = pl.read_parquet(folder / "2026-q1.parquet").head(40).with_columns(ts=pl.datetime(2026, 3, 31, 12))
    extra.write_parquet(folder / "2026-03-31.parquet")
    catalog = kpi_engine.load(tmp_path)
    reads = []
    connector = catalog.registry.connectors["csv"]
    real = type(connector).scan
    monkeypatch.setattr(type(connector), "scan", lambda self, *a: reads.append(a[0].name) or real(self, *a))
    inc = catalog.evaluate(day, cache=cache)
    assert reads.count("campaigns") == 1
    full = kpi_engine.load(tmp_path).evaluate(day)
    for kpi in ("spend", "paid_social", "cpl"):
        assert inc[kpi].equals(full[kpi]), kpi
    assert cache.states["ads"].changed == day
