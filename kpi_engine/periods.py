"""Calendar arithmetic: which period a row falls in, period labels, ranges, and as-of cut-offs.

Rows are bucketed on their local wall-clock date in the spec's time zone, so DST changes never move a row
to the wrong day; naive timestamps are taken as UTC.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

from .model import MIN_DATE, MONTHS_PER, Calendar, Grain, WindowSpec


@dataclass(frozen=True)
class Span:
    """A custom period: the days from ``start`` to ``end`` (inclusive) as one bucket.

    Used where a KPI is recomputed over a window from its aggregates: a target window, a baseline period,
    the elapsed part of a comparison period. Spans are never written in specs.
    """

    start: dt.date
    end: dt.date

    @property
    def all_time(self) -> bool:
        """Every day up to ``end`` (``kpi run --all-time``): covered from the data's first day."""
        return self.start == MIN_DATE

    def __str__(self) -> str:
        return f"all time to {self.end}" if self.all_time else f"{self.start}..{self.end}"


def all_time(end: dt.date) -> Span:
    """The one period of every day up to ``end``: a KPI's all-time value, recomputed from its aggregates."""
    return Span(MIN_DATE, end)


@dataclass(frozen=True)
class Trailing:
    """The periods of a KPI with a ``window:``: labelled and stepped like ``grain``, each covering the days from
    ``window_first`` to its own last day, so that one day counts in several periods (see ``covering``)."""

    grain: Grain
    window: WindowSpec

    def __str__(self) -> str:
        return f"{self.grain} over {self.window}"


Period = Grain | Span | Trailing
EVERY = {Grain.DAY: "1d", Grain.WEEK: "1w", Grain.MONTH: "1mo", Grain.QUARTER: "3mo", Grain.YEAR: "1y"}


def base(grain: Period) -> Grain | Span:
    """The calendar a period steps by: a windowed period steps like its grain."""
    return grain.grain if isinstance(grain, Trailing) else grain


def window_first(start: dt.date, grain: Trailing, cal: Calendar) -> dt.date | None:
    """The first day the period starting at ``start`` covers (None: from the first row)."""
    w = grain.window
    if w.days is not None:
        return end_of(start, grain.grain) - dt.timedelta(days=w.days - 1)
    if w.months is not None:
        return _months_before(end_of(start, grain.grain), w.months) + dt.timedelta(days=1)
    if w.to_date is not None:
        return start_of(start, w.to_date, cal)
    return w.since


