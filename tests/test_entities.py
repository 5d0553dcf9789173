"""Issue 13, item 1: aggregates per entity, then over the entities, checked against DuckDB SQL on the same file.

Covers the repeat-purchase rate, orders per customer, the share of customers above a spend, per dimension and
in total, with rows without a customer, a null channel, a period where no customer qualifies, and the errors
a misuse gets (file:line:col, with a hint).
"""

from __future__ import annotations

import datetime as dt
import json
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
  new_customers: {unit: count, grain: month, dimensions: [channel], formula: count(customer where new)}
  returning: {unit: count, grain: week, formula: count(customer where not new)}
  m1_retention:
    unit: percent
    grain: month
    formula: 100 * count(customer where new and active(1)) / count(customer where new)
  still_here: {unit: count, grain: month, formula: count(customer where active(-1))}
  ltv_3m:
    unit: currency
    grain: month
    formula: sum(over_next(sum(orders.amount), 3) per customer where new) / count(customer where new)
  cohorts:
    unit: percent
    grain: month
    cohort: {periods: 3}
    formula: 100 * count(customer where new and active(1)) / count(customer where new)
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(13)
    n = 20_000
    start = dt.datetime(2026, 1, 1)
    customers = [f"c{k:04d}" for k in range(1_500)]
    minutes = sorted(rng.randrange(60 * 24 * 120) for _ in range(n))
    # customers arrive over the four months: a cohort each month, and some who never come back
    arrived = [min(len(customers), 50 + len(customers) * m // (60 * 24 * 120)) for m in minutes]
    pl.DataFrame(
        {
            "ts": [start + dt.timedelta(minutes=m) for m in minutes],
            "customer_id": [customers[rng.randrange(a)] if rng.random() > 0.03 else None for a in arrived],
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


FIRST = """
    firsts AS (SELECT customer_id, arg_min_null(channel, (ts, channel)) AS ch, min(ts) AS first_ts
               FROM orders WHERE customer_id IS NOT NULL GROUP BY customer_id)"""


def test_new_customers_are_counted_under_their_first_orders_channel(result, con):
    rows = con.execute(
        f"""WITH {FIRST}
        SELECT date_trunc('month', first_ts)::DATE, ch, count(*) FROM firsts
        WHERE first_ts < TIMESTAMP '2026-05-01' GROUP BY ALL
        UNION ALL
        SELECT date_trunc('month', first_ts)::DATE, 'total', count(*) FROM firsts
        WHERE first_ts < TIMESTAMP '2026-05-01' GROUP BY ALL"""
    ).fetchall()
    got = values(result["new_customers"], "channel")
    assert {k: n for k, n in got.items() if n} == {(p, ch): n for p, ch, n in rows}
    assert len(rows) >= 16  # a cohort in every month and channel
    by_period: dict = {}
    for (p, ch), n in got.items():
        if ch != "total":
            by_period[p] = by_period.get(p, 0) + n
    assert all(by_period[p] == got[(p, "total")] for p in by_period)  # a customer is new once


def test_returning_customers_and_activity_a_period_apart(result, con):
    returning = con.execute(
        f"""WITH {FIRST}
        SELECT date_trunc('week', o.ts)::DATE AS p, count(DISTINCT o.customer_id) FROM orders o JOIN firsts f USING (customer_id)
        WHERE date_trunc('week', f.first_ts) < date_trunc('week', o.ts) AND o.ts < TIMESTAMP '2026-05-01' GROUP BY p"""
    ).fetchall()
    got = values(result["returning"])
    assert {k: v for k, v in got.items() if v} == {(p, None): n for p, n in returning}
    active = "SELECT DISTINCT customer_id, date_trunc('month', ts)::DATE AS p FROM orders WHERE customer_id IS NOT NULL"
    retention = con.execute(
        f"""WITH {FIRST}, active AS ({active})
        SELECT date_trunc('month', f.first_ts)::DATE AS p,
               100.0 * count(*) FILTER (WHERE a.customer_id IS NOT NULL) / count(*)
        FROM firsts f LEFT JOIN active a ON a.customer_id = f.customer_id
             AND a.p = date_trunc('month', f.first_ts)::DATE + INTERVAL 1 MONTH
        GROUP BY 1"""
    ).fetchall()
    expected = {(p, None): v for p, v in retention if p < dt.date(2026, 4, 1)}
    expected[(dt.date(2026, 4, 1), None)] = None  # May is not over on 30 April: unknown, not 0%
    close(values(result["m1_retention"]), expected)
    still = con.execute(
        f"""WITH active AS ({active}) SELECT a.p, count(*) FROM active a JOIN active b
        ON a.customer_id = b.customer_id AND b.p = a.p - INTERVAL 1 MONTH WHERE a.p < DATE '2026-05-01' GROUP BY 1"""
    ).fetchall()
    got = values(result["still_here"])
    assert got == {(p, None): n for p, n in still} | {(dt.date(2026, 1, 1), None): 0}


def test_history_before_the_window_still_counts(shop, result):
    """A customer first seen in January is not new in March, whatever --from a run asks for."""
    windowed = kpi_engine.load(shop).evaluate(dt.date(2026, 4, 30), start=dt.date(2026, 3, 1))
    for kpi in ("new_customers", "returning", "m1_retention", "still_here"):
        full = values(result[kpi], "channel" if kpi == "new_customers" else None)
        part = values(windowed[kpi], "channel" if kpi == "new_customers" else None)
        assert part and all(full[k] == v for k, v in part.items()), kpi


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
        ("count(visitor)", "`visitor` is an entity of `orders`, `visits`: say whose", "count(orders.visitor)"),
        ("count(orders.visitor where count(visits) >= 1)", "an aggregate over entities reads one source, but this one reads `orders`, `visits`", None),
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


def test_a_look_ahead_period_is_complete_only_once_the_later_period_is_over(result):
    """Month-1 retention of April needs May: on 30 April it is incomplete (and unknown), March is complete."""
    rows = {r["period"]: (r["complete"], r["value"]) for r in result["m1_retention"].iter_rows(named=True)}
    assert rows["2026-03"][0] is True and rows["2026-03"][1] is not None
    assert rows["2026-04"] == (False, None)
    assert result["new_customers"].filter(pl.col("period") == "2026-04")["complete"].all()  # no look-ahead


def test_a_qualified_entity_says_whose(tmp_path):
    """With `visitor` declared on two sources, `count(visits.visitor ...)` counts the visitors of `visits`."""
    pl.DataFrame({"ts": [dt.datetime(2026, 1, d) for d in (1, 2, 2, 3)], "v": ["a", "a", "b", None]}).write_parquet(
        tmp_path / "visits.parquet"
    )
    pl.DataFrame({"ts": [dt.datetime(2026, 1, 5)], "v": ["c"]}).write_parquet(tmp_path / "orders.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          visits: {connector: parquet, path: visits.parquet, time: ts, entities: {visitor: v}}
          orders: {connector: parquet, path: orders.parquet, time: ts, entities: {visitor: v}}
        kpis:
          visitors: {unit: count, grain: month, formula: count(visits.visitor)}
          new_buyers: {unit: count, grain: month, formula: count(orders.visitor where new)}
          repeat: {unit: count, grain: month, formula: count(visits.visitor where count(visits) >= 2)}
        """,
    )
    result = kpi_engine.load(tmp_path).evaluate(dt.date(2026, 1, 31))
    assert [result[k]["value"].item() for k in ("visitors", "new_buyers", "repeat")] == [2, 1, 1]


def test_semi_additive_last_value_per_entity_summed_across_entities(tmp_path):
    """Issue 13, item 6: followers are summed across accounts and platforms, never across time: the last
    value of each account in the period, then the sum; checked against DuckDB."""
    rng = random.Random(6)
    rows = []
    for account in range(40):
        platform = rng.choice(["x", "instagram", "tiktok"])
        followers = rng.randrange(100, 5000)
        for day in sorted(rng.sample(range(90), 25)):
            followers += rng.randrange(-20, 60)
            rows.append((dt.datetime(2026, 1, 1, rng.randrange(24)) + dt.timedelta(days=day), f"acct{account}", platform, followers))
    pl.DataFrame(rows, schema=["ts", "account", "platform", "followers"], orient="row").write_parquet(tmp_path / "s.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          social: {connector: parquet, path: s.parquet, time: ts, entities: {account: account}}
        kpis:
          followers: {unit: count, grain: month, dimensions: [platform], formula: sum(last(social.followers) per account)}
          opening: {unit: count, grain: week, formula: sum(first(social.followers) per account)}
          latest_reading: {unit: count, grain: month, formula: last(social.followers)}
        """,
    )
    result = kpi_engine.load(tmp_path).evaluate(dt.date(2026, 3, 31))
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute(f"CREATE VIEW s AS SELECT * FROM read_parquet('{tmp_path / 's.parquet'}')")
    monthly = db.execute(
        """WITH per AS (SELECT date_trunc('month', ts)::DATE m, platform, account, arg_max(followers, ts) f
                        FROM s GROUP BY ALL)
           SELECT m, platform, sum(f) FROM per GROUP BY ALL UNION ALL SELECT m, 'total', sum(f) FROM per GROUP BY m"""
    ).fetchall()
    assert values(result["followers"], "platform") == {(m, p): v for m, p, v in monthly}
    weekly = db.execute(
        """SELECT w, sum(f) FROM (SELECT date_trunc('week', ts)::DATE w, account, arg_min(followers, ts) f
           FROM s GROUP BY ALL) GROUP BY w"""
    ).fetchall()
    assert values(result["opening"]) == {(w, None): v for w, v in weekly}
    last = db.execute(  # two readings at the same instant: the greater one is last
        "SELECT date_trunc('month', ts)::DATE, arg_max(followers, (ts, followers)) FROM s GROUP BY 1"
    ).fetchall()
    assert values(result["latest_reading"]) == {(m, None): v for m, v in last}
    # never summed across time: the quarter's total is not the sum of its months
    assert sum(v for (m, p), v in values(result["followers"], "platform").items() if p == "total") > max(
        v for (m, p), v in values(result["followers"], "platform").items() if p == "total"
    )


def test_a_cohort_matrix_in_the_json(shop, con):
    """Issue 13, item 2: `cohort: {periods: 3}` adds each cohort's retention 1, 2 and 3 months later to the
    JSON (null until that month is over), checked against DuckDB."""
    from click.testing import CliRunner

    from kpi_engine.cli import main

    res = CliRunner().invoke(main, ["run", str(shop), "--as-of", "2026-04-30", "--kpi", "cohorts", "--format", "json"])
    assert res.exit_code == 0, res.stderr
    cohort = json.loads(res.stdout)["kpis"][0]["cohort"]
    assert cohort["periods_ahead"] == [1, 2, 3]
    active = "SELECT DISTINCT customer_id, date_trunc('month', ts)::DATE AS p FROM orders WHERE customer_id IS NOT NULL"
    for row in cohort["rows"]:
        start = dt.date.fromisoformat(row["start"])
        for k, value in zip(cohort["periods_ahead"], row["values"], strict=True):
            (expected,) = con.execute(
                f"""WITH {FIRST}, active AS ({active})
                SELECT 100.0 * count(a.customer_id) / nullif(count(*), 0) FROM firsts f LEFT JOIN active a
                ON a.customer_id = f.customer_id AND a.p = (date_trunc('month', f.first_ts) + INTERVAL {k} MONTH)::DATE
                WHERE date_trunc('month', f.first_ts)::DATE = DATE '{start}'"""
            ).fetchone()
            over = dt.date(start.year + (start.month + k) // 12, (start.month + k) % 12 + 1, 1) <= dt.date(2026, 5, 1)
            assert value == (pytest.approx(expected, rel=1e-12) if over else None), (row["period"], k)
    assert [r["period"] for r in cohort["rows"]] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert cohort["rows"][0]["values"][2] is not None and cohort["rows"][1]["values"][2] is None


def test_a_cohort_formula_must_use_active_1(tmp_path):
    pl.DataFrame({"ts": [dt.datetime(2026, 1, 1)], "customer_id": ["a"]}).write_parquet(tmp_path / "o.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          orders: {connector: parquet, path: o.parquet, time: ts, entities: {customer: customer_id}}
        kpis:
          k: {unit: count, grain: month, cohort: {periods: 4}, formula: count(customer where new and active(2))}
        """,
    )
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path)
    assert "a cohort matrix needs the formula written with active(1)" in info.value.render()


def test_cohort_lifetime_value_over_the_next_periods(result, con):
    """Issue 13, item 2: revenue of each month's new customers in that month and the two after it, per
    customer of the cohort; unknown (null, incomplete) until the third month is over."""
    rows = con.execute(
        f"""WITH {FIRST}
        SELECT date_trunc('month', f.first_ts)::DATE AS m,
               sum(o.amount) FILTER (WHERE o.ts < date_trunc('month', f.first_ts) + INTERVAL 3 MONTH)
               / count(DISTINCT f.customer_id)
        FROM firsts f JOIN orders o USING (customer_id) GROUP BY 1"""
    ).fetchall()
    expected = {(m, None): (v if m <= dt.date(2026, 2, 1) else None) for m, v in rows if m < dt.date(2026, 5, 1)}
    close(values(result["ltv_3m"]), expected)
    complete = {r["start"]: r["complete"] for r in result["ltv_3m"].iter_rows(named=True)}
    assert complete[dt.date(2026, 2, 1)] and not complete[dt.date(2026, 3, 1)]
