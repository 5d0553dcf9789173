"""Issue 13, item 1: aggregates per entity, then over the entities, checked against DuckDB SQL on the same file.

Covers the repeat-purchase rate, orders per customer, the share of customers above a spend, per dimension and
in total, with rows without a customer, a null channel, a period where no customer qualifies, and the errors
a misuse gets (file:line:col, with a hint).
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

from conftest import write_spec

duckdb = pytest.importorskip("duckdb")

SPEC = """
version: 1
sources:
  orders: {connector: parquet, path: orders.parquet, time: ts, entities: {customer: customer_id}}
kpis:
  repeat_rate:
    unit: percent
    grain: month
    dimensions: [channel]
    formula: 100 * count(customer where count(orders) >= 2) / count(customer where count(orders) >= 1)
  orders_per_customer: {unit: ratio, grain: month, dimensions: [channel], formula: mean(count(orders) per customer)}
  big_spenders:
    unit: percent
    grain: month
    formula: 100 * count(customer where sum(orders.amount) > 200) / count(customer)
  median_spend: {unit: currency, grain: week, formula: median(sum(orders.amount) per customer)}
  loyal_revenue:
    unit: currency
    grain: month
    formula: sum(sum(orders.amount where amount > 20) per customer where count(orders) >= 3)
  whales: {unit: count, grain: month, formula: count(customer where sum(orders.amount) > 100000)}
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(13)
    n = 20_000
    start = dt.datetime(2026, 1, 1)
    customers = [f"c{k:04d}" for k in range(1_500)]
    pl.DataFrame(
        {
            "ts": [start + dt.timedelta(minutes=rng.randrange(60 * 24 * 120)) for _ in range(n)],
            "customer_id": [rng.choice(customers) if rng.random() > 0.03 else None for _ in range(n)],
            "channel": [rng.choice(["ads", "email", "seo", None]) for _ in range(n)],
            "amount": [round(rng.lognormvariate(3.5, 1), 2) for _ in range(n)],
        }
    ).write_parquet((root := tmp_path_factory.mktemp("shop")) / "orders.parquet")
    write_spec(root, SPEC)
    return root


@pytest.fixture(scope="module")
def result(shop: Path):
    return kpi_engine.load(shop).evaluate(dt.date(2026, 4, 30))


@pytest.fixture(scope="module")
def con(shop: Path):
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{shop / 'orders.parquet'}')")
    yield db
    db.close()


def values(frame: pl.DataFrame, dim: str | None = None) -> dict:
    """(period start, dimension value or 'total') -> value."""
    out = {}
    for row in frame.iter_rows(named=True):
        key = None if dim is None else "total" if row["is_total"] else row[dim]
        out[(row["start"], key)] = row["value"]
    return out


def close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] is None) == (b[k] is None), k
        assert a[k] is None or math.isclose(a[k], b[k], rel_tol=1e-12, abs_tol=1e-12), (k, a[k], b[k])


def per_customer(con, period: str, select: str, with_dims: bool) -> dict:
    """One outer aggregate over per-customer rows, per period and channel (and in total)."""
    out = {}
    for dims in (["channel"], []) if with_dims else ([],):
        keys = ", ".join(["p", *dims])
        rows = con.execute(
            f"""
            WITH per AS (
              SELECT date_trunc('{period}', ts)::DATE AS p, {", ".join(dims + ["customer_id"])},
                     count(*) AS n, sum(amount) AS spend, sum(amount) FILTER (WHERE amount > 20) AS spend20
              FROM orders WHERE customer_id IS NOT NULL AND ts < TIMESTAMP '2026-05-01'
              GROUP BY ALL)
            SELECT {keys}, {select} FROM per GROUP BY {keys}
            """
        ).fetchall()
        for row in rows:
            out[(row[0], row[1] if dims else ("total" if with_dims else None))] = row[-1]
    return out


