"""The period still running at the review, to date: its value so far against the same elapsed days of the
previous period and of the same period a year earlier (a review on 23 February compares 1-23 February with
1-23 January, never with all of January)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from . import periods
from .frame import total_row
from .model import Calendar, Grain, KpiSpec
from .periods import Span
from .units import format_date, format_move, formatter


def spans_of(kpi: KpiSpec, as_of: dt.date, cal: Calendar) -> tuple[Span, Span, Span] | None:
    """(the running period to as-of, the previous period's same days, a year earlier's same days), or None
    when as-of is a period's last day, the grain is a day, or the KPI's value is not one period's."""
    if kpi.grain is Grain.DAY or kpi.window is not None or kpi.cohort:
        return None
    start = periods.start_of(as_of, kpi.grain, cal)
    end = periods.end_of(start, kpi.grain)
    if end <= as_of:
        return None
    days = dt.timedelta(days=(as_of - start).days)
    previous = periods.shift(start, kpi.grain, -1)
    year = periods.year_earlier_span(Span(start, end), cal).start
    same = [Span(s, min(s + days, periods.end_of(s, kpi.grain))) for s in (previous, year)]
    return Span(start, as_of), same[0], same[1]


def span_requests(
    kpis: Iterable[KpiSpec], as_of: dt.date, cal: Calendar, lookback: Mapping[str, int]
) -> list[tuple[str, Span]]:
    """The spans a report asks for so that each running period can be shown to date (same scans)."""
    out = []
    for kpi in kpis:
        found = spans_of(kpi, as_of, cal) if not lookback.get(kpi.id) else None
        out += [(kpi.id, s) for s in found or ()]
    return out


def line(result: Any, kpi: KpiSpec) -> str | None:
    """``June to date (1 to 23 Jun 2026, 23 days): 2,481.00; -3.1% vs 1 to 23 May 2026, +12.0% vs ...``."""
    found = spans_of(kpi, result.as_of, result.project.calendar)
    if found is None:
        return None
    values = []
    for span in found:
        row = total_row(result.spans.get((kpi.id, span)))
        values.append(row["value"] if row and row["has_data"] else None)
    now, *others = values
    if now is None:
        return None
    current, *before = found
    fmt = formatter(values, kpi.shown)
    days = (current.end - current.start).days + 1
    label = periods.label(current.start, kpi.grain, result.project.calendar)
    text = f"{label} to date ({_dates(current)}, {days} day{'s' if days > 1 else ''}): {fmt(now)}"
    moves = [
        f"{format_move(now, other, kpi.shown)} vs {_dates(span)} ({fmt(other)})"
        for span, other in zip(before, others, strict=True)
        if other is not None
    ]
    return text + ("; " + ", ".join(moves) if moves else "")


def _dates(span: Span) -> str:
    """``23 Feb 2026``, ``1 to 23 Feb 2026`` or ``28 Feb to 2 Mar 2026``."""
    start, end = span.start, span.end
    if start == end:
        return format_date(start)
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day} to {format_date(end)}"
    return (
        f"{start.day} {start.strftime('%b')} to {format_date(end)}"
        if start.year == end.year
        else f"{format_date(start)} to {format_date(end)}"
    )
