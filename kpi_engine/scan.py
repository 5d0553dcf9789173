"""Reading a source: its rows in the plan's window with local dates, as one lazy frame (or into memory, file
by file, for an incremental run), and the errors that say which row or file could not be read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from . import periods, timeparse
from .connectors import Connector, Env, ScanRequest
from .errors import Diagnostic, KpiError
from .groups import DATE
from .lookups import join_lookup, lookup_frames
from .model import SourceSpec
from .plan import Plan, SourcePlan, as_of_end
from .timeparse import TimeOptions, time_expr


def normalize_time(
    lf: pl.LazyFrame, source: SourceSpec, dtype: pl.DataType, zone: str | None = None
) -> tuple[pl.LazyFrame, pl.DataType]:
    """The time column as naive UTC timestamps or dates (see ``timeparse``; ``zone``: the spec's, for text
    days); a value it cannot read fails."""
    opts = TimeOptions.of(source.options)
    col = pl.col(source.time)
    expr = time_expr(col, dtype, opts, day_zone=zone)
    if expr is None:
        raise KpiError(
            Diagnostic(
                f"time column `{source.time}` of source `{source.name}` is {dtype}, not a date or timestamp",
                source.loc("time"),
                hint="numbers are read as times only with `time_unit: s` (or ms, us, ns: Unix epoch times)",
            )
        )
    out = timeparse.output_type(dtype, opts)
    if timeparse.needs_check(dtype, opts):
        expr = timeparse.checked(col, expr, isinstance(out, pl.Date))
    elif dtype == out:
        return lf, dtype
    return lf.with_columns(expr.alias(source.time)), out


def source_frame(
    sp: SourcePlan,
    connector: Connector,
    plan: Plan,
    env: Env,
    windowed: bool = True,
    lookups: Mapping[str, pl.LazyFrame] | None = None,
    file: Path | None = None,
    unbounded: bool = False,
) -> tuple[pl.LazyFrame, pl.DataType]:
    """The source's rows in the plan's window, with their local date, as one lazy frame.

    ``windowed=False`` keeps every row up to the end of the as-of day: the source's data span is taken from
    those, so that a period's coverage never depends on the ``--from``/``--to`` a run asks for. ``file`` reads
    that one of the files the connector lists (``Connector.files``), for an incremental run, which also reads
    rows past as-of (``unbounded``): a file's fingerprint must not depend on the as-of it was read for.
    """
    tz = plan.calendar.timezone
    source = sp.source
    start = periods.local_midnight(sp.lower, tz) if sp.lower else None
    end = periods.local_midnight(sp.upper, tz) if sp.upper else None
    joined = {c: name for c, name in plan.joined(source).items() if c in sp.columns}  # from lookups: below
    keys = {plan.lookups[name][0].key for name in joined.values()}
    read = sorted({c for c in sp.columns if not c.startswith(periods.TIME_PART) and c not in joined} | keys)
    if not isinstance(sp.schema.get(source.time), pl.Date | pl.Datetime):  # text or epoch numbers: a window
        start = end = None  # on them would compare unlike types (the rows are filtered once their times are read)
    request = ScanRequest(tuple(read), source.time, start, end, (file,) if file else None)
    lf = connector.scan(source, request, env)
    if not isinstance(lf, pl.LazyFrame):  # a plugin's mistake: reported as its failure, the other KPIs still run
        raise TypeError(f"scan() returned {type(lf).__name__}, not a polars LazyFrame (use .lazy())")
    scanned = lf.collect_schema()
    for column in request.columns:
        if column in scanned and scanned[column] != sp.schema[column]:
            raise TypeError(
                f"scan() returned column `{column}` as {scanned[column]}, but schema() said {sp.schema[column]}"
            )
    try:
        lf, dtype = normalize_time(lf, source, sp.schema[source.time], tz)
    except pl.exceptions.PolarsError:
        raise time_error(sp, connector, env) from None
    lf = lf.select(read)
    col = pl.col(source.time)
    lower, upper = (sp.lower, sp.upper) if windowed else (None, None if unbounded else as_of_end(plan))
    if lower:
        lf = lf.filter(col >= periods.bound_literal(lower, dtype, tz))
    if upper:
        lf = lf.filter(col < periods.bound_literal(upper, dtype, tz))
    for name in dict.fromkeys(joined.values()) if lookups is not None else ():
        lf = join_lookup(lf, plan.lookups[name][0].key, lookups[name], [c for c, n in joined.items() if n == name])
    parts = [
        periods.date_part(col, dtype, tz, c.removeprefix(periods.TIME_PART)).alias(c)
        for c in sp.columns
        if c.startswith(periods.TIME_PART)
    ]
    return lf.with_columns(periods.local_date(col, dtype, tz).alias(DATE), *parts), dtype


def spans_whole_source(sp: SourcePlan, plan: Plan) -> bool:
    """Whether the plan reads every row up to as-of, so the data span can ride along in the groups."""
    return sp.lower is None and sp.upper == as_of_end(plan)


def cached_sources(plan: Plan, connectors: Mapping[str, Connector], env: Env, skip: set[str]) -> dict:
    """The sources an incremental run may keep (each read up to as-of, not aggregated by a database), with the
    files of those whose connector reads a subset of its files (None: read whole)."""
    out = {}
    for name, sp in plan.sources.items():
        if name in skip or not spans_whole_source(sp, plan):
            continue
        try:
            out[name] = connectors[sp.source.connector].files(sp.source, env)
        except KpiError:
            raise
        except Exception:  # noqa: BLE001 - a connector plugin's bug: reported by the normal path
            continue
    return out


def reader(plan: Plan, connectors: Mapping[str, Connector], env: Env, skip: set[str]):  # type: ignore[no-untyped-def]
    """Read (source, file or None for all) pairs into memory in one ``collect_all`` per call; None for a
    source whose connector fails (the normal path reports it). The lookups the sources not in ``skip`` join
    are read once, at the first call, for every call."""
    read_once: list[Mapping[str, pl.LazyFrame]] = []

    def read(requests: list[tuple[str, Path | None]]) -> list[pl.DataFrame | None]:
        if not read_once:
            read_once.append(lookup_frames(plan, connectors, env, skip))
        lookups = read_once[0]
        lazy: list[pl.LazyFrame | None] = []
        for name, path in requests:
            sp = plan.sources[name]
            try:
                lazy.append(source_frame(sp, connectors[sp.source.connector], plan, env, False, lookups, path, True)[0])
            except KpiError:
                raise
            except Exception:  # noqa: BLE001 - a connector plugin's bug: reported by the normal path
                lazy.append(None)
        try:
            frames = iter(pl.collect_all([lf for lf in lazy if lf is not None]))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise locate(exc, plan, connectors, env) from None
        return [next(frames) if lf is not None else None for lf in lazy]

    return read


def time_error(sp: SourcePlan, connector: Connector, env: Env) -> KpiError:
    """The first time value of the source that cannot be read, with where it is (error path only)."""
    source = sp.source
    opts = TimeOptions.of(source.options)
    try:
        raw = connector.scan(source, ScanRequest((source.time,), source.time), env).select(source.time).collect()
        found = timeparse.first_unread(raw, source.time, opts)
    except KpiError:
        raise
    except Exception:  # noqa: BLE001 - the diagnosis must not hide the original problem
        found = None
    if found is None:
        return KpiError(
            Diagnostic(
                f"cannot read the time column `{source.time}` of source `{source.name}`",
                source.loc("time"),
                hint="timestamps must be ISO 8601 (e.g. 2026-04-01T09:30:00), or declare time_format",
            )
        )
    row, value = found
    where = connector.locate_row(source, env, row) or f"row {row + 1}"
    what, hint = timeparse.explain_unread(value, opts)
    return KpiError(
        Diagnostic(f"cannot read source `{source.name}`: {where}: time {what}", source.loc("time"), hint=hint)
    )


def locate(exc: BaseException, plan: Plan, connectors: Mapping[str, Connector], env: Env) -> KpiError:
    """Find which source a failed collect came from by collecting each source alone (error path only)."""
    for sp in plan.sources.values():
        try:
            lf, _ = source_frame(sp, connectors[sp.source.connector], plan, env)
        except KpiError as inner:
            return inner
        try:
            lf.select(DATE).collect()
        except (pl.exceptions.PolarsError, OSError):
            return time_error(sp, connectors[sp.source.connector], env)
        try:
            lf.collect()
        except (pl.exceptions.PolarsError, OSError) as inner:
            return connectors[sp.source.connector].explain_error(sp.source, env, inner)
    return KpiError(Diagnostic(f"cannot evaluate: {str(exc).splitlines()[0]}"))
