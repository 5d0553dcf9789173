"""Combine per-source aggregates into KPI series: dense period grid, coverage, totals, and each KPI's value
from its bound formula (references are inlined by ``resolve``, ``previous()`` compiled by ``compile``).

KPIs that share a grain, dimensions, period range and missing-data policy are evaluated together as the
columns of one frame, then split: the cost of a catalogue grows with its number of distinct groups, not
with its number of KPIs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from . import periods
from .compile import is_integer, kpi_expr
from .execute import INT64, SourceData, overflow_error
from .formula import BinOp, Node, Number
from .groups import PERIOD
from .ir import Agg, Previous
from .model import MONTHS_PER, Grain
from .plan import KpiPlan, Plan, aggregates_of

SERIES_COLUMNS = ("period", "start", "end", "complete", "has_data", "coverage", "is_total")
QUALITATIVE = ("sample_size", "ci_low", "ci_high")
Z95 = 1.959963984540054


@dataclass
class _Batch:
    """KPIs evaluated as columns of one frame: same grain, dimensions, periods and missing-data policy."""

    grain: periods.Period
    dims: tuple[str, ...]
    missing: str
    first: dt.date  # first period shown
    grid_first: dt.date  # first period computed (earlier when previous() looks back)
    last: dt.date
    ahead: int = 0  # periods the KPIs look ahead (active(k)): complete once the period that far on is over
    ahead_days: int = 0  # days conversions may still come in after a period (conversions(a, b, 7 days))
    kpis: list[KpiPlan] = field(default_factory=list)
    # columns shared by KPIs: coverage per set of sources, dimension-value flags per set of counted rows
    source_sets: dict[tuple[str, ...], int] = field(default_factory=dict)
    row_sets: dict[tuple, int] = field(default_factory=dict)
    coverage_of: list[int] = field(default_factory=list)  # per KPI: its index in source_sets
    active_of: list[int] = field(default_factory=list)  # per KPI: its index in row_sets (with dimensions)

    def share(self, plan: Plan) -> None:
        """Index the columns KPIs share, so that each is computed once however many KPIs read it."""
        for kp in self.kpis:
            sources = kp.measured
            self.coverage_of.append(self.source_sets.setdefault(sources, len(self.source_sets)))
            if self.dims:
                rows = tuple(sorted(_rows_ids(kp, plan, (self.grain, self.dims)).items()))
                self.active_of.append(self.row_sets.setdefault(rows, len(self.row_sets)))


def evaluate_plan(plan: Plan, data: Mapping[str, SourceData]) -> dict:
    """Every KPI plan's series, keyed by KPI id (or (id, span) for window evaluations).

    Columns of a series: period, start, end, complete, has_data, coverage, is_total, the dimension columns,
    (sample_size, ci_low, ci_high for survey proportions,) value. ``coverage`` is the share of the period's
    days inside every source's data (first to last row).
    """
    batches: dict[tuple, _Batch] = {}
    for kp in plan.kpis:
        first, grid_first = _first_periods(kp, plan, data)
        spec = kp.kpi.spec
        key = (kp.grain, spec.dimensions, spec.missing, first, grid_first, kp.last, kp.ahead, kp.ahead_days)
        batch = batches.setdefault(key, _Batch(*key[:6], ahead=kp.ahead, ahead_days=kp.ahead_days))
        batch.kpis.append(kp)
    for batch in batches.values():
        batch.share(plan)
    frames = pl.collect_all([_batch_frame(b, plan, data) for b in batches.values()])
    out: dict = {}
    for batch, frame in zip(batches.values(), frames, strict=True):
        frame = _narrow(frame, batch)
        shared: dict[tuple[int, int], list[pl.Series]] = {}
        for n, kp in enumerate(batch.kpis):
            out[kp.key] = _split(frame, batch, n, shared)
    return {kp.key: out[kp.key] for kp in plan.kpis}


def _narrow(frame: pl.DataFrame, batch: _Batch) -> pl.DataFrame:
    """Integer KPIs were computed in 128 bits: each value must fit in 64 (never printed wrapped or rounded)."""
    wide = [f"__value{n}" for n in range(len(batch.kpis)) if frame.schema[f"__value{n}"] == pl.Int128]
    for column in wide:
        outside = frame.filter(~pl.col(column).is_between(*INT64))
        if not outside.is_empty():
            kp = batch.kpis[int(column.removeprefix("__value"))]
            raise overflow_error(f"KPI `{kp.id}`", [], outside["period"][0], outside[column][0])
    return frame.with_columns(pl.col(wide).cast(pl.Int64)) if wide else frame


def _first_periods(kp: KpiPlan, plan: Plan, data: Mapping[str, SourceData]) -> tuple[dt.date, dt.date]:
    """The first period shown, and the first computed (``lookback`` periods earlier for previous())."""
    firsts = [data[s].first for s in kp.measured if data[s].first is not None]
    if kp.first is not None:
        first = kp.first
    elif firsts:
        first = periods.start_of(min(firsts), kp.grain, plan.calendar)
    else:
        first = kp.last
    first = min(first, kp.last)
    # (a span has no neighbours to look back at: previous() finds nothing there)
    spanned = isinstance(kp.grain, periods.Span)
    grid_first = periods.shift(first, kp.grain, -kp.kpi.lookback) if kp.first is not None and not spanned else first
    return first, grid_first


def _split(frame: pl.DataFrame, batch: _Batch, n: int, shared: dict[tuple[int, int], list[pl.Series]]) -> pl.DataFrame:
    """One KPI's series out of its batch's frame: its own rows (dimension values it counts) and columns.

    Built from Series directly (a frame-level select or filter would touch every KPI's columns); the columns
    KPIs share are filtered once per (sources, counted rows) and reused.
    """
    kp, dims = batch.kpis[n], batch.dims
    j, k = batch.coverage_of[n], (batch.active_of[n] if dims else -1)
    keep = frame.get_column(f"__keep{k}") if dims else None
    if (j, k) not in shared:
        names = {c: c for c in SERIES_COLUMNS[:4]}
        names |= {f"__has_data{j}": "has_data", f"__coverage{j}": "coverage", "is_total": "is_total"}
        names |= {d: d for d in dims}
        columns = [frame.get_column(c).alias(name) for c, name in names.items()]
        shared[(j, k)] = [c.filter(keep) for c in columns] if keep is not None else columns
    own = {f"__{c}{n}": c for c in QUALITATIVE} if _qualitative(kp) else {}
    own[f"__value{n}"] = "value"
    columns = [frame.get_column(c).alias(name) for c, name in own.items()]
    if keep is not None:
        columns = [c.filter(keep) for c in columns]
    return pl.DataFrame([*shared[(j, k)], *columns])


def _qualitative(kp: KpiPlan) -> bool:
    return kp.kpi.spec.kind == "qualitative" and proportion_parts(kp.expr) is not None


def _batch_frame(batch: _Batch, plan: Plan, data: Mapping[str, SourceData]) -> pl.LazyFrame:
    """The batch's frame (lazy): a row per period and dimension value plus total rows, columns per KPI."""
    grain, dims, cal = batch.grain, batch.dims, plan.calendar
    grid_periods = periods.period_range(batch.grid_first, batch.last, grain, cal)
    ends = [periods.end_of(p, grain) for p in grid_periods]
    sources = sorted({s for kp in batch.kpis for s in kp.measured})
    firsts: list[dt.date | None] = list(grid_periods)
    if isinstance(grain, periods.Trailing):  # a windowed period is covered by the data over its whole window
        firsts = [periods.window_first(p, grain, cal) for p in grid_periods]
    elif isinstance(grain, periods.Span) and grain.all_time:  # covered from each source's first row
        firsts = [None for _ in grid_periods]
    coverage = _coverage(sources, data, grid_periods, ends, firsts).lazy()
    parts = [_evaluate(batch, plan, data, coverage, dims)]
    if dims:
        parts.append(_evaluate(batch, plan, data, coverage, ()))
    frame = pl.concat(parts, how="diagonal_relaxed").filter(pl.col(PERIOD) >= batch.first)
    if dims:
        frame = frame.with_columns(
            (pl.col("is_total") | pl.col(f"__active{k}").fill_null(False)).alias(f"__keep{k}")
            for k in range(len(batch.row_sets))
        )
    labels = pl.DataFrame(
        {
            PERIOD: grid_periods,
            "end": ends,
            "period": [periods.label(p, grain, cal) for p in grid_periods],
            "complete": [
                periods.end_of(periods.shift(p, grain, batch.ahead), grain) + dt.timedelta(days=batch.ahead_days)
                <= plan.window.as_of
                for p in grid_periods
            ],
        },
        schema={PERIOD: pl.Date, "end": pl.Date, "period": pl.String, "complete": pl.Boolean},
    ).lazy()
    frame = frame.join(labels, on=PERIOD, how="left").rename({PERIOD: "start"})
    return frame.sort(["start", "is_total", *dims], nulls_last=True)


def _periods_back(node: Previous, grain: periods.Period, plan: Plan) -> pl.Expr:
    """Per grid row, how many periods back the period holding the same day ``node.n`` units earlier is (or,
    for ``at_start``, the period holding the first day of the enclosing unit)."""
    start = pl.col(PERIOD)
    if node.to_start:
        target = periods.period_start(periods.period_start(start, node.unit, plan.calendar), grain, plan.calendar)  # type: ignore[arg-type]
    else:
        months = node.n * MONTHS_PER[node.unit]  # type: ignore[index]
        target = periods.period_start(start.dt.offset_by(f"-{months}mo"), grain, plan.calendar)
    base = periods.base(grain)
    if isinstance(base, periods.Span):  # a custom window has no neighbours: the offset finds nothing
        return pl.lit(1, dtype=pl.Int64) + pl.len()
    if base in (Grain.DAY, Grain.WEEK):
        days = (start - target).dt.total_days()
        return days // 7 if base == Grain.WEEK else days
    months = (start.dt.year() * 12 + start.dt.month()) - (target.dt.year() * 12 + target.dt.month())
    return months // MONTHS_PER[base]  # type: ignore[index]


def _coverage(
    sources: list[str],
    data: Mapping[str, SourceData],
    starts: list[dt.date],
    ends: list[dt.date],
    firsts: list[dt.date | None],
) -> pl.DataFrame:
    """Per period and source, the share of the period's days between the source's first and last rows.

    ``firsts`` is each period's first day: its start, or the first day of its window (None: the first row on).
    """
    columns: dict[str, list] = {PERIOD: starts}
    for source in sources:
        src = data[source]
        shares = []
        for first, end in zip(firsts, ends, strict=True):
            if src.first is None or src.last is None:
                shares.append(0.0)
                continue
            start = first or src.first
            if start > end:  # a running total that starts later: this period covers no day
                shares.append(0.0)
                continue
            overlap = (min(end, src.last) - max(start, src.first)).days + 1
            shares.append(max(overlap, 0) / ((end - start).days + 1))
        columns[f"__cov_{source}"] = shares
    return pl.DataFrame(columns, schema_overrides={PERIOD: pl.Date})


def _rows_ids(kp: KpiPlan, plan: Plan, key: tuple) -> dict[str, tuple[str, ...]]:
    """Per source, the group's row-count columns of the rows this KPI's aggregates count."""
    ids: dict[str, set[str]] = {}
    for agg in aggregates_of(kp.expr):
        ids.setdefault(agg.source, set()).add(plan.sources[agg.source].groups[key].aggs[agg.key].rows_id)
    return {source: tuple(sorted(i)) for source, i in ids.items()}


def _dimension_values(batch: _Batch, plan: Plan, data: Mapping[str, SourceData]) -> tuple[pl.LazyFrame, list]:
    """Every dimension value of the batch, with a flag per set of counted rows: does it count any?

    A KPI shows the dimension values with at least one row counted by its aggregates, in any period.
    """
    key = (batch.grain, batch.dims)
    names: dict[tuple[str, tuple[str, ...]], str] = {}
    for rows in batch.row_sets:
        for pair in rows:
            names.setdefault(pair, f"__act_{len(names)}")
    frames = [
        data[source]
        .groups[key]
        .lazy()
        .filter(pl.any_horizontal([pl.col(i) > 0 for i in ids]))
        .select(batch.dims)
        .unique()
        .with_columns(pl.lit(True).alias(name))
        for (source, ids), name in names.items()
    ]
    values = pl.concat(frames, how="diagonal_relaxed").group_by(batch.dims).agg(pl.col(list(names.values())).any())
    flags = [pl.any_horizontal([names[p] for p in rows]).alias(f"__active{k}") for rows, k in batch.row_sets.items()]
    return values, flags


def _evaluate(
    batch: _Batch, plan: Plan, data: Mapping[str, SourceData], coverage: pl.LazyFrame, dims: tuple[str, ...]
) -> pl.LazyFrame:
    """Every KPI of the batch at ``dims`` (the dimensions, or () for totals) as columns of one frame."""
    key = (batch.grain, dims)
    requests: dict[str, dict] = {}
    for kp in batch.kpis:
        for agg in aggregates_of(kp.expr):
            request = plan.sources[agg.source].groups[key].aggs[agg.key]
            requests.setdefault(agg.source, {})[request.id] = request
    grid, flags = coverage, []
    if dims:
        values, flags = _dimension_values(batch, plan, data)
        grid = grid.join(values, how="cross").with_columns(flags)
    for source, source_requests in requests.items():
        picked = (
            data[source]
            .groups[key]
            .lazy()
            .select(PERIOD, *dims, *[pl.col(i).alias(f"{source}.{i}") for i in source_requests])
        )
        grid = grid.join(picked, on=[PERIOD, *dims], how="left", nulls_equal=True)
        covered = pl.col(f"__cov_{source}") > 0
        fills = []
        for i, request in source_requests.items():
            col = pl.col(f"{source}.{i}")
            filled = col.fill_null(request.fill) if request.fill is not None and batch.missing != "null" else col
            if batch.missing == "zero":
                fills.append(filled.fill_null(0).alias(f"{source}.{i}"))
            else:
                fills.append(pl.when(covered).then(filled).otherwise(None).alias(f"{source}.{i}"))
        grid = grid.with_columns(fills)
    grid = grid.sort([*dims, PERIOD], nulls_last=True)
    functions = plan.functions

    built: dict[str, pl.Expr] = {}  # polars expressions are immutable: one per aggregate, shared by KPIs

    def column_of(agg: Agg) -> pl.Expr:
        if agg.key not in built:
            column = pl.col(f"{agg.source}.{plan.sources[agg.source].groups[key].aggs[agg.key].id}")
            finish = functions[agg.func].finish if agg.func in functions else None
            built[agg.key] = finish(column, dims).cast(pl.Float64) if finish is not None else column
        return built[agg.key]

    raw, columns = [], []
    for sources, j in batch.source_sets.items():
        covs = [pl.col(f"__cov_{s}") for s in sources]
        coverage = pl.min_horizontal(covs) if covs else pl.lit(1.0)
        raw += [coverage.alias(f"__coverage{j}"), (coverage > 0).alias(f"__has_data{j}")]
    schemas = {name: sp.schema for name, sp in plan.sources.items()}
    for n, kp in enumerate(batch.kpis):
        integer = is_integer(kp.expr, schemas)
        expr = kpi_expr(kp.expr, column_of, dims, integer, lambda node: _periods_back(node, batch.grain, plan))
        raw.append((expr if integer else expr.cast(pl.Float64)).alias(f"__value{n}"))
        value, has_data = pl.col(f"__value{n}"), pl.col(f"__has_data{batch.coverage_of[n]}")
        finite = value.is_not_null() if integer else value.is_finite()
        shown = finite if batch.missing == "zero" else has_data & finite
        columns.append(pl.when(shown).then(value).alias(f"__value{n}"))  # never NaN or inf; null without data
        parts = proportion_parts(kp.expr) if kp.kpi.spec.kind == "qualitative" else None
        if parts is not None:
            numerator, denominator, scale = parts
            interval = wilson(column_of(numerator), column_of(denominator), scale)
            columns += [
                pl.when(has_data).then(e).otherwise(None).alias(f"__{c}{n}")
                for c, e in zip(QUALITATIVE, interval, strict=True)
            ]
    grid = grid.with_columns(raw).with_columns(*columns, pl.lit(not dims).alias("is_total"))
    kept = [f"__value{n}" for n in range(len(batch.kpis))]
    kept += [c for j in batch.source_sets.values() for c in (f"__coverage{j}", f"__has_data{j}")]
    kept += [f"__{c}{n}" for n, kp in enumerate(batch.kpis) if _qualitative(kp) for c in QUALITATIVE]
    kept += [f"__active{k}" for k in batch.row_sets.values()] if dims else []
    return grid.select(PERIOD, *dims, "is_total", *kept)


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
