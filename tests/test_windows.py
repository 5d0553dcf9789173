"""Issue 13, item 4: trailing, to-date and running windows, recomputed from rows and checked against DuckDB.

Each period's value covers the days of its window: `28d` (the 28 days ending on the period's last day),
`month_to_date`/`year_to_date` (the enclosing period so far), `all_time` and `{since: DATE}` (running totals).
A distinct count over a window counts distinct values over the window; it never adds daily counts.
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
AS_OF = dt.date(2026, 4, 30)

SPEC = """
version: 1
week_start: sunday
sources:
  orders: {connector: parquet, path: orders.parquet, time: ts, entities: {customer: customer_id}}
kpis:
  revenue_28d: {unit: currency, grain: day, window: 28d, dimensions: [channel], formula: sum(orders.amount)}
  buyers_28d: {unit: count, grain: day, window: 28d, formula: count_distinct(orders.customer_id)}
  weekly_28d: {unit: currency, grain: week, window: 28d, formula: sum(orders.amount)}
  weekly_4w: {unit: currency, grain: week, window: 4w, formula: sum(orders.amount)}
  monthly_2mo: {unit: count, grain: month, window: 2mo, formula: count_distinct(orders.customer_id)}
  median_7d: {unit: currency, grain: day, window: 7d, formula: median(orders.amount)}
  mtd: {unit: currency, grain: day, window: month_to_date, formula: sum(orders.amount)}
  ytd_buyers: {unit: count, grain: month, window: year_to_date, formula: count_distinct(orders.customer_id)}
  running: {unit: currency, grain: month, window: all_time, formula: sum(orders.amount)}
  since_feb: {unit: count, grain: week, window: {since: 2026-02-01}, formula: count(orders)}
  repeaters_28d: {unit: count, grain: week, window: 28d, formula: count(customer where count(orders) >= 2)}
  mtd_vs_last_month:
    unit: percent
    grain: day
    window: month_to_date
    formula: 100 * (sum(orders.amount) / previous(sum(orders.amount), 1 month) - 1)
  week_a_month_ago: {unit: currency, grain: week, formula: previous(sum(orders.amount), 1 month)}
  quarter_ago: {unit: currency, grain: month, formula: previous(sum(orders.amount), 1 quarter) - previous(sum(orders.amount), 3)}
  revenue_5_days_earlier: {unit: currency, grain: month, dimensions: [channel], formula: previous(sum(orders.amount), 5 days)}
  buyers_10_days_earlier: {unit: count, grain: week, formula: previous(count_distinct(orders.customer_id), 10 days)}
  repeaters_vs_a_week_earlier:
    unit: count
    grain: month
    formula: count(customer where count(orders) >= 2) - previous(count(customer where count(orders) >= 2), 1 week)
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(28)
    n = 12_000
    start = dt.datetime(2025, 12, 20)
    pl.DataFrame(
        {
            "ts": [start + dt.timedelta(minutes=rng.randrange(60 * 24 * 132)) for _ in range(n)],
            "customer_id": [f"c{rng.randrange(900)}" if rng.random() > 0.02 else None for _ in range(n)],
            "channel": [rng.choice(["ads", "email", "seo"]) for _ in range(n)],
            "amount": [round(rng.lognormvariate(3.5, 1), 2) for _ in range(n)],
        }
    ).write_parquet((root := tmp_path_factory.mktemp("windows")) / "orders.parquet")
    write_spec(root, SPEC)
    return root


@pytest.fixture(scope="module")
def result(shop: Path):
    return kpi_engine.load(shop).evaluate(AS_OF)


@pytest.fixture(scope="module")
def con(shop: Path):
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute(
        f"CREATE VIEW orders AS SELECT *, ts::DATE AS d FROM read_parquet('{shop / 'orders.parquet'}') "
        "WHERE ts < TIMESTAMP '2026-05-01'"
    )
    db.execute("CREATE VIEW days AS SELECT range::DATE AS p FROM range(DATE '2025-12-20', DATE '2026-05-01', INTERVAL 1 DAY)")
    yield db
    db.close()


def series(frame: pl.DataFrame, dim: str | None = None) -> dict:
    return {
        (r["start"], "total" if r["is_total"] and dim else r[dim] if dim else None): r["value"]
        for r in frame.iter_rows(named=True)
    }


def check(got: dict, rows: list[tuple]) -> int:
    expected = {(r[0], r[1]) if len(r) == 3 else (r[0], None): r[-1] for r in rows}
    assert got.keys() == expected.keys()
    for k, v in got.items():
        assert (v is None) == (expected[k] is None), k
        assert v is None or math.isclose(v, expected[k], rel_tol=1e-12, abs_tol=1e-9), (k, v, expected[k])
    return len(got)


