"""Planning: bound KPIs -> one explicit plan per run.

Per source the plan says which columns to read, which time window, which row filter may be pushed down,
and which (grain, dimensions) groups to aggregate with which aggregates, deduplicated across KPIs.
``execute.py`` runs the whole plan through polars (connectors see only a ``ScanRequest`` of columns and a
time window; running a source's part of the plan in its own database is the scale-out issue's to design).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import polars as pl

from . import periods
from .formula import BinOp, Column, Node, to_source, walk
from .ir import Agg, Ahead, BoundKpi, Conversions, MetricFunction, Seen, periods_ahead
from .model import Calendar, Grain, SourceSpec
from .nodes import find_all, transform
from .periods import Period, Span

MAX_PREFILTERS = 16
ROLLUPS = {"sum": "sum", "count": "sum", "min": "min", "max": "max"}
ZERO_WHEN_EMPTY = {"sum", "count", "count_distinct", "approx_count_distinct", "conversions"}


@dataclass(frozen=True)
class Window:
    """The run's time window: data up to the end of ``as_of`` (local), periods shown from ``start`` to ``end``."""

    as_of: dt.date
    start: dt.date | None = None
    end: dt.date | None = None

    @property
    def last_day(self) -> dt.date:
        return min(self.as_of, self.end) if self.end else self.as_of

    @property
    def after_as_of(self) -> dt.date:
        """The first day after as-of: data is read up to it, and a source's span counts rows before it."""
        return self.as_of + dt.timedelta(days=1)


@dataclass(frozen=True)
class AggRequest:
    id: str  # output column of the group, unique in the plan
    agg: Agg
    fill: float | None  # value of a period with data but no matching rows
    rollup: str | None  # how a total derives from per-dimension results; None: aggregate the rows again
    rows_id: str  # the group's count of rows matching this aggregate's filter


@dataclass
class GroupRequest:
    """One ``group_by(period, *dims)`` over a source, with every aggregate any KPI needs from it."""

    source: str
    grain: Period
    dims: tuple[str, ...]
    aggs: dict[str, AggRequest] = field(default_factory=dict)  # by Agg.key
    row_filters: dict[str, tuple[str, Node | None]] = field(default_factory=dict)  # filter text -> (id, filter)
    derive_from: tuple[Period, tuple[str, ...]] | None = None  # totals rolled up from this group's result

    @property
    def key(self) -> tuple[Period, tuple[str, ...]]:
        return self.grain, self.dims


@dataclass
class SourcePlan:
    """Everything read from one source in this run: one scan, shared by all its groups."""

    source: SourceSpec
    schema: pl.Schema
    columns: set[str] = field(default_factory=set)
    lower: dt.date | None = None  # first local day needed (None: from the earliest row)
    upper: dt.date | None = None  # first local day not needed (exclusive)
    groups: dict[tuple[Period, tuple[str, ...]], GroupRequest] = field(default_factory=dict)
    prefilter: tuple[Node, ...] = ()  # rows must pass one of these: set when every aggregate is filtered

    def narrowed(self, keys: Iterable[tuple[Period, tuple[str, ...]]], also: Iterable[str] = ()) -> SourcePlan:
        """This source's plan for only the scanned groups ``keys``, reading only the columns they need (the
        groups a database cannot aggregate, whose rows are read while it aggregates the others), and ``also``
        (the columns a conversion matches)."""
        groups = {k: self.groups[k] for k in keys}
        columns = {self.source.time, *also}
        for group in groups.values():
            columns.update(group.dims)
            for request in group.aggs.values():
                columns.update(columns_of(request.agg))
            for _, where in group.row_filters.values():
                if where is not None:
                    columns.update(c.column for c in find_all(where, Column))
        columns.update(c.column for f in self.prefilter for c in find_all(f, Column))
        return dataclasses.replace(self, groups=groups, columns=columns & self.columns)


