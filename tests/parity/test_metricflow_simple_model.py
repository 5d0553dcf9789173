"""Parity with dbt MetricFlow's integration cases on its `simple_model` fixture rows (issue 13, item 8).

Each case names the MetricFlow case it mirrors (`tests_metricflow/integration/test_cases/*.yaml`), is written
as a kpi-engine KPI over the same rows, and is checked against DuckDB SQL written here for MetricFlow's
semantics; expected values never come from our output. A query without `metric_time` is the all-time
value: `kpi run --all-time` (`evaluate(all_time=True)`).

Where we differ on purpose, the case says so and checks our documented behaviour:
- a listing the lookup table lacks is counted under `unknown`, where MetricFlow shows NULL;
- periods with no bookings inside the data's span are 0 for counts and sums (MetricFlow leaves them out).
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import pytest

import kpi_engine

from conftest import require, write_spec

duckdb = require("duckdb")
FIXTURES = Path(__file__).parent / "metricflow"
AS_OF = dt.date(2020, 12, 31)

SPEC = """
version: 1
lookups:
  listings: {connector: csv, path: dim_listings_latest.csv, key: listing_id}
sources:
  bookings: {connector: csv, path: fct_bookings.csv, time: ds, lookups: [listings]}
  revenue: {connector: csv, path: fct_revenue.csv, time: created_at}
kpis:
  bookings_day: {unit: count, grain: day, formula: count(bookings)}
  bookings_week: {unit: count, grain: week, formula: count(bookings)}
  bookings_month: {unit: count, grain: month, formula: count(bookings)}
  bookings_quarter: {unit: count, grain: quarter, formula: count(bookings)}
  bookings_year: {unit: count, grain: year, formula: count(bookings)}
  listings_day: {unit: count, grain: day, formula: count_distinct(bookings.listing_id)}
  listings_week: {unit: count, grain: week, formula: count_distinct(bookings.listing_id)}
  listings_month: {unit: count, grain: month, formula: count_distinct(bookings.listing_id)}
  listings_quarter: {unit: count, grain: quarter, formula: count_distinct(bookings.listing_id)}
  listings_year: {unit: count, grain: year, formula: count_distinct(bookings.listing_id)}
  max_value: {unit: currency, grain: day, formula: max(bookings.booking_value)}
  min_value: {unit: currency, grain: day, formula: min(bookings.booking_value)}
  bookers: {unit: count, grain: day, formula: count_distinct(bookings.guest_id)}
  average_value: {unit: currency, grain: day, formula: mean(bookings.booking_value)}
  instant_bookings: {unit: count, grain: day, formula: sum(bookings.is_instant)}
  referred_bookings: {unit: count, grain: day, formula: count(bookings.referrer_id)}
  p99: {unit: currency, grain: day, formula: quantile(bookings.booking_value, 0.99)}
  p99_discrete: {unit: currency, grain: day, formula: quantile_disc(bookings.booking_value, 0.99)}
  instant_value: {unit: currency, grain: day, formula: sum(bookings.booking_value where is_instant)}
  booking_fees_per_booker: {unit: currency, grain: day, formula: sum(bookings.booking_value) * 0.05 / count_distinct(bookings.guest_id)}
  value_by_instant: {unit: currency, grain: year, window: all_time, dimensions: [is_instant], formula: sum(bookings.booking_value)}
  value_by_country: {unit: currency, grain: year, window: all_time, dimensions: [is_instant, country], formula: sum(bookings.booking_value)}
  min_value_all: {unit: currency, grain: year, window: all_time, formula: min(bookings.booking_value)}
  instant_value_by_instant: {unit: currency, grain: year, window: all_time, dimensions: [is_instant], formula: sum(bookings.booking_value where is_instant)}
  bookings_all: {unit: count, grain: year, window: all_time, formula: count(bookings)}
  max_value_all: {unit: currency, grain: year, window: all_time, formula: max(bookings.booking_value)}
  booking_value_day: {unit: currency, grain: day, formula: sum(bookings.booking_value)}
  median_value: {unit: currency, grain: day, formula: median(bookings.booking_value)}
  bookings_per_booker: {unit: ratio, grain: day, formula: count(bookings) / count_distinct(bookings.guest_id)}
  booking_fees: {unit: currency, grain: day, formula: sum(bookings.booking_value) * 0.05}
  listed_value: {unit: currency, grain: day, formula: sum(bookings.booking_value where listing_id is not null)}
  every_two_days_bookers: {unit: count, grain: day, window: 2d, formula: count_distinct(bookings.guest_id)}
  bookings_5_day_lag: {unit: count, grain: day, formula: previous(count(bookings), 5)}
  bookings_5_day_lag_month: {unit: count, grain: month, formula: previous(count(bookings), 5 days)}
  bookings_growth_2_weeks: {unit: count, grain: day, formula: count(bookings) - previous(count(bookings), 14)}
  revenue_all_time: {unit: currency, grain: day, window: all_time, formula: sum(revenue.revenue)}
  revenue_mtd: {unit: currency, grain: day, window: month_to_date, formula: sum(revenue.revenue)}
  trailing_2_months_revenue: {unit: currency, grain: day, window: 2mo, formula: sum(revenue.revenue)}
  growth_since_start_of_month: {unit: count, grain: day, formula: count(bookings) - at_start(count(bookings), month)}
  all_time_at_start_of_month: {unit: count, grain: day, window: all_time, formula: at_start(count(bookings), month)}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mf_simple")
    for name in ("fct_bookings.csv", "dim_listings_latest.csv", "fct_revenue.csv"):
        shutil.copy(FIXTURES / name, folder / name)
    return write_spec(folder, SPEC)


