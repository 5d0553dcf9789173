"""Reading time columns exactly: ISO 8601 text, declared formats, epoch numbers, and naive local times.

Every connector's time column goes through here, so a timestamp means the same thing whichever file or
database it came from. The result is always a naive UTC ``Datetime("us")`` (the engine's convention) or a
``Date``. Nothing is guessed: text that is not ISO 8601 needs ``time_format``, numbers need ``time_unit``,
and a value no declared format reads is an error, never a null or a day-first misreading.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from .spec_dates import MAX_DATE, MIN_DATE

_ISO_DATE = r"\d{4}-\d{2}-\d{2}"
_ISO_TIME = r"[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
_ISO_ZONE = r"(Z|[+-]\d{2}:?\d{2})"
ISO_DATE_RE = f"^{_ISO_DATE}$"
ISO_RE = f"^{_ISO_DATE}({_ISO_TIME}{_ISO_ZONE}?)?$"
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")
_ISO_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z")
_TIME_DIRECTIVES = re.compile(r"%[HIMSfpTRrcsz:.]")
UNITS = ("s", "ms", "us", "ns")


@dataclass(frozen=True)
class TimeOptions:
    """How a source's time values are read (the source options ``time_format``, ``time_zone``, ``time_unit``)."""

    formats: tuple[str, ...] = ()
    zone: str | None = None  # the zone naive timestamps are in (default UTC)
    unit: str | None = None  # epoch numbers: s, ms, us or ns

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> TimeOptions:
        raw = options.get("time_format") or ()
        formats = (raw,) if isinstance(raw, str) else tuple(raw)
        return cls(formats, options.get("time_zone"), options.get("time_unit"))

    @property
    def date_only(self) -> bool:
        """Declared formats with no time of day read as dates."""
        return bool(self.formats) and not any(_TIME_DIRECTIVES.search(f) for f in self.formats)


def in_range(expr: pl.Expr) -> pl.Expr:
    """Whether a date or datetime lies within the dates the engine accepts."""
    day = expr.dt.date()
    return day.is_between(pl.lit(MIN_DATE), pl.lit(MAX_DATE))


def _bounded(expr: pl.Expr) -> pl.Expr:
    return pl.when(in_range(expr)).then(expr)


def _to_utc(expr: pl.Expr, zone: str | None) -> pl.Expr:
    """Naive wall-clock times in ``zone`` as naive UTC (the earlier instant of a repeated autumn hour)."""
    if not zone or zone == "UTC":
        return expr
    aware = expr.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    return aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None)


def parse_text(expr: pl.Expr, opts: TimeOptions, date_only: bool = False) -> pl.Expr:
    """Text timestamps as naive wall-clock times of the source's zone (or dates): ISO 8601 unless formats are
    declared, tried in order. A value with an offset is converted to the zone's wall clock.

    A value that no format reads, or reads to a date outside MIN_DATE..MAX_DATE, becomes null; callers wrap
    the result in ``checked`` so that such a value fails the read instead.
    """
    text = expr.str.strip_chars()
    zone = opts.zone or "UTC"
    if date_only or opts.date_only:
        dates = [_bounded(text.str.to_date(f, strict=False)) for f in opts.formats or ("%Y-%m-%d",)]
        return pl.coalesce(dates) if len(dates) > 1 else dates[0]

    def aware(f: str) -> pl.Expr:
        parsed = text.str.replace(r"Z$", "+00:00").str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
        return parsed.dt.convert_time_zone(zone).dt.replace_time_zone(None)

    if opts.formats:
        parts = []
        for f in opts.formats:
            if "%z" in f or "%:z" in f:
                parts.append(aware(f))
            elif _TIME_DIRECTIVES.search(f):
                parts.append(text.str.to_datetime(f, strict=False, time_unit="us"))
            else:
                parts.append(text.str.to_date(f, strict=False).cast(pl.Datetime("us")))
        parts = [_bounded(p) for p in parts]
        return pl.coalesce(parts) if len(parts) > 1 else parts[0]
    naive = [text.str.to_datetime(f, strict=False, time_unit="us") for f in _ISO_NAIVE]
    naive.append(text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")))
    parsed = pl.coalesce([*(aware(f) for f in _ISO_AWARE), *naive])
    return pl.when(text.str.contains(ISO_RE)).then(_bounded(parsed))


def from_number(expr: pl.Expr, unit: str) -> pl.Expr:
    """Epoch numbers (seconds, ms, us or ns since 1970-01-01 UTC) as naive UTC datetimes, bounded."""
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}[unit]
    micros = (expr.cast(pl.Float64) * scale).round(0).cast(pl.Int64, strict=False)
    return _bounded(micros.cast(pl.Datetime("us")))


