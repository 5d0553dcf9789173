"""The whole pipeline in a few lines: load -> bind -> plan -> execute -> evaluate."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import periods
from . import spec as spec_mod
from .connectors import Connector, Env, OutsideData
from .errors import Diagnostic, ErrorCollector, KpiError, did_you_mean
from .execute import execute
from .ir import BoundKpi, cohort_column, kind_of
from .model import KpiSpec, Project, SourceSpec, Unit, iter_kpis
from .periods import Span
from .plan import Plan, Window, build_plan
from .plugins import PluginError, Registry, default_registry
from .resolve import bind_project, runnable
from .series import evaluate_plan
from .spec_dates import out_of_range
from .timeparse import TimeOptions, time_expr


@dataclass
class Catalog:
    """A validated project: specs, source schemas and bound formulas, ready to evaluate."""

    project: Project
    registry: Registry
    env: Env
    schemas: dict[str, pl.Schema]
    bound: dict[str, BoundKpi]  # every KPI; those over an unread source are never planned (``runnable``)
    failures: list[PluginError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    lookups: dict[str, pl.Schema] = field(default_factory=dict)  # each lookup table's columns

    def plan(
        self,
        window: Window,
        kpis: Iterable[str] | None = None,
        spans: Iterable[tuple[str, Span]] = (),
        series: bool = True,
    ) -> Plan:
        """The run's plan: the KPIs asked for (all by default), their ``spans`` and their cohort columns
        (only the spans when not ``series``)."""
        wanted = iter_kpis(self.project, kpis) if series else []
        ready = runnable(self.bound, self.schemas)
        requests: list[BoundKpi | tuple[BoundKpi, Span | int]] = [ready[k.id] for k in wanted if k.id in ready]
        requests += [(ready[k], span) for k, span in dict.fromkeys(spans) if k in ready]
        requests += [
            (cohort_column(ready[k.id], n), n)
            for k in wanted
            if k.id in ready and k.cohort
            for n in range(2, k.cohort + 1)
        ]
        return build_plan(
            requests,
            self.project.sources,
            self.schemas,
            self.project.calendar,
            window,
            self.registry.functions,
            {name: (self.project.lookups[name], schema) for name, schema in self.lookups.items()},
        )

    def evaluate(
        self,
        as_of: dt.date | None = None,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        kpis: Iterable[str] | None = None,
        spans: Iterable[tuple[str, Span]] = (),
        streaming: bool = False,
        all_time: bool = False,
    ) -> Result:
        """Evaluate KPIs (all, or ``kpis``) over data up to the end of ``as_of`` (default: today).

        ``spans`` asks for KPIs recomputed over custom windows too (``(kpi_id, Span)``, in ``Result.spans``),
        in the same scans. ``all_time`` gives each KPI one period instead of a series: every day up to
        ``as_of``, recomputed from its aggregates (ratios from all-time sums, distinct counts over all rows).
        """
        as_of = as_of or today(self.project.calendar.timezone)
        for day in (as_of, start, end):
            problem = day and out_of_range(day)
            if problem:
                raise KpiError(Diagnostic(problem))
        if start and end and start > end:
            raise KpiError(Diagnostic(f"--from {start} is after --to {end}"))
        if all_time and (start or end or spans):
            raise KpiError(Diagnostic("--all-time covers every day up to as-of: leave out --from and --to"))
        window = Window(as_of, start, end)
        everything = periods.all_time(as_of)
        if all_time:
            spans = [(k.id, everything) for k in iter_kpis(self.project, kpis)]
        plan = self.plan(window, kpis, spans, series=not all_time)
        failures = list(self.failures)
        data = execute(
            plan, self.registry.connectors, self.registry.functions, self.env, streaming=streaming, failures=failures
        )
        plugin_of = self.registry.connector_plugin
        failures = [f if f.plugin else dataclasses.replace(f, plugin=plugin_of.get(f.connector, "?")) for f in failures]
        plan.kpis = [kp for kp in plan.kpis if set(kp.kpi.sources) <= data.keys()]
        frames = evaluate_plan(plan, data)
        series = {k: v for k, v in frames.items() if isinstance(k, str)}
        windows = {k: v for k, v in frames.items() if isinstance(k, tuple) and isinstance(k[1], Span)}
        if all_time:  # each period starts on the first day of data its KPI reads
            series = {
                k: windows.pop((k, everything)).with_columns(
                    pl.lit(min((d.first for s in self.bound[k].sources if (d := data[s]).first), default=None))
                    .cast(pl.Date)
                    .alias("start")
                )
                for k, _ in spans
                if (k, everything) in windows
            }
        cohorts: dict[str, dict[int, pl.DataFrame]] = {}
        for key, frame in frames.items():
            if isinstance(key, tuple) and isinstance(key[1], int):
                cohorts.setdefault(key[0], {1: series[key[0]]} if key[0] in series else {})[key[1]] = frame
        freshness = {name: d.last for name, d in data.items()}
        reads = {k: b.sources for k, b in self.bound.items()}
        result = Result(
            as_of, self.project, series, freshness, plan, windows, failures, reads, cohorts=cohorts, all_time=all_time
        )
        result.warnings = data_warnings(result)
        return result


@dataclass
class Result:
    """KPI series by id (polars DataFrames), the as-of date and each source's latest data day."""

    as_of: dt.date
    project: Project
    series: dict[str, pl.DataFrame]
    freshness: dict[str, dt.date | None] = field(default_factory=dict)
    plan: Plan | None = None
    spans: dict[tuple[str, Span], pl.DataFrame] = field(default_factory=dict)
    failures: list[PluginError] = field(default_factory=list)
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the sources each KPI reads, from binding
    #: cohort matrices: KPI id -> periods ahead (1, 2, ...) -> that column's series
    cohorts: dict[str, dict[int, pl.DataFrame]] = field(default_factory=dict)
    all_time: bool = False  # one period per KPI, every day up to as-of (``kpi run --all-time``)

    warnings: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """One line per failed plugin, naming the KPIs it kept from running."""
        out = []
        for f in self.failures:
            kpis = [k for k, sources in self.reads.items() if f.source in sources]
            out.append(f.message(kpis))
        return out

    def __getitem__(self, kpi_id: str) -> pl.DataFrame:
        return self.series[kpi_id]

    def kpi(self, kpi_id: str) -> KpiSpec:
        return self.project.kpis[kpi_id]