def test_trailing_28_days_per_channel_and_in_total(result, con):
    rows = con.execute(
        """SELECT p, channel, sum(amount) FROM days JOIN orders ON d BETWEEN p - 27 AND p GROUP BY ALL
           UNION ALL SELECT p, 'total', sum(amount) FROM days JOIN orders ON d BETWEEN p - 27 AND p GROUP BY ALL"""
    ).fetchall()
    assert check(series(result["revenue_28d"], "channel"), rows) == 132 * 4


def test_a_distinct_count_over_a_window_counts_distinct_values(result, con):
    rows = con.execute(
        "SELECT p, count(DISTINCT customer_id) FROM days JOIN orders ON d BETWEEN p - 27 AND p GROUP BY p"
    ).fetchall()
    check(series(result["buyers_28d"]), rows)
    daily = con.execute("SELECT d, count(DISTINCT customer_id) FROM orders GROUP BY d").fetchall()
    assert series(result["buyers_28d"])[(dt.date(2026, 3, 1), None)] < sum(n for d, n in daily if dt.date(2026, 2, 2) <= d <= dt.date(2026, 3, 1))


def test_weekly_trailing_window_honours_the_week_start(result, con):
    rows = con.execute(
        """WITH weeks AS (SELECT DISTINCT (d - (dayofweek(d)) * INTERVAL 1 DAY)::DATE AS p FROM orders)
           SELECT p, sum(amount) FROM weeks JOIN orders ON d BETWEEN p + 6 - 27 AND p + 6 GROUP BY p"""
    ).fetchall()
    got = series(result["weekly_28d"])
    assert all(start.weekday() == 6 for start, _ in got)  # Sundays
    check(got, rows)


def test_a_median_over_7_days_is_recomputed_from_rows(result, con):
    rows = con.execute(
        "SELECT p, median(amount) FROM days JOIN orders ON d BETWEEN p - 6 AND p GROUP BY p"
    ).fetchall()
    check(series(result["median_7d"]), rows)


def test_to_date_and_running_windows(result, con):
    mtd = con.execute(
        "SELECT p, sum(amount) FROM days JOIN orders ON d BETWEEN date_trunc('month', p) AND p GROUP BY p"
    ).fetchall()
    check(series(result["mtd"]), mtd)
    months = "SELECT DISTINCT date_trunc('month', d)::DATE AS p FROM orders"
    ytd = con.execute(
        f"""SELECT m.p, count(DISTINCT customer_id) FROM ({months}) m JOIN orders
            ON d >= date_trunc('year', m.p) AND d < m.p + INTERVAL 1 MONTH GROUP BY 1"""
    ).fetchall()
    check(series(result["ytd_buyers"]), ytd)
    running = con.execute(
        f"SELECT m.p, sum(amount) FROM ({months}) m JOIN orders ON d < m.p + INTERVAL 1 MONTH GROUP BY 1"
    ).fetchall()
    check(series(result["running"]), running)
    weeks = "SELECT DISTINCT (d - (dayofweek(d)) * INTERVAL 1 DAY)::DATE AS p FROM orders"
    since = con.execute(
        f"""SELECT w.p, CASE WHEN w.p + 6 >= DATE '2026-02-01' THEN count(o.d) END FROM ({weeks}) w LEFT JOIN orders o
            ON o.d >= DATE '2026-02-01' AND o.d <= w.p + 6 GROUP BY 1"""
    ).fetchall()
    check(series(result["since_feb"]), since)  # weeks that end before the start date: no data, not 0


def test_entities_over_a_trailing_window(result, con):
    weeks = "SELECT DISTINCT (d - (dayofweek(d)) * INTERVAL 1 DAY)::DATE AS p FROM orders"
    rows = con.execute(
        f"""SELECT p, count(*) FILTER (WHERE n >= 2) FROM (
              SELECT w.p, customer_id, count(*) n FROM ({weeks}) w JOIN orders
              ON d BETWEEN w.p + 6 - 27 AND w.p + 6 WHERE customer_id IS NOT NULL GROUP BY ALL) GROUP BY p"""
    ).fetchall()
    check(series(result["repeaters_28d"]), rows)


def test_a_window_reaching_before_the_data_is_partial(result):
    first = result["revenue_28d"].filter(pl.col("is_total")).row(0, named=True)
    assert first["start"] == dt.date(2025, 12, 20) and first["coverage"] == pytest.approx(1 / 28)
    settled = result["revenue_28d"].filter(pl.col("is_total") & (pl.col("start") == dt.date(2026, 1, 16)))
    assert settled["coverage"].item() == 1.0