@dataclass(frozen=True)
class KpiPlan:
    """One KPI's part of the plan: its aggregate-level expression and the periods to show."""

    kpi: BoundKpi
    expr: Node  # aggregate level; each Agg is a column of its source's group at this grain
    first: dt.date | None  # first period shown (None: from the earliest data)
    last: dt.date  # last period shown
    grain: Period  # the KPI's grain, or a Span when it is recomputed over a window
    column: int | None = None  # a cohort matrix's column (periods ahead), evaluated beside the KPI

    @property
    def id(self) -> str:
        return self.kpi.spec.id

    @property
    def ahead(self) -> int:
        """How many periods later the KPI looks (``active(k)``): a period is complete once that one is over."""
        return periods_ahead(self.expr)

    @property
    def measured(self) -> tuple[str, ...]:
        """The sources whose rows the KPI's values come from (a conversion's target is only matched, so its
        data span does not decide which periods have data)."""
        return tuple(sorted({a.source for a in aggregates_of(self.expr)}))

    @property
    def ahead_days(self) -> int:
        """How many days after a period its conversions may still come in (``conversions(a, b, 7 days)``)."""
        return max((a.within or 0 for a in find_all(self.expr, Conversions)), default=0)

    @property
    def key(self) -> str | tuple[str, Span] | tuple[str, int]:
        """How results are keyed: the KPI id, (id, span) for a window evaluation, (id, k) for a cohort column."""
        if self.column is not None:
            return (self.id, self.column)
        return (self.id, self.grain) if isinstance(self.grain, Span) else self.id


@dataclass
class Plan:
    calendar: Calendar
    window: Window
    sources: dict[str, SourcePlan]
    kpis: list[KpiPlan]
    functions: Mapping[str, MetricFunction] = field(default_factory=dict)
    lookups: Mapping[str, tuple[SourceSpec, pl.Schema]] = field(default_factory=dict)  # joined to sources

    def joined(self, source: SourceSpec) -> dict[str, str]:
        """The columns a source gets from its lookups: column -> lookup name."""
        out = {}
        for name in source.lookups:
            if name in self.lookups:
                spec, schema = self.lookups[name]
                out |= {c: name for c in schema if c != spec.key}
        return out

    def describe(self) -> str:
        """A readable dump of the plan (``kpi run --explain``)."""
        lines = [f"as of {self.window.as_of}"]
        for name, sp in self.sources.items():
            lines.append(
                f"source {name} ({sp.source.connector}): columns {sorted(sp.columns)}, "
                f"days [{sp.lower or '-inf'}, {sp.upper}), "
                f"prefilter: {' or '.join(to_source(f) for f in sp.prefilter) or '-'}"
            )
            joined = {c: n for c, n in self.joined(sp.source).items() if c in sp.columns}
            for lookup in dict.fromkeys(joined.values()):
                columns = sorted(c for c, n in joined.items() if n == lookup)
                lines.append(f"  joins lookup {lookup} on {self.lookups[lookup][0].key}: {columns}")
            for g in sp.groups.values():
                how = f"rolled up from {g.derive_from[0]} x {list(g.derive_from[1])}" if g.derive_from else "group_by"
                lines.append(f"  {g.grain} x {list(g.dims)}: {how}")
                for a in g.aggs.values():
                    lines.append(f"    {a.id} = {a.agg.key}")
        return "\n".join(lines)


def as_of_end(plan: Plan) -> dt.date:
    """The first day after the plan's as-of (``Window.after_as_of``)."""
    return plan.window.after_as_of


def decompose_means(node: Node) -> Node:
    """mean(x) -> sum(x) / count(x): ratios are recomputed from additive aggregates at every grain."""

    def split(n: Node) -> Node:
        if isinstance(n, Agg) and n.func == "mean" and n.per is None:
            return BinOp("/", dataclasses.replace(n, func="sum"), dataclasses.replace(n, func="count"), span=n.span)
        return n

    return transform(node, split)


def aggregates_of(node: Node) -> list[Agg]:
    """The aggregates of an aggregate-level expression, in source order (with repeats)."""
    return find_all(node, Agg, below=False)


def columns_of(agg: Agg) -> set[str]:
    """The columns an aggregate reads, in its arguments and its filter (and its entity key)."""
    same = set(agg.same) if isinstance(agg, Conversions) else set()
    return {n.column for n in find_all(agg, Column)} | ({agg.per} if agg.per is not None else set()) | same


def looks_ahead(agg: Agg) -> bool:
    """Whether an aggregate over entities asks about later periods (``active(k)``, k > 0)."""
    return periods_ahead(agg) > 0


def history_needed(agg: Agg, first: dt.date | None, upper: dt.date, window: Window) -> tuple[dt.date | None, dt.date]:
    """The days an aggregate reads: ``new`` and ``active(k)`` look at the entity's whole history up to as-of,
    so that a customer first seen before the window is not new, and one back after it is active."""
    if not find_all(agg, (Seen, Ahead)):
        return first, upper
    return None, window.after_as_of


