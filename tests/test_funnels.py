"""Issue 13, item 3: conversions of one source's rows into another's by the same entity within a window.

Edge cases on hand-made rows, each checked by hand: the window's exclusive start (a buy exactly 7 days after
the visit is outside), attribution to the latest earlier visit and its dimension values, buys before any
visit, completeness while conversions may still come in, one scan per source, and misuse. MetricFlow's own
cases are in tests/parity.
"""

from __future__ import annotations

import datetime as dt
import random
import re

import polars as pl
import pytest

import kpi_engine
from kpi_engine.execute import build_queries
from kpi_engine.plan import Window

from conftest import require, write_spec

T = dt.datetime


@pytest.fixture()
def shop(tmp_path):
    pl.DataFrame(
        {
            "at": [T(2026, 3, 1, 10), T(2026, 3, 3, 9), T(2026, 3, 2, 8), T(2026, 3, 20, 12), T(2026, 3, 29, 12)],
            "visitor": ["a", "a", "b", "c", "d"],
            "channel": ["social", "email", "social", "ads", "ads"],
        }
    ).write_parquet(tmp_path / "visits.parquet")
    pl.DataFrame(
        {
            "at": [T(2026, 3, 5, 9), T(2026, 3, 9, 8), T(2026, 3, 9, 7, 59), T(2026, 3, 1, 9), T(2026, 3, 30, 9)],
            "visitor": ["a", "b", "b", "c", "d"],
        }
    ).write_parquet(tmp_path / "orders.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          visits: {connector: parquet, path: visits.parquet, time: at, entities: {user: visitor}}
          orders: {connector: parquet, path: orders.parquet, time: at, entities: {user: visitor}}
        kpis:
          converted: {unit: count, grain: month, dimensions: [channel], formula: conversions(visits, orders, 7 days)}
          ever: {unit: count, grain: month, formula: conversions(visits, orders)}
          rate: {unit: percent, grain: day, formula: 100 * conversions(visits, orders, 7 days) / count(visits)}
        """,
    )
    return tmp_path


def test_conversions_within_the_window_go_to_the_latest_visit(shop):
    result = kpi_engine.load(shop).evaluate(dt.date(2026, 4, 30))
    march = result["converted"].filter(pl.col("period") == "2026-03")
    rows = {r["channel"] or "total": r["value"] for r in march.iter_rows(named=True)}
    # a: ordered on 5 Mar, latest visit 3 Mar by email (not 1 Mar by social); b: 9 Mar 08:00 is exactly 7 days
    # after the 2 Mar visit (outside), 07:59 is inside; c ordered before visiting; d ordered a day after its visit
    assert rows == {"email": 1, "social": 1, "ads": 1, "total": 3}
    assert result["ever"]["value"].to_list()[0] == 4  # with no window b's 08:00 order counts too
    day = {r["start"]: r["value"] for r in result["rate"].iter_rows(named=True)}
    assert day[dt.date(2026, 3, 3)] == 100.0 and day[dt.date(2026, 3, 1)] == 0.0 and day[dt.date(2026, 3, 2)] == 100.0


def test_a_period_is_complete_once_its_window_is_over(shop):
    result = kpi_engine.load(shop).evaluate(dt.date(2026, 4, 3))
    march = result["converted"].filter(pl.col("is_total"))
    assert march["complete"].to_list() == [False, False]  # orders for 29 March visits may come until 5 April
    done = kpi_engine.load(shop).evaluate(dt.date(2026, 4, 7))["converted"].filter(pl.col("is_total"))
    assert done["complete"].to_list() == [True, False]


def test_each_source_is_scanned_once(shop):
    catalog = kpi_engine.load(shop)
    queries, _ = build_queries(catalog.plan(Window(dt.date(2026, 4, 30))), catalog.registry.connectors, {}, catalog.env)
    scans = re.findall(r"Parquet SCAN \[([^\]]+)\]", pl.explain_all(queries))
    assert sorted(p.rsplit("/", 1)[-1] for p in scans) == ["orders.parquet", "visits.parquet"]


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("conversions(visits, order, 7 days)", "unknown source `order`"),
        ("conversions(visits, orders, 1 month)", "the conversion window is a number of days or weeks"),
        ("conversions(visits, leads, 7 days)", "conversions() matches rows of `visits` and `leads` by an entity they all declare (found: none)"),
        ("conversions(visits)", "conversions() takes two or more sources (the steps), an optional window and columns all must share"),
        ("conversions(visits, orders, 7 days, channel)", "`channel` must be a column of `visits` and `orders`, but `orders` has none"),
    ],
)
def test_misuse_is_located(shop, formula, message):
    pl.DataFrame({"at": [T(2026, 3, 1)]}).write_parquet(shop / "leads.parquet")
    text = (shop / "kpis.yaml").read_text().replace(
        "kpis:\n", f"  leads: {{connector: parquet, path: leads.parquet, time: at}}\nkpis:\n  bad: {{unit: count, grain: day, formula: '{formula}'}}\n"
    )
    (shop / "kpis.yaml").write_text(text)
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(shop)
    rendered = info.value.render()
    assert re.search(r"kpis\.yaml:\d+:\d+: ", rendered) and message in rendered, rendered


@pytest.fixture()
def steps(tmp_path):
    """Social clicks, then sign-ups, then purchases, each by user."""
    pl.DataFrame(
        {
            "at": [T(2026, 3, 1, 10), T(2026, 3, 2, 10), T(2026, 3, 1, 9), T(2026, 3, 10, 9), T(2026, 3, 12, 9)],
            "user": ["a", "a", "b", "c", "d"],
            "channel": ["social", "email", "social", "social", "ads"],
        }
    ).write_parquet(tmp_path / "clicks.parquet")
    pl.DataFrame(
        {"at": [T(2026, 3, 3, 9), T(2026, 3, 1, 8), T(2026, 3, 11, 9), T(2026, 3, 11, 9)], "user": ["a", "b", "c", "d"]}
    ).write_parquet(tmp_path / "signups.parquet")
    pl.DataFrame(
        {
            "at": [T(2026, 3, 4, 9), T(2026, 3, 2, 9), T(2026, 3, 17, 10), T(2026, 3, 13, 9)],
            "user": ["a", "b", "c", "d"],
        }
    ).write_parquet(tmp_path / "orders.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          clicks: {connector: parquet, path: clicks.parquet, time: at, entities: {user: user}}
          signups: {connector: parquet, path: signups.parquet, time: at, entities: {user: user}}
          orders: {connector: parquet, path: orders.parquet, time: at, entities: {user: user}}
        kpis:
          funnel: {unit: count, grain: month, dimensions: [channel], formula: conversions(clicks, signups, orders, 7 days)}
          rate: {unit: percent, grain: month, formula: 100 * conversions(clicks, signups, orders, 7 days) / count(clicks)}
          two: {unit: count, grain: month, formula: conversions(clicks, orders, 7 days)}
        """,
    )
    return tmp_path