def test_from_reads_back_to_the_first_window_day(shop, result):
    windowed = kpi_engine.load(shop).evaluate(AS_OF, start=dt.date(2026, 3, 1))
    for kpi in ("revenue_28d", "buyers_28d", "mtd", "running", "repeaters_28d"):
        part = windowed[kpi]
        assert part.height and part["start"].min() >= dt.date(2026, 2, 22), kpi
        merged = part.join(result[kpi], on=[c for c in ("start", "is_total", "channel") if c in part.columns], how="left", nulls_equal=True)
        assert (merged["value"] == merged["value_right"]).all(), kpi


def test_month_to_date_against_the_same_days_last_month(result, con):
    """31 March is compared with all of February (the same day, clamped to the month's end)."""
    mtd = dict(
        con.execute(
            "SELECT p, sum(amount) FROM days JOIN orders ON d BETWEEN date_trunc('month', p) AND p GROUP BY p"
        ).fetchall()
    )
    got = series(result["mtd_vs_last_month"])
    checked = 0
    for (day, _), value in got.items():
        earlier = _month_back(day)
        if earlier not in mtd:
            assert value is None, day
            continue
        assert value == pytest.approx(100 * (mtd[day] / mtd[earlier] - 1), rel=1e-12), day
        checked += 1
    assert checked > 90
    assert got[(dt.date(2026, 3, 31), None)] == pytest.approx(100 * (mtd[dt.date(2026, 3, 31)] / mtd[dt.date(2026, 2, 28)] - 1))


def _month_back(day: dt.date) -> dt.date:
    """The same day a month earlier, clamped to that month's last day."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def test_a_weekly_kpi_a_month_back_and_whole_offsets(result, con):
    weekly = dict(
        con.execute(
            "SELECT (d - (dayofweek(d)) * INTERVAL 1 DAY)::DATE, sum(amount) FROM orders GROUP BY 1"
        ).fetchall()
    )
    got = series(result["week_a_month_ago"])
    for (start, _), value in got.items():
        back = _month_back(start)
        holder = back - dt.timedelta(days=(back.weekday() + 1) % 7)  # its week, starting on Sunday
        assert value == (pytest.approx(weekly[holder], rel=1e-12) if holder in weekly else None), start
    assert sum(v is not None for v in got.values()) > 10
    quarter = series(result["quarter_ago"])
    assert all(v is None or v == 0 for v in quarter.values()) and any(v == 0 for v in quarter.values())


def test_offsets_finer_than_the_grain_move_the_rows(result, con):
    """`previous(x, 5 days)` on a monthly KPI aggregates each month's days moved 5 days back (MetricFlow's
    `offset_window` at a coarser grain), recomputed from rows: distinct counts and entities too."""
    shown = "p BETWEEN DATE '2025-12-01' AND DATE '2026-04-01'"
    rows = con.execute(
        f"""SELECT * FROM (SELECT date_trunc('month', d + 5)::DATE p, channel, sum(amount) FROM orders GROUP BY ALL
            UNION ALL SELECT date_trunc('month', d + 5)::DATE p, 'total', sum(amount) FROM orders GROUP BY ALL)
            WHERE {shown}"""
    ).fetchall()
    assert check(series(result["revenue_5_days_earlier"], "channel"), rows) == 20
    weeks = "(d + 10) - dayofweek(d + 10)::INTEGER"  # the Sunday-start week holding the day 10 days later
    rows = con.execute(
        f"""SELECT {weeks} AS p, count(DISTINCT customer_id) FROM orders GROUP BY 1
            HAVING p BETWEEN DATE '2025-12-14' AND DATE '2026-04-26'"""
    ).fetchall()
    got = series(result["buyers_10_days_earlier"])
    assert {k: v for k, v in got.items() if v} == {(p, None): n for p, n in rows}
    repeaters = """SELECT p, count(*) FILTER (WHERE n >= 2) r FROM
                   (SELECT {p} p, customer_id, count(*) n FROM orders WHERE customer_id IS NOT NULL GROUP BY ALL) GROUP BY 1"""
    rows = con.execute(
        f"""SELECT now.p, now.r - coalesce(earlier.r, 0) FROM ({repeaters.format(p="date_trunc('month', d)::DATE")}) now
            LEFT JOIN ({repeaters.format(p="date_trunc('month', d + 7)::DATE")}) earlier USING (p)
            WHERE now.p >= DATE '2025-12-01'"""
    ).fetchall()
    check(series(result["repeaters_vs_a_week_earlier"]), rows)


def test_the_source_is_read_once_with_windows(shop):
    catalog = kpi_engine.load(shop)
    queries, _ = build_queries(catalog.plan(Window(AS_OF)), catalog.registry.connectors, {}, catalog.env)
    assert len(re.findall(r"Parquet SCAN", pl.explain_all(queries))) == 1


@pytest.mark.parametrize(
    ("kpi", "message"),
    [
        ("{unit: count, grain: day, window: 28d, formula: count(customer where new)}", "`new` and `active()` count periods of the KPI's grain"),
        ("{unit: count, grain: month, window: week_to_date, formula: count(orders)}", "`window: week_to_date` on a month KPI covers no more than the period itself"),
        ("{unit: count, grain: day, window: 28 days, formula: count(orders)}", "window"),
        ("{unit: count, grain: quarter, formula: previous(count(orders), 1 month)}", "previous() by 1 month on a quarter KPI: not a whole number of quarters"),
        ("{unit: count, grain: month, window: 28d, formula: previous(count(orders), 5 days)}", "previous() by 5 days moves the rows of each month, which `window: 28d` already widens"),
        ("{unit: count, grain: month, formula: previous(count(customer where new), 5 days)}", "conversions, `new` and `active()` count whole periods"),
        ("{unit: count, grain: month, formula: previous(count(orders), 400 days)}", "previous() by days goes back from 1 to 366 days"),
        ("{unit: count, grain: month, formula: count(orders) * 1 month}", "unsupported expression `1 month`"),
        ("{unit: count, grain: month, formula: at_start(count(orders), week)}", "at_start(..., week) on a month KPI: a week is not longer"),
        ("{unit: count, grain: day, formula: at_start(count(orders), 1 month)}", "at_start() takes an expression and week, month, quarter or year"),
        ("{unit: count, grain: month, window: 90d, formula: count(orders), target: {direction: increase, value: 5, start: 2026-01-01, deadline: 2026-06-30, measure: window}}", "`measure: window` recomputes the KPI over the target window"),
    ],
)
def test_window_misuse_is_refused(tmp_path, kpi, message):
    pl.DataFrame({"ts": [dt.datetime(2026, 1, 1)], "customer_id": ["a"]}).write_parquet(tmp_path / "o.parquet")
    write_spec(
        tmp_path,
        "version: 1\nsources:\n  orders: {connector: parquet, path: o.parquet, time: ts, entities: {customer: customer_id}}\n"
        f"kpis:\n  k: {kpi}\n",
    )
    with pytest.raises(kpi_engine.KpiError) as info:
        kpi_engine.load(tmp_path)
    text = info.value.render()
    assert "kpis.yaml:5:" in text and message in text, text


def test_week_and_month_windows(result, con):
    """`4w` is 28 days; `2mo` covers the days after the same day two months before each period's end."""
    assert series(result["weekly_4w"]) == series(result["weekly_28d"])
    months = "SELECT DISTINCT date_trunc('month', d)::DATE AS p FROM orders"
    rows = con.execute(
        f"""SELECT m.p, count(DISTINCT customer_id) FROM ({months}) m JOIN orders
            ON d > (m.p + INTERVAL 1 MONTH - INTERVAL 1 DAY - INTERVAL 2 MONTH)::DATE
            AND d <= (m.p + INTERVAL 1 MONTH - INTERVAL 1 DAY)::DATE GROUP BY 1"""
    ).fetchall()
    check(series(result["monthly_2mo"]), rows)


