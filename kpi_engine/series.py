"""Combine per-source aggregates into KPI series: dense period grid, formulas, previous(), totals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from . import periods
from .compile import kpi_expr
from .execute import PERIOD, SourceData
from .ir import Agg
from .plan import KpiPlan, Plan, aggregates_of

SERIES_COLUMNS = ("period", "start", "end", "complete", "has_data", "is_total")


def kpi_series(kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData]) -> pl.DataFrame:
    """One KPI's series: a row per period and dimension value, plus a total row per period.

    Columns: period, start, end, complete, has_data, is_total, the dimension columns, value.
    """
    spec = kp.kpi.spec
    grain, dims, cal = spec.grain, spec.dimensions, plan.calendar
    sources = kp.kpi.sources
    firsts = [data[s].first for s in sources if data[s].first is not None]
    if kp.first is not None:
        first = kp.first
    elif firsts:
        first = periods.start_of(min(firsts), grain, cal)
    else:
        first = kp.last
    first = min(first, kp.last)
    needed_first = periods.shift(first, grain, -kp.kpi.lookback) if kp.first is not None else first
    grid_periods = periods.period_range(needed_first, kp.last, grain, cal)
    parts = [_evaluate(kp, plan, data, grid_periods, dims)]
    if dims:
        parts.append(_evaluate(kp, plan, data, grid_periods, ()))
    frame = pl.concat(parts, how="diagonal_relaxed")
    frame = frame.filter(pl.col(PERIOD) >= first)
    next_start = [periods.shift(p, grain, 1) for p in grid_periods]
    ends = pl.DataFrame(
        {
            PERIOD: grid_periods,
            "end": [n - dt.timedelta(days=1) for n in next_start],
            "period": [periods.label(p, grain, cal) for p in grid_periods],
            "complete": [n <= plan.window.as_of + dt.timedelta(days=1) for n in next_start],
        },
        schema={PERIOD: pl.Date, "end": pl.Date, "period": pl.String, "complete": pl.Boolean},
    )
    frame = frame.join(ends, on=PERIOD, how="left").rename({PERIOD: "start"})
    dim_cols = [pl.col(d) for d in dims]
    out = frame.select(
        "period", "start", "end", "complete", "has_data", "is_total", *dim_cols, pl.col("value").cast(pl.Float64)
    )
    return out.sort(["start", "is_total", *dims], nulls_last=True)


def _evaluate(
    kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData], grid_periods: list[dt.date], dims: tuple[str, ...]
) -> pl.DataFrame:
    spec = kp.kpi.spec
    grain = spec.grain
    aggs = aggregates_of(kp.expr)
    by_source: dict[str, list[Agg]] = {}
    for agg in aggs:
        by_source.setdefault(agg.source, []).append(agg)
    period_frame = pl.DataFrame({PERIOD: grid_periods}, schema={PERIOD: pl.Date})
    # dimension values: those with at least one row counted by this KPI's aggregates
    if dims:
        values = []
        for source, source_aggs in by_source.items():
            group = plan.sources[source].groups[(grain, dims)]
            frame = data[source].groups[(grain, dims)]
            ids = sorted({group.aggs[a.key].rows_id for a in source_aggs})
            active = frame.filter(pl.any_horizontal([pl.col(i) > 0 for i in ids]))
            values.append(active.select(dims).unique())
        dim_values = pl.concat(values, how="vertical_relaxed").unique() if values else pl.DataFrame()
        grid = period_frame.join(dim_values, how="cross")
    else:
        grid = period_frame
    names: dict[str, str] = {}
    covered = []
    for source, source_aggs in by_source.items():
        group = plan.sources[source].groups[(grain, dims)]
        result = data[source].groups[(grain, dims)]
        src = data[source]
        cols = []
        for agg in source_aggs:
            req = group.aggs[agg.key]
            name = f"{source}.{req.id}"
            names[agg.key] = name
            cols.append((req, name))
        picked = result.select(PERIOD, *dims, *[pl.col(r.id).alias(n) for r, n in dict.fromkeys(cols)])
        grid = grid.join(picked, on=[PERIOD, *dims], how="left", nulls_equal=True)
        has = _covered(src, grain, plan).alias(f"__has_{source}")
        grid = grid.with_columns(has)
        covered.append(pl.col(f"__has_{source}"))
        fills = [
            pl.when(pl.col(f"__has_{source}"))
            .then(pl.col(n).fill_null(r.fill) if r.fill is not None else pl.col(n))
            .otherwise(None)
            .alias(n)
            for r, n in dict.fromkeys(cols)
        ]
        grid = grid.with_columns(fills)
    grid = grid.sort([*dims, PERIOD], nulls_last=True)
    has_data = pl.all_horizontal(covered) if covered else pl.lit(True)
    value = kpi_expr(kp.expr, lambda a: names[a.key], dims)
    value = pl.when(value.is_nan() | value.is_infinite()).then(None).otherwise(value)
    grid = grid.with_columns(has_data.alias("has_data"), value.alias("value"))
    grid = grid.with_columns(
        pl.when(pl.col("has_data")).then(pl.col("value")).otherwise(None).alias("value"),
        pl.lit(not dims).alias("is_total"),
    )
    return grid.select(PERIOD, *dims, "has_data", "is_total", "value")


def _covered(src: SourceData, grain, plan: Plan) -> pl.Expr:  # type: ignore[no-untyped-def]
    """A period has data from a source when it overlaps the span between the source's first and last rows."""
    if src.first is None or src.last is None:
        return pl.lit(False)
    first_period = periods.start_of(src.first, grain, plan.calendar)
    return (pl.col(PERIOD) >= first_period) & (pl.col(PERIOD) <= src.last)


def evaluate_plan(plan: Plan, data: Mapping[str, SourceData]) -> dict[str, pl.DataFrame]:
    return {kp.id: kpi_series(kp, plan, data) for kp in plan.kpis}