def _months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` months earlier, clamped to that month's last day (31 March -> 29 February)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = (dt.date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month + 1, min(day.day, last))


def covering(days: pl.LazyFrame, day: str, grain: Trailing, cal: Calendar, last: dt.date, out: str) -> pl.LazyFrame:
    """For each day of ``days``, a row per period (up to ``last``) whose window holds it, as column ``out``."""
    w, g = grain.window, grain.grain
    d = pl.col(day)
    if w.days is not None:
        upto = period_start(d.dt.offset_by(f"{w.days - 1}d"), g, cal)
    elif w.months is not None:
        upto = period_start(d.dt.offset_by(f"{w.months}mo").dt.offset_by("-1d"), g, cal)
    elif w.to_date is not None:
        enclosing = period_start(d, w.to_date, cal)
        upto = period_start(shift_expr(enclosing, w.to_date, 1).dt.offset_by("-1d"), g, cal)
    else:
        upto = pl.lit(last)
    upto = pl.min_horizontal(upto, pl.lit(last))
    ranges = pl.date_ranges(period_start(d, g, cal), upto, interval=EVERY[g])
    mapped = days.filter(d >= w.since) if w.since else days
    mapped = mapped.with_columns(ranges.alias(out)).explode(out).filter(pl.col(out).is_not_null())
    p = pl.col(out)
    if w.days is not None:
        return mapped.filter(d >= shift_expr(p, g, 1).dt.offset_by(f"-{w.days}d"))
    if w.months is not None:  # after the same day w.months months before the period's last day
        return mapped.filter(d > shift_expr(p, g, 1).dt.offset_by("-1d").dt.offset_by(f"-{w.months}mo"))
    if w.to_date is not None:
        return mapped.filter(period_start(p, w.to_date, cal) == period_start(d, w.to_date, cal))
    return mapped


_TRUNC = {Grain.DAY: "1d", Grain.WEEK: "1w", Grain.MONTH: "1mo", Grain.QUARTER: "1q", Grain.YEAR: "1y"}


def local_date(expr: pl.Expr, dtype: pl.DataType, tz: str) -> pl.Expr:
    """The local calendar date of a timestamp (or date) column in time zone ``tz``."""
    if isinstance(dtype, pl.Date):
        return expr
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            if tz == "UTC":  # naive timestamps are UTC already: skip the time-zone round trip
                return expr.dt.date()
            expr = expr.dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone(tz).dt.date()
    raise TypeError(f"not a temporal type: {dtype}")


TIME_PART = "time."  # a dimension that is a part of each row's local time: time.weekday, time.hour
#: parts of each row's local time a KPI may be broken down by: ``dimensions: [time.weekday]``
DATE_PARTS = {
    "weekday": lambda t: t.dt.weekday(),  # ISO: 1 Monday .. 7 Sunday, whatever the week start
    "hour": lambda t: t.dt.hour(),
    "day_of_month": lambda t: t.dt.day(),
    "week_of_year": lambda t: t.dt.week(),  # ISO week
    "month_of_year": lambda t: t.dt.month(),
    "quarter_of_year": lambda t: t.dt.quarter(),
}


def date_part(expr: pl.Expr, dtype: pl.DataType, tz: str, part: str) -> pl.Expr:
    """One part of each row's local time in ``tz`` (``hour`` of a date-only column is null)."""
    if isinstance(dtype, pl.Date):
        return pl.lit(None, dtype=pl.Int8) if part == "hour" else DATE_PARTS[part](expr).cast(pl.Int8)
    if dtype.time_zone is None:  # type: ignore[attr-defined]
        expr = expr.dt.replace_time_zone("UTC")
    return DATE_PARTS[part](expr.dt.convert_time_zone(tz)).cast(pl.Int8)


def period_start(date: pl.Expr, grain: Period, cal: Calendar) -> pl.Expr:
    """The first day of the period containing each date, honouring week start and fiscal year start.

    For a Span, dates outside it get null (the caller drops them).
    """
    grain = base(grain)
    if isinstance(grain, Span):
        return pl.when(date.is_between(grain.start, grain.end)).then(pl.lit(grain.start)).otherwise(None)
    if grain is Grain.DAY:
        return date
    if grain is Grain.WEEK:
        if cal.week_start == 0:
            return date.dt.truncate("1w")
        shift = f"{cal.week_start}d"
        return date.dt.offset_by(f"-{shift}").dt.truncate("1w").dt.offset_by(shift)
    if grain is Grain.MONTH or cal.fiscal_year_start == 1:
        return date.dt.truncate(_TRUNC[grain])
    shift = f"{cal.fiscal_year_start - 1}mo"
    return date.dt.offset_by(f"-{shift}").dt.truncate(_TRUNC[grain]).dt.offset_by(shift)


def start_of(day: dt.date, grain: Period, cal: Calendar) -> dt.date:
    """Python twin of :func:`period_start` for one date."""
    grain = base(grain)
    if isinstance(grain, Span):
        return grain.start
    if grain is Grain.DAY:
        return day
    if grain is Grain.WEEK:
        return day - dt.timedelta(days=(day.weekday() - cal.week_start) % 7)
    if grain is Grain.MONTH:
        return day.replace(day=1)
    months = MONTHS_PER[grain]
    index = (day.year * 12 + day.month - 1) - (cal.fiscal_year_start - 1)
    index -= index % months
    index += cal.fiscal_year_start - 1
    return dt.date(index // 12, index % 12 + 1, 1)


def shift(start: dt.date, grain: Period, n: int = 1) -> dt.date:
    """The start of the period ``n`` periods after the one starting at ``start`` (n may be negative)."""
    grain = base(grain)
    if isinstance(grain, Span):
        return start + dt.timedelta(days=n * ((grain.end - grain.start).days + 1))
    if grain is Grain.DAY:
        return start + dt.timedelta(days=n)
    if grain is Grain.WEEK:
        return start + dt.timedelta(weeks=n)
    index = start.year * 12 + start.month - 1 + n * MONTHS_PER[grain]
    return dt.date(index // 12, index % 12 + 1, 1)


def shift_expr(start: pl.Expr, grain: Period, n: int) -> pl.Expr:
    """:func:`shift` for a column of period starts; null for a Span (a custom window has no neighbours)."""
    grain = base(grain)
    if isinstance(grain, Span):
        return pl.lit(None, dtype=pl.Date)
    if grain is Grain.DAY or grain is Grain.WEEK:
        return start.dt.offset_by(f"{n * (7 if grain is Grain.WEEK else 1)}d")
    return start.dt.offset_by(f"{n * MONTHS_PER[grain]}mo")


def period_range(first: dt.date, last: dt.date, grain: Period, cal: Calendar) -> list[dt.date]:
    """Starts of every period from the one containing ``first`` to the one containing ``last``."""
    grain = base(grain)
    if isinstance(grain, Span):
        return [grain.start]
    out, cur, end = [], start_of(first, grain, cal), start_of(last, grain, cal)
    while cur <= end:
        out.append(cur)
        cur = shift(cur, grain)
    return out


def end_of(start: dt.date, grain: Period) -> dt.date:
    """The last day of the period starting at ``start``."""
    return shift(start, grain, 1) - dt.timedelta(days=1)


def label(start: dt.date, grain: Period, cal: Calendar) -> str:
    """Human label of a period: 2026-04-01, 2026-W14, 2026-04, 2026-Q2, 2026 (FY2027-Q1 with a fiscal year)."""
    grain = base(grain)
    if isinstance(grain, Span):
        return str(grain)
    if grain is Grain.DAY:
        return start.isoformat()
    if grain is Grain.WEEK:
        monday = start + dt.timedelta(days=(7 - start.weekday()) % 7)
        year, week, _ = monday.isocalendar()
        return f"{year}-W{week:02d}"
    if grain is Grain.MONTH:
        return f"{start.year}-{start.month:02d}"
    fy = cal.fiscal_year_start
    if fy == 1:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}" if grain is Grain.QUARTER else str(start.year)
    fiscal_year = start.year + (1 if start.month >= fy else 0)
    if grain is Grain.YEAR:
        return f"FY{fiscal_year}"
    quarter = ((start.month - fy) % 12) // 3 + 1
    return f"FY{fiscal_year}-Q{quarter}"


def year_earlier(day: dt.date, align: str) -> dt.date:
    """The same day a year earlier: ``week`` keeps the ISO week and weekday (week 53 maps to 52), ``weekday``
    goes back 52 weeks, ``date`` keeps the calendar date (29 February maps to 28 February)."""
    if align == "week":
        year, week, weekday = day.isocalendar()
        try:
            return dt.date.fromisocalendar(year - 1, week, weekday)
        except ValueError:  # week 53 has no twin
            return dt.date.fromisocalendar(year - 1, 52, weekday)
    if align == "weekday":
        return day - dt.timedelta(weeks=52)
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def year_earlier_span(span: Span, cal: Calendar) -> Span:
    """The same period a year earlier: THE rule for every "vs a year ago" (the scorecard and `kpi due`).

    The span's shape decides, never the cadence or grain that produced it: whole ISO weeks (Monday starts)
    keep their ISO week numbers, whole months, quarters and years keep their calendar dates (February keeps
    its length), anything else (days, weeks starting on another day, odd spans) goes back 52 weeks, so that
    weekdays line up.
    """
    days = (span.end - span.start).days + 1
    after = span.end + dt.timedelta(days=1)
    if days % 7 == 0 and span.start.weekday() == 0 == cal.week_start:
        start = year_earlier(span.start, "week")
        return Span(start, start + (span.end - span.start))
    if span.start.day == 1 and after.day == 1:
        return Span(year_earlier(span.start, "date"), year_earlier(after, "date") - dt.timedelta(days=1))
    return Span(span.start - dt.timedelta(weeks=52), span.end - dt.timedelta(weeks=52))


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    """The instant a local day starts, as an aware datetime in ``tz``."""
    return dt.datetime.combine(day, dt.time(), ZoneInfo(tz))


def bound_literal(day: dt.date, dtype: pl.DataType, tz: str) -> pl.Expr:
    """The start of local ``day`` as a literal comparable with a column of ``dtype`` (for pushdown)."""
    if isinstance(dtype, pl.Date):
        return pl.lit(day, dtype=pl.Date)
    instant = local_midnight(day, tz)
    if dtype.time_zone is None:  # type: ignore[attr-defined]
        naive_utc = instant.astimezone(dt.UTC).replace(tzinfo=None)
        return pl.lit(naive_utc, dtype=pl.Datetime(dtype.time_unit))  # type: ignore[attr-defined]
    return pl.lit(instant.astimezone(ZoneInfo(dtype.time_zone))).cast(dtype)  # type: ignore[attr-defined]
