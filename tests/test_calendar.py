"""Time zones, DST, week starts, fiscal years: engine buckets vs DuckDB and hand-written Python."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

import kpi_engine
from kpi_engine import periods
from kpi_engine.spec import Calendar, Grain

from conftest import require, write_spec


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    rng = np.random.default_rng(11)
    n = 5000
    start = np.datetime64("2026-02-20T00:00:00")
    secs = np.sort(rng.integers(0, 60 * 86400, n))
    return pl.DataFrame(
        {
            "ts": (start + secs.astype("timedelta64[s]")).astype("datetime64[us]"),
            "amount": rng.integers(1, 100, n),
            "channel": rng.choice(["a", "b"], n),
        }
    )


def test_new_york_sunday_weeks_across_dst_match_duckdb(tmp_path, events):
    duckdb = require("duckdb")
    root = write_spec(
        tmp_path,
        """
        version: 1
        timezone: America/New_York
        week_start: sunday
        sources:
          ev: {connector: dataframe, time: ts}
        kpis:
          amount: {unit: count, formula: sum(ev.amount), grain: week}
          per_day: {unit: count, formula: count(ev), grain: day}
    """,
    )
    res = kpi_engine.load(root, frames={"ev": events}).evaluate(dt.date(2026, 4, 15))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("ev", events.to_arrow())
    local = "(ts::TIMESTAMPTZ AT TIME ZONE 'America/New_York')"
    weekly = dict(
        con.execute(f"""
        SELECT (date_trunc('week', {local} + INTERVAL 1 DAY) - INTERVAL 1 DAY)::DATE, sum(amount)
        FROM ev WHERE {local} < TIMESTAMP '2026-04-16' GROUP BY ALL""").fetchall()
    )
    frame = res["amount"]
    assert {r["start"]: r["value"] for r in frame.iter_rows(named=True)} == {k: float(v) for k, v in weekly.items()}
    assert all(d.weekday() == 6 for d in frame["start"])  # Sundays
    daily = dict(
        con.execute(
            f"SELECT {local}::DATE, count(*) FROM ev WHERE {local} < TIMESTAMP '2026-04-16' GROUP BY ALL"
        ).fetchall()
    )
    got = {r["start"]: r["value"] for r in res["per_day"].iter_rows(named=True)}
    # 2026-03-08 is the US DST change: a 23-hour day, still one day
    assert got[dt.date(2026, 3, 8)] == daily[dt.date(2026, 3, 8)]
    assert got == {k: float(v) for k, v in daily.items()} | {k: 0.0 for k in got.keys() - daily.keys()}


def test_tz_aware_and_date_columns(tmp_path):
    paris = ZoneInfo("Europe/Paris")
    aware = pl.DataFrame(
        {
            "ts": [dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, 0, 30, tzinfo=dt.UTC)],
            "x": [1, 10],
        }
    ).with_columns(pl.col("ts").dt.convert_time_zone("Asia/Tokyo"))
    dates = pl.DataFrame({"day": [dt.date(2026, 3, 31), dt.date(2026, 4, 1)], "x": [100, 1000]})
    root = write_spec(
        tmp_path,
        """
        version: 1
        timezone: Europe/Paris
        sources:
          a: {connector: dataframe, time: ts}
          d: {connector: dataframe, time: day}
        kpis:
          ax: {unit: count, formula: sum(a.x), grain: month}
          dx: {unit: count, formula: sum(d.x), grain: month}
    """,
    )
    res = kpi_engine.load(root, frames={"a": aware, "d": dates}).evaluate(dt.date(2026, 4, 30))
    # 23:30 UTC on 31 March is 01:30 on 1 April in Paris: both rows fall in April
    expected_month = {dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC).astimezone(paris).month}
    assert expected_month == {4}
    assert res["ax"]["value"].to_list() == [11.0]
    assert dict(zip(res["dx"]["period"], res["dx"]["value"], strict=True)) == {"2026-03": 100.0, "2026-04": 1000.0}


@pytest.mark.parametrize("fiscal_start", [1, 2, 4, 7, 10, 12])
def test_fiscal_quarters_and_years(fiscal_start):
    cal = Calendar("UTC", 0, fiscal_start)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(0, 800, 3)]
    frame = pl.DataFrame({"d": days}).with_columns(
        q=periods.period_start(pl.col("d"), Grain.QUARTER, cal), y=periods.period_start(pl.col("d"), Grain.YEAR, cal)
    )
    for day, q, y in frame.iter_rows():
        # reference: count months since the fiscal year started
        offset = (day.month - fiscal_start) % 12
        fy_start_year = day.year if day.month >= fiscal_start else day.year - 1
        assert y == dt.date(fy_start_year, fiscal_start, 1)
        q_month = (fiscal_start - 1 + offset - offset % 3) % 12 + 1
        q_year = fy_start_year + (fiscal_start - 1 + offset - offset % 3) // 12
        assert q == dt.date(q_year, q_month, 1)
        assert periods.start_of(day, Grain.QUARTER, cal) == q
        assert periods.start_of(day, Grain.YEAR, cal) == y


@pytest.mark.parametrize("week_start", range(7))
def test_week_start_any_day(week_start):
    cal = Calendar("UTC", week_start, 1)
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    frame = pl.DataFrame({"d": days}).with_columns(w=periods.period_start(pl.col("d"), Grain.WEEK, cal))
    for day, start in frame.iter_rows():
        assert start.weekday() == week_start and 0 <= (day - start).days < 7
        assert periods.start_of(day, Grain.WEEK, cal) == start


def test_labels():
    cal = Calendar()
    assert periods.label(dt.date(2026, 3, 30), Grain.WEEK, cal) == "2026-W14"
    assert periods.label(dt.date(2026, 3, 29), Grain.WEEK, Calendar("UTC", 6, 1)) == "2026-W14"
    assert periods.label(dt.date(2025, 12, 29), Grain.WEEK, cal) == "2026-W01"
    assert periods.label(dt.date(2026, 4, 1), Grain.QUARTER, cal) == "2026-Q2"
    assert periods.label(dt.date(2026, 4, 1), Grain.QUARTER, Calendar("UTC", 0, 4)) == "FY2027-Q1"
    assert periods.label(dt.date(2026, 1, 1), Grain.QUARTER, Calendar("UTC", 0, 4)) == "FY2026-Q4"
    assert periods.label(dt.date(2026, 7, 1), Grain.YEAR, Calendar("UTC", 0, 7)) == "FY2027"
    assert periods.label(dt.date(2026, 5, 1), Grain.MONTH, cal) == "2026-05"
    assert periods.label(dt.date(2026, 1, 1), Grain.YEAR, cal) == "2026"


def test_bound_literals_respect_time_zone():
    lit = pl.select(periods.bound_literal(dt.date(2026, 7, 1), pl.Datetime("us"), "Europe/Paris")).item()
    assert lit == dt.datetime(2026, 6, 30, 22, 0)  # naive = UTC
    aware = pl.select(
        periods.bound_literal(dt.date(2026, 7, 1), pl.Datetime("us", "Asia/Tokyo"), "Europe/Paris")
    ).item()
    assert math.isclose(aware.timestamp(), dt.datetime(2026, 6, 30, 22, 0, tzinfo=dt.UTC).timestamp())


def test_datetime_literals_are_local_times_unless_they_carry_an_offset(tmp_path):
    """`datetime("2026-07-01T00:00")` in a Europe/Paris project is Paris midnight (22:00 UTC the day before),
    as the periods' days are; with `Z` or `+02:00` it is that instant. Rows at 21:30 and 22:30 UTC on
    30 June are 23:30 on 30 June and 00:30 on 1 July in Paris."""
    frame = pl.DataFrame({"ts": [dt.datetime(2026, 6, 30, 21, 30), dt.datetime(2026, 6, 30, 22, 30)], "n": [1, 10]})
    frame.write_parquet(tmp_path / "e.parquet")
    root = write_spec(
        tmp_path,
        """
        version: 1
        timezone: Europe/Paris
        sources:
          e: {connector: parquet, path: e.parquet, time: ts}
        kpis:
          local: {unit: count, grain: year, formula: 'sum(e.n where ts >= datetime("2026-07-01T00:00"))'}
          utc: {unit: count, grain: year, formula: 'sum(e.n where ts >= datetime("2026-06-30T22:00Z"))'}
          offset: {unit: count, grain: year, formula: 'sum(e.n where ts < datetime("2026-07-01T00:00+02:00"))'}
        """,
    )
    result = kpi_engine.load(root).evaluate(dt.date(2026, 7, 31))
    values = {kpi: result[kpi]["value"].to_list() for kpi in ("local", "utc", "offset")}
    assert values == {"local": [10], "utc": [10], "offset": [1]}


def test_text_days_in_the_time_column_count_on_that_day_west_of_utc(tmp_path):
    """JSON has no date type: `"at": "2026-03-29"` is text. Read as UTC midnight it was 28 March in New York
    (the day before); it is the spec's day, as a date column's value is. A time of day still reads as UTC."""
    (tmp_path / "e.ndjson").write_text(
        '{"at": "2026-03-29", "n": 1}\n{"at": "2026-03-30", "n": 2}\n{"at": "2026-03-31T02:00:00", "n": 4}\n'
    )
    root = write_spec(
        tmp_path,
        """
        version: 1
        timezone: America/New_York
        sources:
          e: {connector: ndjson, path: e.ndjson, time: at}
          d: {connector: ndjson, path: d.ndjson, time: at, dtypes: {at: date}}
        kpis:
          n: {unit: count, grain: day, formula: sum(e.n)}
          since: {unit: count, grain: year, formula: 'count(e where at >= datetime("2026-03-30T00:00"))'}
          hours: {unit: count, grain: year, dimensions: [time.hour], formula: sum(d.n)}
        """,
    )
    (root / "d.ndjson").write_text('{"at": "2026-03-29", "n": 1}\n')
    result = kpi_engine.load(root).evaluate(dt.date(2026, 3, 31))
    days = {r["start"]: r["value"] for r in result["n"].iter_rows(named=True) if r["value"]}
    # 02:00 UTC on 31 March is 22:00 on the 30th in New York (EDT, UTC-4)
    assert days == {dt.date(2026, 3, 29): 1, dt.date(2026, 3, 30): 2 + 4}
    # the time column binds as a timestamp (it is text in the file): New York's midnight on the 30th on
    assert result["since"]["value"].to_list() == [2]
    # declared a date column, its values have no hour
    assert result["hours"].filter(~pl.col("is_total"))["time.hour"].to_list() == [None]
