"""Events on a KPI's chart (a campaign launch, a price change): the KPI over the same number of days before
and after each one, so a review can see what moved around it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from .api import Result
from .frame import totals
from .model import Event, KpiSpec, Project
from .periods import Span
from .units import format_change, format_value

EVENT_WINDOW_DAYS = 28


@dataclass
class EventComparison:
    label: str
    date: dt.date
    before: float | None
    after: float | None
    days: int
    text: str


def events_of(project: Project, kpi: KpiSpec) -> list[Event]:
    return sorted({*project.events, *kpi.events}, key=lambda e: e.date)


def event_spans(project: Project, kpis: Iterable[KpiSpec], as_of: dt.date) -> list[tuple[str, Span]]:
    """Before/after windows around each event: the same number of days on each side, up to as-of."""
    out = []
    for kpi in kpis:
        for event in events_of(project, kpi):
            if event.date > as_of:
                continue
            days = min(EVENT_WINDOW_DAYS, (as_of - event.date).days + 1)
            out += [
                (kpi.id, Span(event.date - dt.timedelta(days=days), event.date - dt.timedelta(days=1))),
                (kpi.id, Span(event.date, event.date + dt.timedelta(days=days - 1))),
            ]
    return out


def event_comparisons(project: Project, kpi: KpiSpec, result: Result) -> list[EventComparison]:
    out = []
    for event in events_of(project, kpi):
        if event.date > result.as_of:
            continue
        days = min(EVENT_WINDOW_DAYS, (result.as_of - event.date).days + 1)
        before_span = Span(event.date - dt.timedelta(days=days), event.date - dt.timedelta(days=1))
        after_span = Span(event.date, event.date + dt.timedelta(days=days - 1))
        before_rows = totals(result.spans.get((kpi.id, before_span)))
        after_rows = totals(result.spans.get((kpi.id, after_span)))
        if not before_rows.height or not after_rows.height:
            continue
        before, after = before_rows["value"][0], after_rows["value"][0]
        if before is None and after is None:
            continue
        change = format_change(after - before, kpi.shown) if before is not None and after is not None else "–"
        text = (
            f"{days} days before: {format_value(before, kpi.shown)}; {days} days after: "
            f"{format_value(after, kpi.shown)} ({change})"
        )
        out.append(EventComparison(event.label, event.date, before, after, days, text))
    return out