def test_each_step_follows_the_one_before_within_the_window(steps):
    result = kpi_engine.load(steps).evaluate(dt.date(2026, 4, 30))
    march = result["funnel"].filter(pl.col("period") == "2026-03")
    rows = {r["channel"] or "total": r["value"] for r in march.iter_rows(named=True)}
    # a: click 1 Mar (social), click 2 Mar (email), sign-up 3 Mar, order 4 Mar: the latest click is email's.
    # b: signed up before clicking, so the 2 Mar order has no click before its sign-up. c: the order is 7 days
    # and 1 hour after the click, though each step is within 7 days of the one before. d: click 12 Mar after the
    # 11 Mar sign-up: not in order
    assert rows == {"email": 1, "social": 0, "ads": 0, "total": 1}
    assert result["rate"]["value"].to_list()[0] == 20.0  # 1 of 5 clicks
    # without the sign-up step a, b (click 1 Mar 09:00, order 2 Mar) and d (click, order a day later) convert
    assert result["two"]["value"].to_list()[0] == 3


@pytest.mark.parametrize("user", [int, str, float])  # packed with the time into one key; text codes; `by`
def test_a_funnel_matches_a_hand_written_duckdb_query(tmp_path, user):
    """Random users over three sources; DuckDB finds, for each order, the latest sign-up before it within the
    window and the latest click before that sign-up, within the window of the order."""
    duckdb = require("duckdb")
    rng = random.Random(13)
    start = T(2026, 1, 1)

    def events(n: int, with_channel: bool) -> pl.DataFrame:
        data = {
            "at": [start + dt.timedelta(minutes=rng.randrange(0, 90 * 24 * 60)) for _ in range(n)],
            "user": [user(rng.randrange(-30, 30)) for _ in range(n)],
        }
        if with_channel:
            data["channel"] = [rng.choice(["social", "search", "email"]) for _ in range(n)]
        return pl.DataFrame(data)

    for name, n in (("clicks", 900), ("signups", 500), ("orders", 400)):
        events(n, name == "clicks").write_parquet(tmp_path / f"{name}.parquet")
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          clicks: {connector: parquet, path: clicks.parquet, time: at, entities: {user: user}}
          signups: {connector: parquet, path: signups.parquet, time: at, entities: {user: user}}
          orders: {connector: parquet, path: orders.parquet, time: at, entities: {user: user}}
        kpis:
          funnel: {unit: count, grain: month, dimensions: [channel], formula: conversions(clicks, signups, orders, 5 days)}
          ever: {unit: count, grain: month, dimensions: [channel], formula: conversions(clicks, orders)}
        """,
    )
    result = kpi_engine.load(tmp_path).evaluate(dt.date(2026, 4, 30))
    ours = {
        (r["period"], r["channel"]): r["value"]
        for r in result["funnel"].filter(~pl.col("is_total")).iter_rows(named=True)
        if r["value"]
    }
    db = duckdb.connect()
    for name in ("clicks", "signups", "orders"):
        db.execute(f"""CREATE VIEW {name} AS SELECT * RENAME ("at" AS t), row_number() OVER () AS id FROM read_parquet('{tmp_path / name}.parquet')""")
    rows = db.execute(
        """
        WITH step AS (
          SELECT o.id AS o, o.t AS o_at, o.user, max(s.t) AS s_at
          FROM orders o JOIN signups s ON s.user = o.user AND s.t <= o.t AND s.t > o.t - INTERVAL 5 DAY
          GROUP BY ALL),
        first_step AS (
          SELECT step.o, c.t, c.channel
          FROM step JOIN clicks c ON c.user = step.user AND c.t <= step.s_at AND c.t > step.o_at - INTERVAL 5 DAY
          QUALIFY row_number() OVER (PARTITION BY step.o ORDER BY c.t DESC, c.channel DESC) = 1)
        SELECT strftime(t, '%Y-%m'), channel, count(*) FROM first_step GROUP BY ALL
        """
    ).fetchall()
    assert ours == {(p, c): n for p, c, n in rows}
    assert sum(ours.values()) > 30  # enough chains to mean something
    ever = {
        (r["period"], r["channel"]): r["value"]
        for r in result["ever"].filter(~pl.col("is_total")).iter_rows(named=True)
        if r["value"]
    }
    rows = db.execute(  # no window: the latest click of the same user any time before (none: no conversion)
        """
        SELECT strftime(t, '%Y-%m'), channel, count(*) FROM (
          SELECT o.id, c.t, c.channel FROM orders o JOIN clicks c ON c.user = o.user AND c.t <= o.t
          QUALIFY row_number() OVER (PARTITION BY o.id ORDER BY c.t DESC, c.channel DESC) = 1)
        GROUP BY ALL
        """
    ).fetchall()
    assert ever == {(p, c): n for p, c, n in rows}