def row_filter(agg: Agg) -> Node | None:
    """The rows an aggregate reads: its ``where``, except over entities, where ``where`` picks entities."""
    return agg.where if agg.per is None else None


def build_plan(
    kpis: Iterable[BoundKpi | tuple[BoundKpi, Span | int]],
    sources: Mapping[str, SourceSpec],
    schemas: Mapping[str, pl.Schema],
    calendar: Calendar,
    window: Window,
    functions: Mapping[str, MetricFunction],
    lookups: Mapping[str, tuple[SourceSpec, pl.Schema]] | None = None,
) -> Plan:
    """Plan a run: KPIs' aggregates are deduplicated and grouped per source, grain and dimensions."""
    plan = Plan(calendar, window, {}, [], functions, dict(lookups or {}))
    counter = iter(range(1_000_000_000))
    last = window.last_day
    for item in kpis:
        kpi, extra = item if isinstance(item, tuple) else (item, None)
        span = extra if isinstance(extra, Span) else None
        column = extra if isinstance(extra, int) else None
        spec = kpi.spec
        grain: Period = span or (periods.Trailing(spec.grain, spec.window) if spec.window else spec.grain)
        dims = spec.dimensions
        expr = decompose_means(kpi.expr)
        if span is not None:
            shown_first = lookback_first = span.start
            upper = span.end + dt.timedelta(days=1)
            last_shown = span.start
        else:
            shown_first = periods.start_of(window.start, grain, calendar) if window.start else None
            lookback_first = periods.shift(shown_first, grain, -kpi.lookback) if shown_first else None
            if isinstance(grain, periods.Trailing) and lookback_first is not None:
                lookback_first = periods.window_first(lookback_first, grain, calendar)  # the window's first day
            last_shown = periods.start_of(last, grain, calendar)
            upper = periods.shift(last_shown, grain, 1)
        upper = min(upper, window.after_as_of)
        for agg in aggregates_of(expr):
            first, until = history_needed(agg, lookback_first, upper, window)
            if agg.lag and first is not None:  # previous(x, 5 days): the first period's days moved back
                first -= dt.timedelta(days=agg.lag)
            sp = _source_plan(plan, sources[agg.source], schemas[agg.source], first, until)
            sp.columns.update(dims)
            sp.columns.update(columns_of(agg))
            if isinstance(agg, Conversions):  # the rows it matches: from the same day, up to as-of
                for name, key in agg.matched:
                    matched = _source_plan(plan, sources[name], schemas[name], first, window.after_as_of)
                    matched.columns.update((key, *agg.same))
            for group_dims in dict.fromkeys((dims, ())):  # (a set would order them by hash: ids would vary)
                group = sp.groups.setdefault((grain, group_dims), GroupRequest(agg.source, grain, group_dims))
                if agg.key not in group.aggs:
                    group.aggs[agg.key] = _request(agg, group, counter, functions)
        plan.kpis.append(KpiPlan(kpi, expr, shown_first, last_shown, grain, column))
    for sp in plan.sources.values():
        _plan_rollups(sp)
        _plan_grains(sp)
        _plan_prefilter(sp)
    return plan


def _source_plan(
    plan: Plan, source: SourceSpec, schema: pl.Schema, first: dt.date | None, until: dt.date
) -> SourcePlan:
    """The source's part of the plan, its days widened to ``[first, until)`` (None: from the first row)."""
    sp = plan.sources.get(source.name)
    if sp is None:
        sp = plan.sources[source.name] = SourcePlan(source, schema, {source.time}, first, until)
    else:
        if sp.lower is not None:
            sp.lower = None if first is None else min(sp.lower, first)
        sp.upper = max(sp.upper or until, until)
    return sp


