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

SERIES_COLUMNS = ("period", "start", "end", "complete", "has_data", "coverage", "is_total")


def kpi_series(kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData]) -> pl.DataFrame:
    """One KPI's series: a row per period and dimension value, plus a total row per period.

    Columns: period, start, end, complete, has_data, coverage, is_total, the dimension columns, value.
    ``coverage`` is the share of the period's days inside every source's data (first to last row).
    """
    spec = kp.kpi.spec
    grain, dims, cal = kp.grain, spec.dimensions, plan.calendar
    firsts = [data[s].first for s in kp.kpi.sources if data[s].first is not None]
    if kp.first is not None:
        first = kp.first
    elif firsts:
        first = periods.start_of(min(firsts), grain, cal)
    else:
        first = kp.last
    first = min(first, kp.last)
    needed_first = periods.shift(first, grain, -kp.kpi.lookback) if kp.first is not None else first
    grid_periods = periods.period_range(needed_first, kp.last, grain, cal)
    ends = [periods.end_of(p, grain) for p in grid_periods]
    coverage = _coverage(kp, data, grid_periods, ends)
    parts = [_evaluate(kp, plan, data, coverage, dims)]
    if dims:
        parts.append(_evaluate(kp, plan, data, coverage, ()))
    frame = pl.concat(parts, how="diagonal_relaxed").filter(pl.col(PERIOD) >= first)
    labels = pl.DataFrame(
        {
            PERIOD: grid_periods,
            "end": ends,
            "period": [periods.label(p, grain, cal) for p in grid_periods],
            "complete": [e <= plan.window.as_of for e in ends],
        },
        schema={PERIOD: pl.Date, "end": pl.Date, "period": pl.String, "complete": pl.Boolean},
    )
    frame = frame.join(labels, on=PERIOD, how="left").rename({PERIOD: "start"})
    out = frame.select(*SERIES_COLUMNS, *[pl.col(d) for d in dims], pl.col("value").cast(pl.Float64))
    return out.sort(["start", "is_total", *dims], nulls_last=True)


def _coverage(kp: KpiPlan, data: Mapping[str, SourceData], starts: list[dt.date], ends: list[dt.date]) -> pl.DataFrame:
    """Per period and source, the share of the period's days between the source's first and last rows."""
    columns: dict[str, list] = {PERIOD: starts}
    for source in kp.kpi.sources:
        src = data[source]
        shares = []
        for start, end in zip(starts, ends, strict=True):
            if src.first is None or src.last is None:
                shares.append(0.0)
                continue
            overlap = (min(end, src.last) - max(start, src.first)).days + 1
            shares.append(max(overlap, 0) / ((end - start).days + 1))
        columns[f"__cov_{source}"] = shares
    frame = pl.DataFrame(columns, schema_overrides={PERIOD: pl.Date})
    covs = [pl.col(f"__cov_{s}") for s in kp.kpi.sources]
    return frame.with_columns((pl.min_horizontal(covs) if covs else pl.lit(1.0)).alias("coverage"))


def _evaluate(
    kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData], coverage: pl.DataFrame, dims: tuple[str, ...]
) -> pl.DataFrame:
    spec = kp.kpi.spec
    key = (kp.grain, dims)
    by_source: dict[str, list[Agg]] = {}
    for agg in aggregates_of(kp.expr):
        by_source.setdefault(agg.source, []).append(agg)
    grid = coverage
    if dims:  # dimension values: those with at least one row counted by this KPI's aggregates
        values = []
        for source, source_aggs in by_source.items():
            group = plan.sources[source].groups[key]
            ids = sorted({group.aggs[a.key].rows_id for a in source_aggs})
            active = data[source].groups[key].filter(pl.any_horizontal([pl.col(i) > 0 for i in ids]))
            values.append(active.select(dims).unique())
        grid = grid.join(pl.concat(values, how="vertical_relaxed").unique(), how="cross")
    names: dict[str, str] = {}
    for source, source_aggs in by_source.items():
        group = plan.sources[source].groups[key]
        requests = {group.aggs[a.key].id: group.aggs[a.key] for a in source_aggs}
        for agg in source_aggs:
            names[agg.key] = f"{source}.{group.aggs[agg.key].id}"
        picked = data[source].groups[key].select(PERIOD, *dims, *[pl.col(i).alias(f"{source}.{i}") for i in requests])
        grid = grid.join(picked, on=[PERIOD, *dims], how="left", nulls_equal=True)
        covered = pl.col(f"__cov_{source}") > 0
        fills = []
        for i, request in requests.items():
            col = pl.col(f"{source}.{i}")
            filled = col.fill_null(request.fill) if request.fill is not None and spec.missing != "null" else col
            if spec.missing == "zero":
                fills.append(filled.fill_null(0).alias(f"{source}.{i}"))
            else:
                fills.append(pl.when(covered).then(filled).otherwise(None).alias(f"{source}.{i}"))
        grid = grid.with_columns(fills)
    grid = grid.sort([*dims, PERIOD], nulls_last=True)
    has_data = pl.col("coverage") > 0
    value = kpi_expr(kp.expr, lambda a: names[a.key], dims)
    value = pl.when(value.is_nan() | value.is_infinite()).then(None).otherwise(value)
    if spec.missing != "zero":
        value = pl.when(has_data).then(value).otherwise(None)
    grid = grid.with_columns(has_data.alias("has_data"), value.alias("value"), pl.lit(not dims).alias("is_total"))
    return grid.select(PERIOD, *dims, "has_data", "coverage", "is_total", "value")


def evaluate_plan(plan: Plan, data: Mapping[str, SourceData]) -> dict:
    """Every KPI plan's series, keyed by KPI id (or (id, span) for window evaluations)."""
    return {kp.key: kpi_series(kp, plan, data) for kp in plan.kpis}