@pytest.fixture(scope="module")
def result(root: Path):
    return kpi_engine.load(root).evaluate(AS_OF)


@pytest.fixture(scope="module")
def everything(root: Path):
    """Each KPI's all-time value (one period up to as-of)."""
    return kpi_engine.load(root).evaluate(AS_OF, all_time=True)


@pytest.fixture(scope="module")
def con():
    db = duckdb.connect()
    db.execute(f"CREATE VIEW bookings AS SELECT * REPLACE (ds::DATE AS ds) FROM read_csv('{FIXTURES / 'fct_bookings.csv'}')")
    db.execute(f"CREATE VIEW listings AS SELECT * FROM read_csv('{FIXTURES / 'dim_listings_latest.csv'}')")
    db.execute(
        f"CREATE VIEW revenue AS SELECT * REPLACE (created_at::DATE AS created_at) FROM read_csv('{FIXTURES / 'fct_revenue.csv'}')"
    )
    yield db
    db.close()


def series(frame) -> dict:
    """Totals with data: period start -> value; periods without rows are left out, as MetricFlow does."""
    return {r["start"]: r["value"] for r in frame.iter_rows(named=True) if r["is_total"] and r["has_data"]}


def same(got: dict, rows: list[tuple], zero_fill: bool = False) -> None:
    expected = {r[0]: r[1] for r in rows}
    if zero_fill:  # we show 0 for periods inside the data without rows; MetricFlow leaves them out
        got = {k: v for k, v in got.items() if k in expected or v != 0}
    else:
        got = {k: v for k, v in got.items() if k in expected or v is not None}
    assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))
    for k, v in expected.items():
        assert (got[k] is None) == (v is None) and (v is None or math.isclose(got[k], v, rel_tol=1e-9)), (k, got[k], v)


TRUNC = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}


@pytest.mark.parametrize("grain", list(TRUNC))
def test_query_granularity_for_sum(result, con, grain):
    """MetricFlow cases `query_granularity_for_sum_{day,week,month,quarter,year}` (bookings)."""
    rows = con.execute(f"SELECT date_trunc('{grain}', ds)::DATE, count(*) FROM bookings GROUP BY 1").fetchall()
    same(series(result[f"bookings_{grain}"]), rows, zero_fill=True)