STALE_DAYS = 7  # a source whose latest row is more than this before as-of is called stale


def stale_sources(result: Result) -> dict[str, dt.date]:
    """Sources whose latest row is more than STALE_DAYS before as-of."""
    return {n: d for n, d in result.freshness.items() if d is not None and (result.as_of - d).days > STALE_DAYS}


def trim_stale(result: Result) -> bool:
    """Cut each series after its first period without data when its data ends before that period (a stale
    export): a run's output then holds the real values and one empty period, not years of them. Targets
    and reviews are judged before trimming. Returns whether anything was cut."""
    cut = False
    for kpi_id, frame in result.series.items():
        with_data = frame.filter(pl.col("has_data"))["start"]
        if with_data.is_empty():
            continue
        later = frame.filter(pl.col("start") > with_data.max())["start"]
        if later.is_empty():
            continue
        kept = frame.filter(pl.col("start") <= later.min())
        cut = cut or kept.height < frame.height
        result.series[kpi_id] = kept
    return cut


def data_warnings(result: Result, trimmed: bool = False) -> list[str]:
    """One line per thing a reader of the numbers should know: stale sources (and, when ``trim_stale`` cut
    the series, that they stop early), fractional counts."""
    out = []
    stale = stale_sources(result)
    if stale:
        if len(stale) == 1:
            ((name, day),) = stale.items()
            what = f"source `{name}` ends on {day}, {(result.as_of - day).days} days before as-of {result.as_of}"
        else:
            names = ", ".join(f"`{n}` ({d})" for n, d in sorted(stale.items()))
            days = min((result.as_of - d).days for d in stale.values())
            what = f"sources {names} end {days} or more days before as-of {result.as_of}"
        cut = "; series stop at the first period without data (pass --to for more)" if trimmed else ""
        out.append(f"stale data: {what}{cut}")
    for kpi_id, frame in result.series.items():
        spec = result.project.kpis[kpi_id]
        if spec.unit is not Unit.COUNT or frame.schema["value"].is_integer():
            continue
        odd = frame.filter(pl.col("value").is_not_null() & (pl.col("value") != pl.col("value").round(0)))
        if odd.height:
            row = odd.row(0, named=True)
            out.append(
                f"KPI `{kpi_id}` is a count but is {row['value']:g} in {row['period']} ({odd.height} fractional "
                "values): check that its formula counts or sums whole numbers (a shifted column?), or change its unit"
            )
    return out