def time_expr(
    expr: pl.Expr, dtype: pl.DataType, opts: TimeOptions, date_only: bool = False, day_zone: str | None = None
) -> pl.Expr | None:
    """``expr`` (of type ``dtype``) as the engine's time type (naive UTC, or Date), None when it cannot be one.

    Naive timestamps are wall-clock times of ``time_zone`` (default UTC). Numbers are read only with a
    declared ``time_unit``: the engine never guesses whether 1700000000 is seconds or microseconds. A text
    value with no time of day (``2026-03-29``) is a day of the calendar: its midnight in ``time_zone`` if the
    source declares one, else in ``day_zone`` (the spec's), so that it is counted on that day as a date
    column's value is, not on the day before west of UTC.
    """
    if dtype == pl.String:
        parsed = parse_text(expr, opts, date_only)
        if date_only or opts.date_only:
            return parsed
        utc = _to_utc(parsed, opts.zone)
        if opts.zone is None and day_zone not in (None, "UTC"):
            day = expr.str.strip_chars().str.contains(r"^\d{4}-\d{2}-\d{2}$")
            utc = pl.when(day).then(_to_utc(parsed, day_zone)).otherwise(utc)
        return _bounded(utc)
    if isinstance(dtype, pl.Date):
        return expr
    if isinstance(dtype, pl.Datetime):  # typed data is not bounded row by row: its span is checked instead
        if dtype.time_zone is not None:
            return expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None).dt.cast_time_unit("us")
        naive = _to_utc(expr, opts.zone)
        return naive if dtype.time_unit == "us" else naive.dt.cast_time_unit("us")
    if dtype.is_numeric() and opts.unit:
        return from_number(expr, opts.unit)
    if dtype.is_integer() and opts.formats:  # compact dates such as 20260401 read as integers
        return time_expr(expr.cast(pl.String), pl.String(), opts, date_only)
    return None


def needs_check(dtype: pl.DataType, opts: TimeOptions) -> bool:
    """Whether ``time_expr`` can turn a present value into null (text, numbers, local times in a DST gap)."""
    return not isinstance(dtype, pl.Date | pl.Datetime) or (
        isinstance(dtype, pl.Datetime) and dtype.time_zone is None and opts.zone not in (None, "UTC")
    )


def output_type(dtype: pl.DataType, opts: TimeOptions) -> pl.DataType:
    """The type ``time_expr`` gives a column of ``dtype``."""
    if isinstance(dtype, pl.Date) or opts.date_only:
        return pl.Date()
    return pl.Datetime("us")


def checked(raw: pl.Expr, parsed: pl.Expr, date_only: bool = False) -> pl.Expr:
    """``parsed``, failing the query when a non-null ``raw`` value was not read (lazily, at collect time).

    The error path then finds the row with ``first_unread``: a value must never silently become null.
    """
    bad = raw.is_not_null() & parsed.is_null()
    guard = pl.when(bad).then(pl.lit(UNREAD) + raw.cast(pl.String)).cast(pl.Int64, strict=True)
    return parsed.fill_null(guard.cast(pl.Date if date_only else pl.Datetime("us")))


UNREAD = "unread time value: "


