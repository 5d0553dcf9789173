"""Combine per-source aggregates into KPI series: dense period grid, formulas, previous(), totals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from . import periods
from .compile import kpi_expr
from .execute import PERIOD, SourceData
from .formula import BinOp, Node, Number
from .ir import Agg
from .plan import KpiPlan, Plan, aggregates_of

SERIES_COLUMNS = ("period", "start", "end", "complete", "has_data", "coverage", "is_total")


def kpi_series(kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData]) -> pl.LazyFrame:
    """One KPI's series (lazy): a row per period and dimension value, plus a total row per period.

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
    coverage = _coverage(kp, data, grid_periods, ends).lazy()
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
    ).lazy()
    frame = frame.join(labels, on=PERIOD, how="left").rename({PERIOD: "start"})
    extra = list(QUALITATIVE) if spec.kind == "qualitative" and proportion_parts(kp.expr) else []
    out = frame.select(*SERIES_COLUMNS, *[pl.col(d) for d in dims], *extra, pl.col("value").cast(pl.Float64))
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
    kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData], coverage: pl.LazyFrame, dims: tuple[str, ...]
) -> pl.LazyFrame:
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
            active = data[source].groups[key].lazy().filter(pl.any_horizontal([pl.col(i) > 0 for i in ids]))
            values.append(active.select(dims).unique())
        grid = grid.join(pl.concat(values, how="vertical_relaxed").unique(), how="cross")
    names: dict[str, str] = {}
    for source, source_aggs in by_source.items():
        group = plan.sources[source].groups[key]
        requests = {group.aggs[a.key].id: group.aggs[a.key] for a in source_aggs}
        for agg in source_aggs:
            names[agg.key] = f"{source}.{group.aggs[agg.key].id}"
        picked = (
            data[source].groups[key].lazy().select(PERIOD, *dims, *[pl.col(i).alias(f"{source}.{i}") for i in requests])
        )
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
    functions = plan.functions

    def column_of(agg: Agg) -> pl.Expr:
        column = pl.col(names[agg.key])
        finish = functions[agg.func].finish if agg.func in functions else None
        return finish(column, dims).cast(pl.Float64) if finish is not None else column

    value = kpi_expr(kp.expr, column_of, dims)
    value = pl.when(value.is_nan() | value.is_infinite()).then(None).otherwise(value)
    if spec.missing != "zero":
        value = pl.when(has_data).then(value).otherwise(None)
    grid = grid.with_columns(has_data.alias("has_data"), value.alias("value"), pl.lit(not dims).alias("is_total"))
    extra = []
    parts = proportion_parts(kp.expr) if spec.kind == "qualitative" else None
    if parts is not None:
        numerator, denominator, scale = parts
        grid = grid.with_columns(wilson(pl.col(names[numerator.key]), pl.col(names[denominator.key]), scale))
        grid = grid.with_columns(
            pl.when(pl.col("has_data")).then(pl.col(c)).otherwise(None).alias(c) for c in QUALITATIVE
        )
        extra = list(QUALITATIVE)
    return grid.select(PERIOD, *dims, "has_data", "coverage", "is_total", *extra, "value")


QUALITATIVE = ("sample_size", "ci_low", "ci_high")
Z95 = 1.959963984540054


def proportion_parts(node: Node) -> tuple[Agg, Agg, float] | None:
    """(numerator, denominator, scale) when a formula is ``[k *] count(s where ...) / count(s ...) [* k]``."""
    if isinstance(node, BinOp) and node.op == "*":
        for const, rest in ((node.left, node.right), (node.right, node.left)):
            if isinstance(const, Number):
                inner = proportion_parts(rest)
                if inner:
                    return inner[0], inner[1], inner[2] * float(const.value)
        return None
    if isinstance(node, BinOp) and node.op == "/" and isinstance(node.right, Agg):
        left, scale = node.left, 1.0
        if isinstance(left, BinOp) and left.op == "*" and isinstance(left.left, Number):
            left, scale = left.right, float(left.left.value)
        if (
            isinstance(left, Agg)
            and left.func == "count"
            and node.right.func == "count"
            and left.source == node.right.source
        ):
            return left, node.right, scale
    return None


def wilson(successes: pl.Expr, n: pl.Expr, scale: float = 1.0) -> list[pl.Expr]:
    """Sample size and the 95% Wilson score interval of a proportion, scaled like the KPI (e.g. 100 for %)."""
    z2 = Z95 * Z95
    p = successes.cast(pl.Float64) / n.cast(pl.Float64)
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = Z95 * ((p * (1 - p) / n + z2 / (4 * n * n)).sqrt()) / denom
    valid = n > 0
    return [
        n.cast(pl.Int64).alias("sample_size"),
        pl.when(valid).then((centre - half) * scale).otherwise(None).alias("ci_low"),
        pl.when(valid).then((centre + half) * scale).otherwise(None).alias("ci_high"),
    ]


def evaluate_plan(plan: Plan, data: Mapping[str, SourceData]) -> dict:
    """Every KPI plan's series, keyed by KPI id (or (id, span) for window evaluations).

    The series are built lazily and collected together, so that their small joins run as one batch.
    """
    frames = pl.collect_all([kpi_series(kp, plan, data) for kp in plan.kpis])
    return {kp.key: frame for kp, frame in zip(plan.kpis, frames, strict=True)}
