"""Execution: one lazy scan per source, every group of the plan built on it, all collected together."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from . import periods
from .compile import agg_expr, rollup_expr, row_expr
from .connectors import Connector, Env, ScanRequest, data_error
from .errors import Diagnostic, KpiError
from .ir import MetricFunction
from .plan import GroupRequest, Plan, SourcePlan

DATE = "__date"
PERIOD = "__period"


@dataclass(frozen=True)
class SourceData:
    """What execution produced for one source: its data span and one frame per (grain, dims) group."""

    first: dt.date | None  # local date of the earliest row in the scanned window
    last: dt.date | None  # local date of the latest row
    rows: int
    groups: Mapping[tuple, pl.DataFrame]


def normalize_time(lf: pl.LazyFrame, column: str, dtype: pl.DataType) -> tuple[pl.LazyFrame, pl.DataType]:
    """Text timestamps (CSV, SQLite) are parsed strictly; anything else must already be a date or datetime."""
    if dtype == pl.String:
        lf = lf.with_columns(pl.col(column).str.to_datetime(strict=True, time_unit="us"))
        dtype = lf.collect_schema()[column]
    return lf, dtype


def source_frame(sp: SourcePlan, connector: Connector, plan: Plan, env: Env) -> tuple[pl.LazyFrame, pl.DataType]:
    """The source's rows in the plan's window, with their local date, as one lazy frame."""
    tz = plan.calendar.timezone
    source = sp.source
    start = periods.local_midnight(sp.lower, tz) if sp.lower else None
    end = periods.local_midnight(sp.upper, tz) if sp.upper else None
    request = ScanRequest(tuple(sorted(sp.columns)), source.time, start, end)
    lf = connector.scan(source, request, env)
    try:
        lf, dtype = normalize_time(lf, source.time, sp.schema[source.time])
    except pl.exceptions.PolarsError:
        raise time_error(sp) from None
    lf = lf.select(sorted(sp.columns))
    col = pl.col(source.time)
    if sp.lower:
        lf = lf.filter(col >= periods.bound_literal(sp.lower, dtype, tz))
    if sp.upper:
        lf = lf.filter(col < periods.bound_literal(sp.upper, dtype, tz))
    return lf.with_columns(periods.local_date(col, dtype, tz).alias(DATE)), dtype


def group_frame(
    lf: pl.LazyFrame, group: GroupRequest, sp: SourcePlan, plan: Plan, functions: Mapping[str, MetricFunction]
) -> pl.LazyFrame:
    if sp.prefilter:
        lf = lf.filter(pl.any_horizontal([row_expr(f).fill_null(False) for f in sp.prefilter]))
    keyed = lf.with_columns(periods.period_start(pl.col(DATE), group.grain, plan.calendar).alias(PERIOD))
    if isinstance(group.grain, periods.Span):
        keyed = keyed.filter(pl.col(PERIOD).is_not_null())
    aggs = [agg_expr(r.agg, sp.schema, functions).alias(r.id) for r in group.aggs.values()]
    counts = [
        (row_expr(f).fill_null(False).sum() if f is not None else pl.len()).cast(pl.Int64).alias(i)
        for i, f in group.row_filters.values()
    ]
    return keyed.group_by([PERIOD, *group.dims]).agg(*aggs, *counts)


def execute(
    plan: Plan,
    connectors: Mapping[str, Connector],
    functions: Mapping[str, MetricFunction],
    env: Env,
    streaming: bool = False,
    failures: list | None = None,
) -> dict[str, SourceData]:
    """Run the plan: build every lazy query, collect them in one ``collect_all`` (shared scans)."""
    queries: list[pl.LazyFrame] = []
    index: list[tuple[str, tuple | None]] = []
    for name, sp in list(plan.sources.items()):
        try:
            lf, _ = source_frame(sp, connectors[sp.source.connector], plan, env)
        except KpiError:
            raise
        except Exception as exc:  # a connector plugin's bug: skip its source, the other KPIs still run
            if failures is None:
                raise
            from .api import PluginError

            failures.append(PluginError(name, sp.source.connector, "", f"{type(exc).__name__}: {exc}"))
            continue
        queries.append(
            lf.select(pl.col(DATE).min().alias("first"), pl.col(DATE).max().alias("last"), pl.len().alias("rows"))
        )
        index.append((name, None))
        for key, group in sp.groups.items():
            if group.derive_from is None:
                queries.append(group_frame(lf, group, sp, plan, functions))
                index.append((name, key))
    try:
        frames = pl.collect_all(queries, engine="streaming" if streaming else "auto")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _locate(exc, plan, connectors, env) from None
    out: dict[str, dict] = {}
    for (name, key), frame in zip(index, frames, strict=True):
        entry = out.setdefault(name, {"groups": {}})
        if key is None:
            entry.update(first=frame["first"][0], last=frame["last"][0], rows=frame["rows"][0])
        else:
            entry["groups"][key] = frame
    for name, sp in plan.sources.items():
        if name not in out:
            continue
        groups = out[name]["groups"]
        for key, group in sp.groups.items():
            if group.derive_from is not None:
                finer = groups[group.derive_from]
                exprs = [rollup_expr(r.rollup or "sum", r.id).alias(r.id) for r in group.aggs.values()]
                exprs += [pl.col(i).sum().alias(i) for i, _ in group.row_filters.values()]
                groups[key] = finer.group_by(PERIOD).agg(exprs)
    return {name: SourceData(v["first"], v["last"], v["rows"], v["groups"]) for name, v in out.items()}


def time_error(sp: SourcePlan) -> KpiError:
    return KpiError(
        Diagnostic(
            f"cannot parse the time column `{sp.source.time}` of source `{sp.source.name}`",
            sp.source.loc("time"),
            hint="timestamps must be ISO 8601, e.g. 2026-04-01T09:30:00",
        )
    )


def _locate(exc: BaseException, plan: Plan, connectors: Mapping[str, Connector], env: Env) -> KpiError:
    """Find which source a failed collect came from by collecting each source alone (error path only)."""
    for sp in plan.sources.values():
        try:
            lf, _ = source_frame(sp, connectors[sp.source.connector], plan, env)
        except KpiError as inner:
            return inner
        try:
            lf.select(DATE).collect()
        except (pl.exceptions.PolarsError, OSError):
            return time_error(sp)
        try:
            lf.collect()
        except (pl.exceptions.PolarsError, OSError) as inner:
            return data_error(sp.source, inner)
    return KpiError(Diagnostic(f"cannot evaluate: {str(exc).splitlines()[0]}"))