def first_unread(
    frame: pl.DataFrame, column: str, opts: TimeOptions, date_only: bool = False
) -> tuple[int, Any] | None:
    """The first row (0-based) whose non-null ``column`` value is not read as a time, and that value."""
    expr = time_expr(pl.col(column), frame.schema[column], opts, date_only)
    values = frame.get_column(column)
    if expr is None:
        present = values.is_not_null().arg_true()
        return None if present.is_empty() else (int(present[0]), values[int(present[0])])
    bad = (values.is_not_null() & frame.select(expr).to_series().is_null()).arg_true()
    return None if bad.is_empty() else (int(bad[0]), values[int(bad[0])])


_DATE_PARTS = ("%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y", "%Y%m%d", "%Y/%m/%d")
_TIME_PARTS = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
CANDIDATE_FORMATS = tuple(d + t for d in _DATE_PARTS for t in _TIME_PARTS)


def formats_reading(values: Sequence[str]) -> dict[str, list[str]]:
    """For each value, the candidate strptime formats that read it (one vectorised parse per format); for
    hints and ``kpi inspect``, never to read data."""
    series = pl.Series(values, dtype=pl.String)
    table = pl.DataFrame(
        {
            f: pl.select(parse_text(pl.lit(series), TimeOptions((f,)))).to_series().is_not_null()
            for f in CANDIDATE_FORMATS
        }
    )
    return {v: [f for f, ok in row.items() if ok] for v, row in zip(values, table.iter_rows(named=True), strict=True)}


def guess_formats(values: Sequence[str]) -> list[str]:
    """Each candidate format that reads every one of ``values``, in the candidates' order."""
    fits = formats_reading(values)
    return [f for f in CANDIDATE_FORMATS if all(f in fits[v] for v in values)]


def describe_guess(values: Sequence[str]) -> str:
    """A hint for text no declared format reads: the formats that would, or why the choice is the user's."""
    fits = guess_formats(values)
    if not fits:
        return 'declare how to read it, e.g. time_format: "%d/%m/%Y %H:%M" (strptime codes; a list is tried in order)'
    day_first = [f for f in fits if f.startswith("%d")]
    month_first = [f for f in fits if f.startswith("%m")]
    if day_first and month_first:
        return (
            f"these values read both day-first and month-first, so the engine will not guess: declare "
            f'time_format: "{month_first[0]}" (month first, US) or time_format: "{day_first[0]}" (day first)'
        )
    return f'declare it: time_format: "{fits[0]}"'


def explain_unread(value: Any, opts: TimeOptions, sample: Sequence[str] = ()) -> tuple[str, str]:
    """Why a time value was not read, as (what follows "time ", hint), for every connector's error.

    ``sample``: more unread values of the column, so that the hint's format guess sees them all.
    """
    bounds = f"({MIN_DATE} to {MAX_DATE})"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if opts.unit:
            return f"{value} {opts.unit} since 1970 is outside the dates the engine reads {bounds}", (
                "check time_unit: s, ms, us or ns"
            )
        return f"{value} is a number", "declare the unit of Unix epoch times: time_unit: s (or ms, us, ns)"
    if isinstance(value, dt.datetime) and opts.zone:
        return f"{value} does not exist in {opts.zone} (the clocks skip it)", (
            "fix the value; local times inside a daylight-saving gap never happened"
        )
    text = str(value)
    if re.match(ISO_RE, text.strip()) and not opts.formats:
        return f"`{text}` is outside the dates the engine reads {bounds}", (
            "fix or drop the row: a placeholder such as 9999-12-31 is not a date to report on"
        )
    if opts.formats:
        shown = ", ".join(f'"{f}"' for f in opts.formats)
        return f"`{text}` matches no time_format ({shown})", (
            "add its format to the time_format list (formats are tried in order), or fix the row"
        )
    return f"`{text}` is not ISO 8601, and the source declares no time_format", describe_guess([*sample] or [text])