def today(tz: str) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(tz)).date()


def load(
    path: str | Path,
    *,
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame] | None = None,
    registry: Registry | None = None,
    allow_outside: bool = False,
    data_dirs: Iterable[str | Path] = (),
    skip_outside: bool = False,
    offline: bool = False,
) -> Catalog:
    """Load and fully validate the spec file or directory at ``path``; raises KpiError with every problem.

    Data paths must stay below the spec's folder, its ``data_root`` or one of ``data_dirs`` unless
    ``allow_outside`` is set. With ``skip_outside`` (validate, lint), a source whose data lies elsewhere is not
    read and its KPIs' columns are not checked; ``Catalog.notes`` says so. With ``offline`` (validate), a
    connector's ``declared_schema`` is used instead of reading its source.
    """
    registry = registry or default_registry()
    env = Env(frames or {}, allow_outside, tuple(Path(d) for d in data_dirs), skip_outside, offline)
    errors = ErrorCollector()  # spec, data and formula problems, all reported in one pass
    project = spec_mod.load_project(path, registry.connector_schemas(), errors)
    failures: list[PluginError] = []
    schemas = read_schemas(project, registry, env, errors, failures)
    lookups = read_lookups(project, registry, env, errors)
    schemas = with_lookups(project, schemas, lookups, errors)
    for (kind, name), _plugins in registry.clashes.items():
        for kpi in project.kpis.values() if kind == "function" else ():
            if re.search(rf"\b{re.escape(name)}\s*\(", kpi.formula):
                errors.add(registry.clash(kind, name) or "", kpi.loc("formula"))
    bound, problems = bind_project(project, schemas, registry.functions)
    errors.extend(problems)
    errors.raise_if_any()
    skipped = [n for n in project.sources if n in env.skipped]
    notes = [
        f"source `{n}` reads data outside the folders data may be read from, so its columns were not checked; "
        "kpi run will need --data DIR (or data_root: in the spec, or --allow-outside)"
        for n in skipped
    ]
    return Catalog(project, registry, env, schemas, bound, failures, notes, lookups)


def read_schemas(
    project: Project, registry: Registry, env: Env, errors: ErrorCollector, failures: list[PluginError] | None = None
) -> dict[str, pl.Schema]:
    """Ask each source's connector for its columns (metadata only); check the time column on the way.

    A connector that raises (a plugin bug, not bad input) is recorded in ``failures`` and its source skipped.
    """
    failures = failures if failures is not None else []
    schemas: dict[str, pl.Schema] = {}
    for name, source in project.sources.items():
        connector = registry.connectors.get(source.connector)
        if connector is None:  # the schema already rejected unknown names; this is a plugin that failed
            clash = registry.clash("connector", source.connector)
            errors.add(
                clash or f"connector `{source.connector}` of source `{name}` is not available",
                source.loc("connector"),
                hint=None if clash else did_you_mean(source.connector, registry.connectors, "connectors"),
            )
            continue
        try:
            schema = connector_schema(connector, source, env, errors)
        except OutsideData:
            env.skipped.add(name)  # validate and lint do not read it; the note says so
            continue
        except KpiError as exc:
            errors.extend(exc.diagnostics)
            continue
        except Exception as exc:  # a bug in a connector plugin: the KPIs that do not need it still run
            plugin = registry.connector_plugin.get(source.connector, "?")
            failures.append(PluginError(name, source.connector, plugin, f"{type(exc).__name__}: {exc}"))
            continue
        time = source.time
        if time not in schema:
            errors.add(
                f"time column `{time}` is not a column of source `{name}`",
                source.loc("time"),
                hint=did_you_mean(time, schema, f"columns of {name}"),
            )
        elif time_expr(pl.col(time), schema[time], TimeOptions.of(source.options)) is None:
            numeric = schema[time].is_numeric()
            errors.add(
                f"time column `{time}` of source `{name}` is {schema[time]}, not a date or timestamp",
                source.loc("time"),
                hint="if it holds Unix epoch times, declare their unit: time_unit: s (or ms, us, ns)"
                if numeric
                else "name a timestamp column, or declare how to read it with time_format",
            )
        schemas[name] = schema
    return schemas