@pytest.mark.parametrize("grain", list(TRUNC))
def test_query_granularity_for_count_distinct(result, con, grain):
    """MetricFlow cases `query_granularity_for_count_distinct_*` (unique_listings_booked)."""
    rows = con.execute(f"SELECT date_trunc('{grain}', ds)::DATE, count(DISTINCT listing_id) FROM bookings GROUP BY 1").fetchall()
    same(series(result[f"listings_{grain}"]), rows, zero_fill=True)


@pytest.mark.parametrize(
    ("kpi", "sql", "zero_fill"),
    [
        ("max_value", "max(booking_value)", False),  # max_SIMPLE by day
        ("min_value", "min(booking_value)", False),  # min_SIMPLE by day
        ("bookers", "count(DISTINCT guest_id)", True),  # count_distinct_agg
        ("average_value", "avg(booking_value)", False),  # avg_agg
        ("instant_bookings", "sum(is_instant::INT)", True),  # boolean_agg
        ("referred_bookings", "count(referrer_id)", True),  # count_agg
        ("p99", "quantile_cont(booking_value, 0.99)", False),  # continuous_percentile_agg
        ("p99_discrete", "percentile_disc(0.99) WITHIN GROUP (ORDER BY booking_value)", False),  # discrete_percentile_agg
        ("instant_value", "coalesce(sum(booking_value) FILTER (WHERE is_instant), 0)", True),  # constrained_metric
        ("booking_fees_per_booker", "sum(booking_value) * 0.05 / count(DISTINCT guest_id)", False),  # single_data_source_expr_metric
    ],
)
def test_measure_aggregations_by_day(result, con, kpi, sql, zero_fill):
    """MetricFlow's `itest_measure_aggregations` and `itest_metrics` cases, by metric_time (day)."""
    rows = con.execute(f"SELECT ds, {sql} FROM bookings GROUP BY ds").fetchall()
    same(series(result[kpi]), rows, zero_fill=zero_fill)


def latest(frame, dims: list[str]) -> dict:
    """The all-time values per dimension values (the frame's one period)."""
    assert frame["period"].unique().to_list() == [f"all time to {AS_OF}"]
    return {tuple(r[d] for d in dims): r["value"] for r in frame.iter_rows(named=True) if not r["is_total"]}


def test_simple_query(everything, con):
    """MetricFlow case `simple_query`: booking_value by booking__is_instant, over all time."""
    rows = con.execute("SELECT is_instant, sum(booking_value) FROM bookings GROUP BY 1").fetchall()
    assert latest(everything["value_by_instant"], ["is_instant"]) == pytest.approx({(i,): v for i, v in rows}, rel=1e-12)


def test_query_with_join(everything, con):
    """MetricFlow case `query_with_join`: by is_instant and the listing's country (a lookup). Listings the
    lookup lacks (or without a country) are `unknown` here, NULL in MetricFlow."""
    rows = con.execute(
        """SELECT b.is_instant, coalesce(l.country, CASE WHEN l.listing_id IS NULL THEN 'unknown' END), sum(booking_value)
           FROM bookings b LEFT JOIN listings l USING (listing_id) GROUP BY 1, 2"""
    ).fetchall()
    got = latest(everything["value_by_country"], ["is_instant", "country"])
    assert got == pytest.approx({(i, c): v for i, c, v in rows}, rel=1e-12)


def test_min_and_max_simple(everything, con):
    """MetricFlow cases `min_SIMPLE` and `max_SIMPLE`: no group by."""
    lo, hi = con.execute("SELECT min(booking_value), max(booking_value) FROM bookings").fetchone()
    assert everything["min_value_all"]["value"].item() == pytest.approx(lo)
    assert everything["max_value_all"]["value"].item() == pytest.approx(hi)


