"""Random rows and KPI catalogues for the differential tests (tests/test_differential.py) and the
incremental ones (tests/test_incremental.py): rows clustered around the instants where bucketing goes wrong,
formulas covering the language, and what a spec around them needs."""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import strategies as st

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]
# UTC instants where some zone's clock jumps or a local day, month or year turns
EDGES = [
    dt.datetime(2026, 3, 29, 1, 0),
    dt.datetime(2026, 10, 25, 1, 0),  # Paris
    dt.datetime(2026, 3, 8, 7, 0),
    dt.datetime(2026, 11, 1, 6, 0),  # New York
    dt.datetime(2026, 4, 4, 15, 0),
    dt.datetime(2026, 10, 3, 15, 30),  # Lord Howe (30 minutes)
    dt.datetime(2026, 4, 4, 14, 0),
    dt.datetime(2026, 9, 26, 14, 0),  # Chatham (+12:45 / +13:45)
    dt.datetime(2025, 12, 31, 18, 30),
    dt.datetime(2026, 3, 31, 22, 0),  # Kolkata new year, Paris 1 April
    dt.datetime(2026, 1, 1, 0, 0),
    dt.datetime(2026, 6, 30, 23, 59, 59),
]
FORMULAS = [
    "sum(e.n)",
    "count(e)",
    "count(e.x)",
    "count_distinct(e.v)",
    "count_distinct(e.k)",
    "mean(e.x)",
    "min(e.y)",
    'max(e.x where k == "a")',
    "100 * sum(e.x) / sum(e.y)",
    "sum(e.x / e.y)",
    "count(e where y > 0) / count(e)",
    "sum(e.n where x is null) - sum(e.n % 3)",
    "sum(e.x % 0.75) + sum(e.n % -4)",
    "sum(round(e.x, 0)) + sum(round(e.y * 0.3, 1))",
    "sum(round(e.n * 1.005, 2)) + sum(round(e.n * 25, -2))",
    "sum(coalesce(e.x, e.y)) + sum(abs(e.x))",
    "count(visitor where count(e) % 2 == 1)",
    "quantile(e.x, 0.5)",
    "quantile(e.n, 0.9)",
    "quantile_disc(e.y, 0.25)",
    "median(e.n)",
    "first(e.x)",
    "last(e.y)",
    "sum_last_day(e.n)",
    "sum_first_day(e.x)",
    "count(visitor where count(e) >= 2)",
    "count(visitor where new)",
    "mean(sum(e.n) per visitor)",
    "previous(sum(e.n), 3 days)",
    "100 * count(visitor where active(-1)) / count(visitor)",
    "count(visitor where new and active(1))",
    "count(visitor where not new) + count(visitor where active(-2))",
    "quantile(sum(e.x) per visitor, 0.75) + median(sum(e.n) per visitor)",
    "sum(sum_last_day(e.n) per visitor) + sum(last(e.y) per visitor)",
    "sum(over_next(sum(e.n), 2) per visitor where new) / count(e.visitor where new)",
    'count(e where k in ["a", null]) + sum(e.n where not (k == "b") and x is not null)',
    "previous(sum(e.n), 1 year) + previous(count(e), 2)",
    "mean(days(e.at - e.at)) + mean(e.n / e.x)",
    'count(e where k < "b") + sum(e.n where k >= "B")',
]
WINDOWS = {"day": ["28d", "month_to_date", "year_to_date", "all_time"], "week": ["28d", "all_time"]}
UNWINDOWED = ("new", "active", "previous", "over_next")  # (a window does not combine with these)
GRAINS = ["day", "week", "month", "quarter", "year"]
DIMENSIONS = ["[]", "[k]", "[time.weekday]", "[time.hour]", "[time.day_of_month]", "[k, time.quarter_of_year]"]
TIMES = ["naive", "aware", "date"]  # the time column: naive UTC timestamps, UTC-zoned ones, dates

instants = st.one_of(
    st.builds(lambda e, m: e + dt.timedelta(minutes=m), st.sampled_from(EDGES), st.integers(-120, 120)),
    st.datetimes(dt.datetime(2025, 11, 1), dt.datetime(2026, 12, 31)).map(lambda t: t.replace(microsecond=0)),
)
rows = st.lists(
    st.tuples(
        instants,
        st.one_of(
            st.none(), st.sampled_from(["a", "b", "c", "A", "é"])
        ),  # (the databases ignore case: test_differential)
        st.integers(-5, 40),
        st.one_of(st.none(), st.integers(-8, 8).map(lambda i: i / 4)),
        st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.5, 10.0])),
        st.integers(0, 6),
    ),
    min_size=1,
    max_size=80,
)
kpis = st.lists(
    st.tuples(
        st.sampled_from(FORMULAS),
        st.sampled_from(GRAINS),
        st.sampled_from(DIMENSIONS),
        st.integers(0, 2 * len(WINDOWS)),
    ),
    min_size=1,
    max_size=6,
)
calendars = st.tuples(
    st.sampled_from(ZONES),
    st.sampled_from(["monday", "sunday", "saturday"]),
    st.sampled_from([1, 4, 10]),
    st.sampled_from(TIMES),
)
as_of = st.dates(dt.date(2026, 1, 15), dt.date(2027, 1, 10))


def frame_of(data: list[tuple], times: str = "naive") -> pl.DataFrame:
    frame = pl.DataFrame(
        [{"at": t, "k": k, "n": n, "x": x, "y": y, "v": v} for t, k, n, x, y, v in data],
        schema={
            "at": pl.Datetime("us"),
            "k": pl.String,
            "n": pl.Int64,
            "x": pl.Float64,
            "y": pl.Float64,
            "v": pl.Int64,
        },
    )
    if times == "aware":
        return frame.with_columns(pl.col("at").dt.replace_time_zone("UTC"))
    return frame.with_columns(pl.col("at").dt.date()) if times == "date" else frame


def catalogue(calendar: tuple, chosen: list[tuple]) -> tuple[str, str]:
    """The spec's calendar lines and its KPIs; a KPI's window (picked by its 4th field) only where one applies."""
    zone, week_start, fiscal = calendar[:3]
    lines = []
    for i, (formula, grain, dims, *pick) in enumerate(chosen):
        choices = [] if any(word in formula for word in UNWINDOWED) else WINDOWS.get(grain, [])
        window = choices[pick[0]] if pick and pick[0] < len(choices) else None
        extra = f", window: {window}" if window else ""
        lines.append(f"  m{i}: {{unit: ratio, grain: {grain}, dimensions: {dims}, formula: '{formula}'{extra}}}")
    head = f"timezone: {zone}\nweek_start: {week_start}\nfiscal_year_start: {fiscal}\n"
    return head, "kpis:\n" + "\n".join(lines) + "\n"
