"""One query per group of the plan: the source's shared frame keyed by period, then each group's
``group_by(period, *dims)`` with its aggregates, its aggregates over entities and its conversions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from . import periods
from .compile import DATE, agg_expr, edge_columns, entity_query, row_expr
from .funnels import conversion_query, packing
from .ir import Agg, Conversions, MetricFunction
from .lifetimes import History
from .plan import AggRequest, GroupRequest, Plan, SourcePlan, as_of_end

PERIOD = "__period"  # a group's period start
STATS = ("__first", "__last", "__rows")  # the data's span, when it rides along in a group


def period_column(grain: periods.Period) -> str:
    """The shared frame's column holding each row's period start at ``grain``."""
    if isinstance(grain, periods.Span):
        return f"__period_{grain.start}_{grain.end}"
    return f"__period_{grain}"


def keyed_frame(lf: pl.LazyFrame, sp: SourcePlan, groups: list[GroupRequest], plan: Plan) -> pl.LazyFrame:
    """The one frame all of a source's groups read: rows passing the prefilter, with a period column per grain.

    Every grain's period is computed here once, not in each group's query.
    """
    if sp.prefilter:
        lf = lf.filter(pl.any_horizontal([row_expr(f).fill_null(False) for f in sp.prefilter]))
    grains = dict.fromkeys(g.grain for g in groups if not isinstance(g.grain, periods.Trailing))
    return lf.with_columns(
        periods.period_start(pl.col(DATE), grain, plan.calendar).alias(period_column(grain)) for grain in grains
    )


def group_frame(
    lf: pl.LazyFrame,
    group: GroupRequest,
    sp: SourcePlan,
    plan: Plan,
    functions: Mapping[str, MetricFunction],
    stats: bool = False,
    frames: Mapping[str, pl.LazyFrame] | None = None,
    since: dt.date | None = None,
    first: Mapping[str, pl.LazyFrame] | None = None,
) -> pl.LazyFrame:
    """One ``group_by(period, *dims)`` with all of the group's aggregates; ``stats`` adds the data's span.
    ``since``: only the periods from this one are wanted (an incremental run), so history is read from there;
    ``first``: each entity's first row as kept by that run (``lifetimes.first_seen``), by entity column.

    ``lf`` is the source's shared frame (``keyed_frame``): every group of a source starts from the very same
    lazy frame, so that polars caches it and reads the source once for all of them. ``frames`` are every
    source's shared frames, which conversions match against.
    """
    if isinstance(group.grain, periods.Trailing):  # a row counts in every period whose window holds its day
        keyed = lf.join(windows_of(lf.select(DATE).unique(), DATE, group.grain, plan), on=DATE)
    else:
        keyed = lf.rename({period_column(group.grain): PERIOD})
    if isinstance(group.grain, periods.Span):
        keyed = keyed.filter(pl.col(PERIOD).is_not_null())
    elif since is not None:
        keyed = keyed.filter(pl.col(PERIOD) >= since)
    counts = [
        (row_expr(f).fill_null(False).sum() if f is not None else pl.len()).cast(pl.Int64).alias(i)
        for i, f in group.row_filters.values()
    ]
    if stats:
        counts += [pl.col(DATE).min().alias(STATS[0]), pl.col(DATE).max().alias(STATS[1]), pl.len().alias(STATS[2])]
    keys = [PERIOD, *group.dims]
    history = History(
        lf,
        DATE,
        sp.source.time,
        lambda date: periods.period_start(date, group.grain, plan.calendar),
        lambda start, n: periods.shift_expr(start, group.grain, n),
        as_of_end(plan),
        since if not isinstance(group.grain, periods.Span) else None,
        first,
    )
    requests = [r for r in group.aggs.values() if not isinstance(r.agg, Conversions)]
    frame = _measure(keyed, keys, [r for r in requests if not r.agg.lag], sp, functions, history, counts)
    for lag in sorted({r.agg.lag for r in requests if r.agg.lag}):  # previous(x, 5 days): the rows moved on
        moved = lf.with_columns(
            periods.period_start(pl.col(DATE) + pl.duration(days=lag), group.grain, plan.calendar).alias(PERIOD)
        ).filter(pl.col(PERIOD).is_not_null())
        part = _measure(moved, keys, [r for r in requests if r.agg.lag == lag], sp, functions, history, [])
        frame = frame.join(part, on=keys, how="full", coalesce=True, nulls_equal=True)
    for r in group.aggs.values():
        agg = r.agg
        if isinstance(agg, Conversions) and frames is not None and all(s in frames for s, _ in agg.matched):
            # matched against every row of the base source, not only this group's periods: a conversion
            # belongs to the latest earlier row, even one in a period not shown
            base = lf.rename({period_column(group.grain): PERIOD})  # (no conversions with windows: see binding)
            steps = [(frames[s], plan.sources[s].source.time) for s, _ in agg.matched]
            if since is not None:  # matched rows from the first period wanted on (see increment.reads_from)
                base = base.filter(pl.col(PERIOD) >= since)
                steps = [(f.filter(pl.col(DATE) >= since), t) for f, t in steps]
            dtypes = [sp.schema[agg.per], *(plan.sources[s].schema[k] for s, k in agg.matched)]
            packed = packing(dtypes, agg)
            found = conversion_query(base, keys, agg, sp.source.time, steps, packed).rename({"__n": r.id})
            frame = frame.join(found, on=keys, how="left", nulls_equal=True)
    return frame


def plain(grain: periods.Period) -> bool:
    """A grain whose groups see each row once, so that they can count the source's rows on the way."""
    return not isinstance(grain, periods.Span | periods.Trailing)


def windows_of(days: pl.LazyFrame, day: str, grain: periods.Trailing, plan: Plan) -> pl.LazyFrame:
    """Each day of ``days`` with the start of every period (up to the last one shown) whose window holds it."""
    last = periods.start_of(plan.window.last_day, grain, plan.calendar)
    return periods.covering(days, day, grain, plan.calendar, last, PERIOD)


def _measure(
    keyed: pl.LazyFrame,
    keys: list[str],
    requests: list[AggRequest],
    sp: SourcePlan,
    functions: Mapping[str, MetricFunction],
    history: History,
    counts: list[pl.Expr],
) -> pl.LazyFrame:
    """One ``group_by(keys)`` of ``keyed`` with the row-level aggregates of ``requests`` and ``counts``, joined
    with their aggregates over entities (each entity query reads the same cached frame)."""
    aggs = [agg_expr(r.agg, sp.schema, functions, sp.source.time).alias(r.id) for r in requests if r.agg.per is None]
    edges = edge_columns([r.agg for r in requests if r.agg.per is None], [PERIOD])
    frame = (keyed.with_columns(edges) if edges else keyed).group_by(keys).agg(*aggs, *counts)
    by_entity: dict[str, dict[str, Agg]] = {}
    for r in requests:
        if r.agg.per is not None:
            by_entity.setdefault(r.agg.per, {})[r.id] = r.agg
    for per, over in by_entity.items():
        entities = entity_query(keyed, keys, per, over, sp.schema, functions, history)
        frame = frame.join(entities, on=keys, how="left", nulls_equal=True)
    return frame