def test_cumulative_metric_by_ds(result, con):
    """MetricFlow case `cumulative_metric_by_ds` (revenue_all_time by day): a running total from the first row."""
    rows = con.execute(
        """WITH days AS (SELECT range::DATE d FROM range(DATE '2020-01-01', DATE '2021-01-01', INTERVAL 1 DAY)
                         WHERE range <= (SELECT max(created_at) FROM revenue))
           SELECT d, sum(revenue) FROM days JOIN revenue ON created_at <= d GROUP BY d"""
    ).fetchall()
    same(series(result["revenue_all_time"]), rows)


def test_grain_to_date_cumulative_metric(result, con):
    """MetricFlow case `grain_to_date_cumulative_metric` (revenue_mtd by day)."""
    rows = con.execute(
        """WITH days AS (SELECT range::DATE d FROM range(DATE '2020-01-01', DATE '2021-01-01', INTERVAL 1 DAY)
                         WHERE range <= (SELECT max(created_at) FROM revenue))
           SELECT d, sum(revenue) FROM days JOIN revenue ON created_at BETWEEN date_trunc('month', d) AND d GROUP BY d"""
    ).fetchall()
    same(series(result["revenue_mtd"]), rows, zero_fill=True)


@pytest.mark.parametrize(
    ("kpi", "sql", "zero_fill"),
    [
        ("median_value", "median(booking_value)", False),  # median_booking_value
        ("bookings_per_booker", "count(*) / count(DISTINCT guest_id)", False),  # bookings_per_booker
        ("booking_fees", "sum(booking_value) * 0.05", True),  # simple_expr_metric (booking_fees)
        ("listed_value", "coalesce(sum(booking_value) FILTER (WHERE listing_id IS NOT NULL), 0)", True),  # identifier_constrained_metric
    ],
)
def test_more_metrics_by_day(result, con, kpi, sql, zero_fill):
    """More of MetricFlow's `itest_metrics` cases, by metric_time (day)."""
    rows = con.execute(f"SELECT ds, {sql} FROM bookings GROUP BY ds").fetchall()
    same(series(result[kpi]), rows, zero_fill=zero_fill)


def test_non_additive_cumulative_metric_by_ds(result, con):
    """MetricFlow case `non_additive_cumulative_metric_by_ds` (every_two_days_bookers): distinct bookers over
    each day and the one before, counted over the window, not added up."""
    rows = con.execute(
        """WITH days AS (SELECT DISTINCT ds AS d FROM bookings UNION SELECT DISTINCT ds + 1 FROM bookings)
           SELECT d, count(DISTINCT guest_id) FROM days JOIN bookings ON ds BETWEEN d - 1 AND d
           WHERE d <= (SELECT max(ds) FROM bookings) GROUP BY d"""
    ).fetchall()
    same(series(result["every_two_days_bookers"]), rows, zero_fill=True)


@pytest.mark.parametrize(("kpi", "lag"), [("bookings_5_day_lag", 5), ("bookings_growth_2_weeks", 14)])
def test_offset_metrics(result, con, kpi, lag):
    """MetricFlow's derived metrics with `offset_window` (bookings 5 days earlier; bookings less bookings two
    weeks earlier), by day: checked on every day whose offset day had bookings; on the others our value is
    0 (a day inside the data with no bookings) or null (before the first row)."""
    counts = dict(con.execute("SELECT ds, count(*) FROM bookings GROUP BY ds").fetchall())
    got = series(result[kpi])
    checked = 0
    for day, value in got.items():
        earlier = day - dt.timedelta(days=lag)
        if earlier in counts:
            expected = counts[earlier] if kpi == "bookings_5_day_lag" else counts.get(day, 0) - counts[earlier]
            assert value == expected, (day, value, expected)
            checked += 1
        elif kpi == "bookings_5_day_lag":
            assert value in (0, None), (day, value)
    assert checked >= 10