def _request(
    agg: Agg, group: GroupRequest, counter: Iterator[int], functions: Mapping[str, MetricFunction]
) -> AggRequest:
    """A new aggregate of ``group``: its output column, value when no row matches, and how its totals roll up."""
    where = row_filter(agg)
    filter_key = to_source(where) if where is not None else ""
    if filter_key not in group.row_filters:
        group.row_filters[filter_key] = (f"n{next(counter)}", where)
    fill = (
        0  # an int keeps integer sums integers (a float fill would upcast them)
        if agg.func in ZERO_WHEN_EMPTY and not looks_ahead(agg)  # ahead: unknown until then
        else (functions[agg.func].fill if agg.func in functions else None)
    )
    # entities never add up; a conversion is counted once, in its matched row's period and values: it does
    # (moved rows, previous(x, 5 days), are aggregated apart: never from another group's totals)
    rollup = (
        "sum" if isinstance(agg, Conversions) else None if agg.per is not None or agg.lag else ROLLUPS.get(agg.func)
    )
    return AggRequest(f"a{next(counter)}", agg, fill, rollup, group.row_filters[filter_key][0])


def _plan_rollups(sp: SourcePlan) -> None:
    """A total group whose aggregates all roll up (sums, counts, min, max) is derived from a per-dimension
    group of the same grain instead of aggregating the rows a second time; missing aggregates are added to
    that group, which costs one more column in a group_by that runs anyway."""
    for (grain, dims), group in sp.groups.items():
        if dims or not all(r.rollup for r in group.aggs.values()):
            continue
        finer = next((g for (g2, d2), g in sp.groups.items() if g2 == grain and d2), None)
        if finer is not None:
            _derive(sp, group, finer)


def _plan_grains(sp: SourcePlan) -> None:
    """Coarser grains from one daily group: when two or more groups with the same dimensions (or one next to
    a daily group that runs anyway) hold only aggregates that roll up, one ``group_by(day, *dims)`` over the
    rows replaces them, and weeks, months or spans are summed from its few rows. Never for count-distinct,
    medians or plugin functions: those do not roll up. A windowed grain (28 days, month to date) always sums
    daily rows when it can: a day counts in many of its periods, and a daily row is far cheaper to repeat."""
    by_dims: dict[tuple[str, ...], list[GroupRequest]] = {}
    for group in sp.groups.values():
        additive = all(r.rollup for r in group.aggs.values())
        windowed = isinstance(group.grain, periods.Trailing)
        if (group.dims or windowed) and group.derive_from is None and group.grain is not Grain.DAY and additive:
            by_dims.setdefault(group.dims, []).append(group)
    for dims, groups in by_dims.items():
        day = sp.groups.get((Grain.DAY, dims))
        if day is None and len(groups) < 2 and not isinstance(groups[0].grain, periods.Trailing):
            continue
        if day is None:
            day = sp.groups[(Grain.DAY, dims)] = GroupRequest(sp.source.name, Grain.DAY, dims)
        for group in groups:
            _derive(sp, group, day)


def _derive(sp: SourcePlan, group: GroupRequest, finer: GroupRequest) -> None:
    """Derive ``group`` from ``finer``: add its aggregates to ``finer`` and share their columns."""
    for key, request in group.aggs.items():
        if key not in finer.aggs:
            filter_key = to_source(request.agg.where) if request.agg.where is not None else ""
            if filter_key not in finer.row_filters:
                finer.row_filters[filter_key] = group.row_filters[filter_key]
            finer.aggs[key] = dataclasses.replace(request, rows_id=finer.row_filters[filter_key][0])
    if finer.derive_from is not None:  # finer is rolled up itself: what it now holds must come from below it
        _derive(sp, finer, sp.groups[finer.derive_from])
    group.derive_from = finer.key
    _share_columns(group, finer)
    for other in sp.groups.values():  # groups already derived from this one now use finer's columns
        if other.derive_from == group.key:
            _share_columns(other, group)


def _share_columns(group: GroupRequest, finer: GroupRequest) -> None:
    """Point ``group``'s aggregates and row counts at the columns ``finer`` computes for them."""
    group.aggs = {k: finer.aggs[k] for k in group.aggs}
    wanted = {a.rows_id for a in group.aggs.values()}
    group.row_filters = {k: v for k, v in finer.row_filters.items() if v[0] in wanted}


def _plan_prefilter(sp: SourcePlan) -> None:
    filters = []
    for group in sp.groups.values():
        for request in group.aggs.values():
            where = row_filter(request.agg)
            if where is None:
                return
            filters.append(where)
    unique = list({to_source(f): f for f in filters}.values())
    if not unique or len(unique) > MAX_PREFILTERS:
        return  # many distinct filters rarely exclude rows, and testing each one costs more than it saves
    sp.prefilter = tuple(unique)
    sp.columns.update(n.column for f in unique for n in walk(f) if isinstance(n, Column))
