"""The review report's content model: plain data (sections, rows, statuses with their why, chart data)
built once, then rendered by any format's templates, so that every format shows the same thing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from . import cadence, moved, periods, todate
from .api import Catalog, Result
from .breakdowns import Breakdown, breakdowns
from .events import EventComparison, event_comparisons, events_of
from .frame import totals
from .model import Event, Grain, KpiSpec, Project, Unit
from .output import cohort_json
from .periods import Span
from .review import partial_warning
from .targets import Assessment, target_text, target_value
from .units import Shown, format_date, format_move, formatter

STATUS_LABELS = {
    "achieved": "Achieved",
    "on_track": "On track",
    "at_risk": "At risk",
    "off_track": "Off track",
    "no_data": "No data",
    "not_started": "Not started",
    "missed": "Missed",
    None: "No target",
}
ATTENTION = ("missed", "off_track", "no_data", "at_risk")  # most severe first
HISTORY_PERIODS = {Grain.DAY: 60, Grain.WEEK: 26, Grain.MONTH: 18, Grain.QUARTER: 8, Grain.YEAR: 6}


@dataclass
class Chart:
    """A KPI's series with its target, pace line, forecast and events, ready for a plotting library."""

    title: str
    unit: Shown
    x: list[dt.date]
    y: list[float | None]
    target: list[tuple[dt.date, float]] = field(default_factory=list)
    pace: list[tuple[dt.date, float]] = field(default_factory=list)
    forecast: list[tuple[dt.date, float]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    partial: list[bool] = field(default_factory=list)  # periods only partly inside the sources' data


@dataclass
class CohortTable:
    """A cohort matrix for the report: a row per cohort period, a cell per period ahead, shaded by value."""

    offsets: list[int]
    rows: list[dict[str, Any]]  # period, cells: [{text, style}]


@dataclass
class KpiSection:
    id: str
    name: str
    description: str | None
    owner: str | None
    stakeholders: tuple[str, ...]
    unit: Unit
    shown: Shown  # what values are written in: the unit, or its money
    grain: str
    formula: str
    key: bool
    objective: str | None
    status: str | None
    status_label: str
    why: str
    period: str | None
    value: float | None
    value_text: str
    change_previous: str
    change_year: str
    target_text: str
    expected_text: str
    forecast_text: str
    sparkline: list[float | None]
    chart: Chart
    breakdowns: list[Breakdown] = field(default_factory=list)
    smart_score: int | None = None
    smart_findings: list[str] = field(default_factory=list)
    qualitative: str | None = None
    changes: list[str] = field(default_factory=list)
    events: list[EventComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cohort: CohortTable | None = None
    moved: list[str] = field(default_factory=list)  # why it moved, per comparison and dimension
    to_date: str | None = None  # the period still running, against the same days of earlier ones

    @property
    def unit_text(self) -> str:
        """The unit as shown beside the formula: its currency's code (GBP) for money."""
        return getattr(self.shown, "code", None) or self.unit.value

    @property
    def needs_attention(self) -> bool:
        return self.status in ATTENTION


@dataclass
class Report:
    title: str
    meeting: str | None
    as_of: dt.date
    period: str
    next_review: dt.date | None
    freshness: list[dict[str, Any]]
    kpis: list[KpiSection]
    engine_version: str
    spec_hash: str
    generated_at: str
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def attention(self) -> list[KpiSection]:
        return [k for k in self.kpis if k.needs_attention]

    @property
    def others(self) -> list[KpiSection]:
        return [k for k in self.kpis if not k.needs_attention]


def select(
    project: Project, meeting: str | None = None, review_cadence: str | None = None, owner: str | None = None
) -> list[KpiSpec]:
    """The KPIs a report covers: those of a meeting, a cadence or an owner (all when none is given)."""
    out = []
    for kpi in project.kpis.values():
        if meeting and (kpi.review is None or kpi.review.meeting != meeting):
            continue
        if review_cadence and (kpi.review is None or kpi.review.cadence != review_cadence):
            continue
        if owner and kpi.owner != owner:
            continue
        out.append(kpi)
    return out


def build(
    catalog: Catalog,
    result: Result,
    assessments: Mapping[str, list[Assessment]],
    kpis: list[KpiSpec],
    *,
    meeting: str | None = None,
    smart: Mapping[str, Any] | None = None,
    history_path: Path | None = None,
    notes: Mapping[str, list[str]] | None = None,
    engine_version: str = "",
) -> Report:
    """Assemble the report's content from an evaluated result."""
    project, as_of = catalog.project, result.as_of
    kpis = [k for k in kpis if k.id in result.series]  # a failed plugin's KPIs are listed under errors
    sections = [
        _section(
            project,
            result,
            kpi,
            assessments.get(kpi.id),
            (smart or {}).get(kpi.id),
            history_path,
            list((notes or {}).get(kpi.id, ())) + list(kpi.notes),
        )
        for kpi in kpis
    ]
    order = {s: i for i, s in enumerate(ATTENTION)}
    sections.sort(key=lambda s: (order.get(s.status, len(order)), not s.key))
    reviews = [k.review for k in kpis if k.review]
    next_days = [
        d
        for r in reviews
        for d in cadence.review_days(r, project.calendar, as_of + dt.timedelta(days=1), as_of + dt.timedelta(days=120))[
            :1
        ]
    ]
    if reviews:
        spans = {cadence.covered_span(r, project.calendar, as_of + dt.timedelta(days=1)) for r in reviews}
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        period = f"{format_date(start)} to {format_date(end)}"
    else:
        period = f"the latest complete periods to {format_date(as_of)}"
    sources = sorted({s for k in kpis for s in catalog.bound[k.id].sources})
    freshness = [
        {
            "source": s,
            "last": result.freshness.get(s),
            "stale": (result.freshness.get(s) or dt.date.min) < as_of - dt.timedelta(days=2),
        }
        for s in sources
    ]
    counts: dict[str, int] = {}
    for s in sections:
        counts[s.status_label] = counts.get(s.status_label, 0) + 1
    title = f"{meeting or 'KPI review'}: {format_date(as_of)}"
    return Report(
        title,
        meeting,
        as_of,
        period,
        min(next_days) if next_days else None,
        freshness,
        sections,
        engine_version,
        project.spec_hash,
        dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        counts,
        result.errors(),
    )


def _change_text(value: float, other: tuple[float | None, float, Span], unit: Shown) -> str:
    """The change against another period, flagged when that period's data is partial."""
    before, coverage, span = other
    if before is None:
        return "–"
    warning = partial_warning(coverage, span)
    return format_move(value, before, unit) + (f" ({warning})" if warning else "")


def _section(
    project: Project,
    result: Result,
    kpi: KpiSpec,
    assessed: list[Assessment] | None,
    smart: Mapping[str, Any] | None,
    history_path: Path | None,
    notes: list[str],
) -> KpiSection:
    unit, grain, as_of = kpi.shown, kpi.grain, result.as_of
    frame = result.series[kpi.id]
    total_rows = totals(frame)
    done = total_rows.filter(pl.col("complete"))
    a = assessed[0] if assessed else None
    if a is not None and a.period_start is not None and kpi.target and kpi.target.measure == "latest":
        row = total_rows.filter(pl.col("start") == a.period_start)
    else:
        row = done.tail(1)
    current = row.row(0, named=True) if row.height else None
    value = current["value"] if current else None
    if a is not None and a.value is not None:
        value = a.value
    # the scorecard's value, target and expected now print with the digits it takes to tell them apart
    t = kpi.target
    fmt = formatter(
        [value, a.expected if a else None], unit, [a.target if a else None, *((t.tolerance, t.min, t.max) if t else ())]
    )

    def value_at(start: dt.date) -> tuple[float | None, float, Span]:
        """A period's value, its coverage and its days (comparisons with a partly covered period say so)."""
        hit = total_rows.filter(pl.col("start") == start)
        span = Span(start, periods.end_of(start, grain))
        return (hit["value"][0], hit["coverage"][0], span) if hit.height else (None, 1.0, span)

    change_prev = change_year = "–"
    window = kpi.target is not None and kpi.target.measure == "window"  # the value is not one period's
    if current is not None and current["value"] is not None and not window:
        prev = value_at(periods.shift(current["start"], grain, -1))
        this = Span(current["start"], periods.end_of(current["start"], grain))
        year = value_at(periods.year_earlier_span(this, project.calendar).start)
        change_prev = _change_text(current["value"], prev, unit)
        change_year = _change_text(current["value"], year, unit)
    history = done.tail(HISTORY_PERIODS[grain])  # complete periods only: a partial one would read as a drop
    section = KpiSection(
        id=kpi.id,
        name=kpi.name,
        description=kpi.description,
        owner=kpi.owner,
        stakeholders=kpi.stakeholders,
        unit=kpi.unit,
        shown=unit,
        grain=grain.value,
        formula=" ".join(kpi.formula.split()),
        key=kpi.key,
        objective=kpi.target.objective if kpi.target else None,
        status=a.status if a else None,
        status_label=STATUS_LABELS[a.status if a else None],
        why=a.why if a else "no target set",
        period=(a.period if a else None) or (current["period"] if current else None),
        value=value,
        value_text=fmt(value),
        change_previous=change_prev,
        change_year=change_year,
        target_text=target_text(kpi.target, a.target if a else None, fmt),
        expected_text=fmt(a.expected) if a and a.expected is not None else "–",
        forecast_text=fmt(a.forecast.value) if a and a.forecast and a.forecast.value is not None else "–",
        sparkline=history["value"].to_list(),
        chart=_chart(project, kpi, history, a),
    )
    section.breakdowns = breakdowns(result, kpi, current)
    _details(section, result, kpi, smart, current, fmt)
    section.events = [
        e for e in event_comparisons(project, kpi, result) if section.chart.x and section.chart.x[0] <= e.date
    ]
    section.changes = _changes(history_path, kpi.id, a, as_of)
    section.moved = moved.texts(result, kpi, current["start"] if current and not window else None)
    section.to_date = todate.line(result, kpi)
    section.notes = notes
    return section


def _details(
    section: KpiSection,
    result: Result,
    kpi: KpiSpec,
    smart: Mapping[str, Any] | None,
    current: dict[str, Any] | None,
    fmt: Any,
) -> None:
    """The section's optional parts: its cohort matrix, SMART findings and survey sample."""
    section.cohort = _cohort_table(result, kpi) if kpi.id in result.cohorts else None
    if smart:
        section.smart_score, section.smart_findings = (
            smart["score"],
            [f"{f['letter']}: {f['message']}" for f in smart["findings"]],
        )
    if current and "sample_size" in current and current["sample_size"] is not None:
        section.qualitative = (
            f"n = {current['sample_size']:,}; 95% interval {fmt(current['ci_low'])} to "
            f"{fmt(current['ci_high'])} (Wilson)"
        )


def _chart(project: Project, kpi: KpiSpec, history: pl.DataFrame, a: Assessment | None) -> Chart:
    x, y = history["start"].to_list(), history["value"].to_list()
    chart = Chart(kpi.name, kpi.shown, x, y, partial=[c < 1 for c in history["coverage"].to_list()])
    t = kpi.target
    if x:
        chart.events = [
            e for e in events_of(project, kpi) if x[0] <= e.date <= (t.deadline if t and t.deadline else x[-1])
        ]
    if t is None or a is None or not x:
        return chart
    baseline = a.baseline
    first = max(x[0], t.start) if t.start else x[0]
    last = t.deadline or x[-1]
    days = [first + dt.timedelta(days=i) for i in range(0, (last - first).days + 1, 7)] + [last]
    if t.direction in ("increase", "decrease", "maintain"):
        chart.target = [(d, v) for d in days if (v := target_value(t, d, baseline)) is not None]
    if (
        t.direction in ("increase", "decrease")
        and t.start
        and t.deadline
        and baseline is not None
        and t.pace == "linear"
    ):
        points = [(t.start, baseline), *t.path, (t.deadline, target_value(t, t.deadline, baseline))]
        chart.pace = [(d, v) for d, v in points if v is not None]
    if t.direction == "range":
        chart.target = [(days[0], t.min), (days[-1], t.min), (days[-1], t.max), (days[0], t.max)]  # type: ignore[list-item]
    if a.forecast and a.forecast.value is not None and t.deadline and y and y[-1] is not None and t.measure == "latest":
        chart.forecast = [(x[-1], y[-1]), (periods.start_of(t.deadline, kpi.grain, project.calendar), a.forecast.value)]
    return chart


def _cohort_table(result: Result, kpi: KpiSpec, shown: int = 12) -> CohortTable:
    """The latest ``shown`` cohorts of the KPI's matrix, each cell shaded by its share of the largest value."""
    matrix = cohort_json(result, kpi.id)
    rows = matrix["rows"][-shown:]
    present = [v for r in rows for v in r["values"] if v is not None]
    top = max((abs(v) for v in present), default=0) or 1
    fmt = formatter(present, kpi.shown)
    table = [
        {
            "period": r["period"],
            "cells": [
                {
                    "text": fmt(v) if v is not None else "–",
                    "style": f"background: rgba(37, 99, 235, {abs(v) / top * 0.6:.2f})" if v is not None else "",
                }
                for v in r["values"]
            ],
        }
        for r in rows
    ]
    return CohortTable(matrix["periods_ahead"], table)


def _changes(history_path: Path | None, kpi_id: str, a: Assessment | None, as_of: dt.date) -> list[str]:
    """What changed since the last recorded review before this one."""
    if history_path is None or not history_path.exists():
        return []
    from . import history

    earlier = [s for s in history.snapshots(history_path, kpi_id) if s.as_of < as_of.isoformat()]
    if not earlier:
        return []
    last = earlier[-1]
    out = [f"last recorded review: as of {last.as_of} ({last.period or '-'})"]
    if a is not None:
        if last.value is not None and a.value is not None:
            out.append(f"value {last.value:.4g} -> {a.value:.4g}")
        if last.status != a.status:
            out.append(f"status {STATUS_LABELS.get(last.status, last.status)} -> {STATUS_LABELS[a.status]}")
        if last.target is not None and a.target is not None and last.target != a.target:
            why = f" ({a.revision.reason})" if a.revision and a.revision.reason else ""
            out.append(f"target revised {last.target:g} -> {a.target:g}{why}")
    return out