def test_derived_metric_offset_window_and_granularity(result, con):
    """MetricFlow case `derived_metric_offset_window_and_granularity`: bookings 5 days earlier, by month: the
    sum over each month's days of the bookings 5 days before them. MetricFlow's time spine goes on into
    January 2021; our months end at as-of (31 December 2020)."""
    rows = con.execute(
        "SELECT date_trunc('month', ds + 5)::DATE, count(*) FROM bookings WHERE ds + 5 <= DATE '2020-12-31' GROUP BY 1"
    ).fetchall()
    same(series(result["bookings_5_day_lag_month"]), rows, zero_fill=True)


def test_simple_query_with_time_constraint(tmp_path, con):
    """MetricFlow case `simple_query_with_time_constraint`: booking_value by day between two dates, which is
    `--from`/`--to` (days inside with no bookings show 0, where MetricFlow leaves them out)."""
    for name in ("fct_bookings.csv", "dim_listings_latest.csv", "fct_revenue.csv"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    write_spec(tmp_path, SPEC)
    result = kpi_engine.load(tmp_path).evaluate(AS_OF, start=dt.date(2019, 12, 19), end=dt.date(2020, 1, 2))
    rows = con.execute(
        "SELECT ds, sum(booking_value) FROM bookings WHERE ds BETWEEN DATE '2019-12-19' AND DATE '2020-01-02' GROUP BY ds"
    ).fetchall()
    got = series(result["booking_value_day"])
    assert min(got) == dt.date(2019, 12, 19) and max(got) == dt.date(2020, 1, 2)
    same(got, rows, zero_fill=True)


def test_simple_constrained_query(everything, con):
    """MetricFlow case `simple_constrained_query`: booking_value where booking__is_instant, by is_instant."""
    rows = con.execute("SELECT is_instant, sum(booking_value) FROM bookings WHERE is_instant GROUP BY 1").fetchall()
    got = {k: v for k, v in latest(everything["instant_value_by_instant"], ["is_instant"]).items() if v}
    assert got == pytest.approx({(i,): v for i, v in rows}, rel=1e-12)


def test_metric_with_no_dimensions(result, everything, con):
    """MetricFlow's `itest_metric_queries_no_dimensions`: bookings over all time, no group by; the same as the
    last period of a running total (`window: all_time`)."""
    (expected,) = con.execute("SELECT count(*) FROM bookings").fetchone()
    assert everything["bookings_day"]["value"].item() == expected == 287
    frame = result["bookings_all"]
    assert frame.filter(frame["start"] == frame["start"].max())["value"].item() == expected


def test_windowed_cumulative_metric(result, con):
    """MetricFlow case `windowed_cumulative_metric` (trailing_2_months_revenue by day): each day covers the
    days after the same day two months earlier, up to it."""
    rows = con.execute(
        """WITH days AS (SELECT range::DATE d FROM range(DATE '2020-01-01', DATE '2021-01-01', INTERVAL 1 DAY)
                         WHERE range <= (SELECT max(created_at) FROM revenue))
           SELECT d, sum(revenue) FROM days JOIN revenue ON created_at > d - INTERVAL 2 MONTH AND created_at <= d
           GROUP BY d"""
    ).fetchall()
    same(series(result["trailing_2_months_revenue"]), rows, zero_fill=True)


def test_offset_to_grain(result, con):
    """MetricFlow's `offset_to_grain: month` metrics, by day: `bookings_growth_since_start_of_month` (bookings
    less bookings on the 1st) on the days with bookings, and `bookings_all_time_at_start_of_month` (the
    running count on the 1st of each day's month)."""
    counts = dict(con.execute("SELECT ds, count(*) FROM bookings GROUP BY ds").fetchall())
    growth = series(result["growth_since_start_of_month"])
    for day, n in counts.items():
        assert growth[day] == n - counts[day.replace(day=1)], day
    running = series(result["all_time_at_start_of_month"])
    for day, value in running.items():
        first = day.replace(day=1)
        assert value == sum(n for d, n in counts.items() if d <= first), day
    assert len(running) > 60