def test_a_calendar_offset_over_a_custom_window_finds_nothing(shop):
    """A review's custom window (a Span) has no neighbouring periods: previous(x, 1 month) and at_start()
    over it are null, not an internal error (found by the demo report)."""
    from kpi_engine.periods import Span

    span = Span(dt.date(2026, 3, 3), dt.date(2026, 3, 30))
    result = kpi_engine.load(shop).evaluate(AS_OF, spans=[("mtd_vs_last_month", span)])
    assert result.spans[("mtd_vs_last_month", span)]["value"].to_list() == [None]


def test_a_window_beside_a_kpi_by_weekday_on_the_same_source(shop, con, tmp_path):
    """A 28-day total beside a daily KPI by weekday: the daily total the window is summed from is itself
    rolled up from the per-weekday rows, which must then compute the window's sum too (a KeyError before)."""
    kpis = (
        "kpis:\n"
        "  revenue_28d: {unit: currency, grain: day, window: 28d, formula: sum(orders.amount)}\n"
        "  by_weekday: {unit: count, grain: day, dimensions: [time.weekday], formula: count(orders)}\n"
    )
    root = write_spec(tmp_path, SPEC.split("kpis:")[0] + kpis)
    (root / "orders.parquet").write_bytes((shop / "orders.parquet").read_bytes())
    result = kpi_engine.load(root).evaluate(AS_OF)
    rows = con.execute("SELECT p, sum(amount) FROM days JOIN orders ON d BETWEEN p - 27 AND p GROUP BY ALL").fetchall()
    assert check(series(result["revenue_28d"]), rows) == 132
    rows = con.execute("SELECT d, isodow(d), count(*) FROM orders GROUP BY ALL").fetchall()
    got = {k: v for k, v in series(result["by_weekday"], "time.weekday").items() if k[1] != "total" and v}
    assert got == {(d, w): n for d, w, n in rows}