def test_repeat_purchase_rate_by_channel_and_in_total(result, con):
    expected = per_customer(con, "month", "100.0 * count(*) FILTER (WHERE n >= 2) / count(*)", True)
    close(values(result["repeat_rate"], "channel"), expected)


def test_orders_per_customer_is_a_mean_over_customers(result, con):
    close(values(result["orders_per_customer"], "channel"), per_customer(con, "month", "avg(n)", True))


def test_share_above_a_spend_median_and_a_filtered_sum_over_entities(result, con):
    close(values(result["big_spenders"]), per_customer(con, "month", "100.0 * count(*) FILTER (WHERE spend > 200) / count(*)", False))
    close(values(result["median_spend"]), per_customer(con, "week", "median(spend)", False))
    loyal = per_customer(con, "month", "coalesce(sum(spend20) FILTER (WHERE n >= 3), 0)", False)
    close(values(result["loyal_revenue"]), loyal)


def test_no_qualifying_entity_counts_zero_and_counts_stay_integers(result):
    frame = result["whales"]
    assert frame["value"].to_list() == [0, 0, 0, 0] and frame["value"].dtype == pl.Int64


def test_the_source_is_still_read_once(shop):
    catalog = kpi_engine.load(shop)
    queries, _ = build_queries(catalog.plan(Window(dt.date(2026, 4, 30))), catalog.registry.connectors, {}, catalog.env)
    assert len(re.findall(r"Parquet SCAN", pl.explain_all(queries))) == 1


@pytest.mark.parametrize(
    ("formula", "message", "hint"),
    [
        ("count(custmer where count(orders) >= 2)", "unknown entity `custmer`", "did you mean `customer`?"),
        ("mean(count(orders) per custmer)", "unknown entity `custmer`", "did you mean `customer`?"),
        ("count(customer where orders.amount > 2)", "`orders.amount` is a row value, but this expression is computed once per customer", "sum(orders.amount)"),
        ("count_distinct(count(orders) per customer)", "count_distinct() cannot aggregate over entities", "count(customer where ...)"),
        ("mean(mean(count(orders) per customer) per customer)", "aggregates over entities cannot be nested", None),
        ("count(customer where count(orders) + 1)", "a `where` over entities must be true or false, found a number", None),
        ("count(customer where count(orders) >= 1 and count(visits) >= 1)", "an aggregate over entities reads one source, but this one reads `orders`, `visits`", None),
        ("count(visitor)", "`visitor` is an entity of `orders`, `visits`: say whose", "count(visitor where count(orders) >= 1)"),
    ],
)
def test_misuse_is_located_with_a_hint(tmp_path, formula, message, hint):
    pl.DataFrame({"ts": [dt.datetime(2026, 1, 1)], "customer_id": ["a"], "amount": [1.0], "v": ["x"]}).write_parquet(tmp_path / "o.parquet")
    write_spec(
        tmp_path,
        f"""
        version: 1
        sources:
          orders: {{connector: parquet, path: o.parquet, time: ts, entities: {{customer: customer_id, visitor: v}}}}
          visits: {{connector: parquet, path: o.parquet, time: ts, entities: {{visitor: v}}}}
        kpis:
          k: {{unit: count, grain: month, formula: '{formula}'}}
        """,
    )
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path)
    text = info.value.render()
    assert re.search(r"kpis\.yaml:6:\d+: ", text) and message in text, text
    assert hint is None or hint in text, text


def test_an_entity_column_the_source_lacks_is_refused(tmp_path):
    pl.DataFrame({"ts": [dt.datetime(2026, 1, 1)], "customer": ["a"]}).write_parquet(tmp_path / "o.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          orders: {connector: parquet, path: o.parquet, time: ts, entities: {customer: customer_id}}
        kpis:
          k: {unit: count, grain: month, formula: count(customer where count(orders) >= 2)}
        """,
    )
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path)
    text = info.value.render()
    assert "entity `customer` is column `customer_id` of source `orders`, which has no such column" in text
    assert "did you mean `customer`?" in text