def connector_schema(connector: Connector, spec: SourceSpec, env: Env, errors: ErrorCollector) -> pl.Schema:
    """A source's or lookup's columns: the connector's declared ones when validating offline, else read from
    the data and checked against the declaration, if the connector makes one."""
    declared = connector.declared_schema(spec)
    if env.offline and declared is not None:
        return declared
    schema = connector.schema(spec, env)
    if declared is not None:
        check_declared(spec, declared, schema, errors)
    return schema


def check_declared(source: SourceSpec, declared: pl.Schema, schema: pl.Schema, errors: ErrorCollector) -> None:
    """The data must hold every column its connector declared, of the declared kind (what validate checked)."""
    for column, dtype in declared.items():
        if column not in schema:
            errors.add(
                f"source `{source.name}` has no column `{column}`, which connector `{source.connector}` declares",
                source.loc("connector"),
                hint=did_you_mean(column, schema, f"columns of {source.name}") or "the data's columns changed",
            )
        elif kind_of(schema[column]) != kind_of(dtype):
            errors.add(
                f"column `{column}` of source `{source.name}` is {schema[column]}, but connector "
                f"`{source.connector}` declares {dtype}",
                source.loc("connector"),
                hint="the data's types changed, or the connector's declaration is wrong",
            )


def read_lookups(project: Project, registry: Registry, env: Env, errors: ErrorCollector) -> dict[str, pl.Schema]:
    """Each lookup table's columns (metadata only), its key among them."""
    out = {}
    for name, lookup in project.lookups.items():
        connector = registry.connectors.get(lookup.connector)
        if connector is None:
            errors.add(f"connector `{lookup.connector}` of lookup `{name}` is not available", lookup.loc("connector"))
            continue
        try:
            schema = connector_schema(connector, lookup, env, errors)
        except OutsideData:
            continue
        except KpiError as exc:
            errors.extend(exc.diagnostics)
            continue
        if lookup.key not in schema:
            errors.add(
                f"key `{lookup.key}` is not a column of lookup `{name}`",
                lookup.loc("key"),
                hint=did_you_mean(lookup.key, schema, f"columns of {name}"),
            )
            continue
        out[name] = schema
    return out


def with_lookups(
    project: Project, schemas: dict[str, pl.Schema], lookups: Mapping[str, pl.Schema], errors: ErrorCollector
) -> dict[str, pl.Schema]:
    """Each source's columns with those of the lookups it joins (checked: the key, and no clashing names)."""
    out = dict(schemas)
    for name, schema in schemas.items():
        source, merged = project.sources[name], dict(schema)
        for lookup_name in source.lookups:
            if lookup_name not in lookups:
                continue
            key, columns = project.lookups[lookup_name].key, lookups[lookup_name]
            if key not in schema:
                errors.add(
                    f"source `{name}` has no column `{key}`, the key of lookup `{lookup_name}`",
                    source.loc("lookups"),
                    hint=did_you_mean(key, schema, f"columns of {name}") or "a source joins a lookup on its key",
                )
                continue
            if kind_of(schema[key]) != kind_of(columns[key]):
                errors.add(
                    f"`{name}.{key}` is {schema[key]} but the key of lookup `{lookup_name}` is {columns[key]}",
                    source.loc("lookups"),
                    hint="cast one of them so that both hold the same kind of value",
                )
                continue
            for column, dtype in columns.items():
                if column == key:
                    continue
                if column in merged:
                    errors.add(
                        f"column `{column}` of lookup `{lookup_name}` clashes with a column of `{name}`",
                        source.loc("lookups"),
                        hint="rename it in the lookup (a SQL query or a CSV header), or drop one of them",
                    )
                    continue
                merged[column] = dtype
        out[name] = pl.Schema(merged)
    return out


def evaluate(path: str | Path, as_of: dt.date | None = None, **kwargs) -> Result:  # type: ignore[no-untyped-def]
    """Load and evaluate in one call: ``kpi_engine.evaluate("kpi_specs/", as_of=date(2026, 6, 30))``."""
    frames = kwargs.pop("frames", None)
    return load(path, frames=frames).evaluate(as_of, **kwargs)
