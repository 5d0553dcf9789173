"""Reviews falling due: which KPIs, in which meeting, covering which period, compared with what.

A review covers the last complete period of its cadence before the review day. It is compared with the
previous review's period and with the same period a year earlier (weeks align on the ISO week number,
months and quarters on the calendar); when the covered period is still running at the as-of date, every
comparison period is cut to the same number of elapsed days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import cadence, periods
from .frame import total_row
from .model import NO_MEETING, Calendar, KpiSpec, Project
from .periods import Span


@dataclass(frozen=True)
class Comparison:
    """One comparison period and how the reviewed value moved against it."""

    label: str
    span: Span
    value: float | None
    change: float | None  # reviewed value minus this one
    change_pct: float | None
    significant: bool | None = None  # qualitative KPIs: False when the 95% intervals overlap
    coverage: float | None = None  # share of the comparison period's days inside the sources' data

    @property
    def warning(self) -> str | None:
        """Said with every comparison against a period its sources only partly cover (a false rise or drop)."""
        return partial_warning(self.coverage, self.span)


def partial_warning(coverage: float | None, span: Span) -> str | None:
    """``partial: data for 4 of 7 days``, when ``coverage`` of ``span`` is less than full."""
    if coverage is None or coverage >= 1.0:
        return None
    days = (span.end - span.start).days + 1
    return f"partial: data for {round(coverage * days)} of {days} days"


@dataclass(frozen=True)
class DueReview:
    kpi: KpiSpec
    day: dt.date
    span: Span  # what the review covers (cut to as-of when partial)
    partial: bool
    previous: Span | None
    year_ago: Span | None
    value: float | None = None
    comparisons: tuple[Comparison, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def meeting(self) -> str:
        return (self.kpi.review.meeting if self.kpi.review else None) or NO_MEETING

    @property
    def owner(self) -> str:
        return self.kpi.owner or "(no owner)"


def _cut(span: Span, days: int) -> Span:
    return Span(span.start, min(span.end, span.start + dt.timedelta(days=days - 1)))


def due_reviews(project: Project, as_of: dt.date, days: int = 1) -> list[DueReview]:
    """Reviews whose day falls in [as_of, as_of + days - 1], with the spans to compare."""
    cal: Calendar = project.calendar
    out = []
    last = as_of + dt.timedelta(days=days - 1)
    for kpi in project.kpis.values():
        review = kpi.review
        if review is None:
            continue
        for day in cadence.review_days(review, cal, as_of, last):
            start, end = cadence.covered_span(review, cal, day)
            full = Span(start, end)
            partial = end > as_of
            elapsed = (min(end, as_of) - start).days + 1
            if elapsed <= 0:
                continue
            covered = _cut(full, elapsed) if partial else full
            previous_day = cadence.previous_review(review, cal, day)
            previous = None
            if previous_day is not None:
                p_start, p_end = cadence.covered_span(review, cal, previous_day)
                previous = _cut(Span(p_start, p_end), elapsed) if partial else Span(p_start, p_end)
            ago = periods.year_earlier_span(full, cal)
            out.append(DueReview(kpi, day, covered, partial, previous, _cut(ago, elapsed) if partial else ago))
    return sorted(out, key=lambda r: (r.meeting, r.owner, r.day, r.kpi.id))


def span_requests(reviews: list[DueReview]) -> list[tuple[str, Span]]:
    out = []
    for r in reviews:
        out.append((r.kpi.id, r.span))
        out += [(r.kpi.id, s) for s in (r.previous, r.year_ago) if s is not None]
    return out


def with_values(
    reviews: list[DueReview],
    spans: dict[tuple[str, Span], pl.DataFrame],
    series: dict[str, pl.DataFrame],
    cal: Calendar,
) -> list[DueReview]:
    """Fill each review's value and comparisons.

    A span that is exactly one period of the KPI's grain is read from the series (so that previous() and
    everything else mean what they mean there); other spans are the KPI recomputed over the span.
    """

    def row_for(kpi: KpiSpec, span: Span) -> dict[str, Any] | None:
        if (
            periods.start_of(span.start, kpi.grain, cal) == span.start
            and periods.end_of(span.start, kpi.grain) == span.end
        ):
            frame = series.get(kpi.id)
            if frame is not None:
                return total_row(frame.filter(pl.col("start") == span.start))
        return total_row(spans.get((kpi.id, span)))

    filled = []
    for r in reviews:
        current = row_for(r.kpi, r.span)
        value = current["value"] if current and current["has_data"] else None
        comparisons = []
        for label, span in (("previous review", r.previous), ("a year earlier", r.year_ago)):
            if span is None:
                continue
            row = row_for(r.kpi, span)
            other = row["value"] if row and row["has_data"] else None
            if other is None:
                continue  # compare only where data exists
            change = value - other if value is not None else None
            pct = 100 * change / abs(other) if change is not None and other else None
            significant = None
            if current and row and "ci_low" in current and current["ci_low"] is not None and row["ci_low"] is not None:
                significant = current["ci_high"] < row["ci_low"] or row["ci_high"] < current["ci_low"]
            coverage = row.get("coverage") if row else None
            comparisons.append(Comparison(label, span, other, change, pct, significant, coverage))
        filled.append(DueReview(r.kpi, r.day, r.span, r.partial, r.previous, r.year_ago, value, tuple(comparisons)))
    return filled


def covered_periods(r: DueReview, cal: Calendar) -> list[str]:
    """Labels of the KPI's own periods inside the covered span."""
    return [
        periods.label(p, r.kpi.grain, cal)
        for p in periods.period_range(r.span.start, r.span.end, r.kpi.grain, cal)
        if p >= r.span.start and periods.end_of(p, r.kpi.grain) <= r.span.end
    ] or [str(r.span)]
