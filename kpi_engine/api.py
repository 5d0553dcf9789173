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
from .connectors import Env
from .errors import Diagnostic, ErrorCollector, KpiError
from .execute import execute, has_database
from .increment import Cache
from .ir import BoundKpi, cohort_column
from .model import KpiSpec, Project, Unit, iter_kpis
from .moved import with_parts
from .periods import Span
from .plan import Plan, Window, build_plan
from .plugins import PluginError, Registry, default_registry
from .resolve import bind_project, runnable
from .series import evaluate_plan
from .sources_read import read_lookups, read_schemas, with_lookups
from .spec_dates import out_of_range


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

    def with_kpis(self, extra: Mapping[str, BoundKpi]) -> Catalog:
        """A copy that can also evaluate ``extra``: derived KPIs (a ratio's parts, a KPI by day) bound
        already, under ids of their own; the catalogue itself is unchanged."""
        project = dataclasses.replace(self.project, kpis={**self.project.kpis, **{k: b.spec for k, b in extra.items()}})
        return dataclasses.replace(self, project=project, bound={**self.bound, **extra})

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

    def explain(
        self,
        window: Window,
        kpis: Iterable[str] | None = None,
        spans: Iterable[tuple[str, Span]] = (),
        series: bool = True,
    ) -> str:
        """The run's plan in words (``kpi run --explain``), with the SQL of sources whose database aggregates
        their rows, and why the other databases' rows are read."""
        plan = self.plan(window, kpis, spans, series)
        text = plan.describe()
        if has_database(plan, self.registry.connectors, self.env):
            from .pushdown import explain

            pushed = explain(plan, self.registry.connectors, self.env, self.registry.functions)
            text += "\n" + pushed if pushed else ""
        return text

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
        moves: bool = False,
        cache: Cache | None = None,
    ) -> Result:
        """Evaluate KPIs (all, or ``kpis``) over data up to the end of ``as_of`` (default: today).

        ``moves`` also evaluates each ratio KPI's numerator and denominator by dimension (``Result.parts``,
        sharing the KPI's own aggregates), so that ``moved.explain`` can split its changes.

        ``spans`` asks for KPIs recomputed over custom windows too (``(kpi_id, Span)``, in ``Result.spans``),
        in the same scans. ``all_time`` gives each KPI one period instead of a series: every day up to
        ``as_of``, recomputed from its aggregates (ratios from all-time sums, distinct counts over all rows).

        ``cache`` keeps each period's aggregates between runs and aggregates again only the periods that
        changed rows reach (see ``increment``); the result is the same as without it.
        """
        as_of = as_of or today(self.project.calendar.timezone)
        if moves and not all_time:
            ids = [k.id for k in iter_kpis(self.project, kpis)]
            wider, extra = with_parts(self, ids)
            if extra:
                kept = {"start": start, "end": end, "spans": spans, "streaming": streaming, "cache": cache}
                result = wider.evaluate(as_of, kpis=ids + extra, **kept)
                result.parts = {k: result.series.pop(k) for k in extra if k in result.series}
                result.project = self.project
                result.reads = {k: v for k, v in result.reads.items() if k in self.project.kpis}
                return result
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
        reg = self.registry
        data = execute(plan, reg.connectors, reg.functions, self.env, streaming, failures, cache)
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
    #: ratio KPIs' numerator and denominator series (``evaluate(moves=True)``), for ``moved.explain``
    parts: dict[str, pl.DataFrame] = field(default_factory=dict)

    def bound_of(self, kpi_id: str) -> BoundKpi | None:
        """The bound formula the run evaluated for ``kpi_id``."""
        found = [kp.kpi for kp in (self.plan.kpis if self.plan else []) if kp.id == kpi_id]
        return found[0] if found else None

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
    project = spec_mod.load_project(path, registry.connector_schemas(), errors, registry.channel_schemas())
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


def data_locations(path: str | Path) -> list[Path] | None:
    """Where the project's file sources and lookups read their data, as the specs name it (a file, a folder or
    a glob, not checked), for watching them; None when the specs do not load."""
    registry = default_registry()
    try:
        project = spec_mod.load_project(path, registry.connector_schemas(), channel_schemas=registry.channel_schemas())
    except KpiError:
        return None
    sources = [*project.sources.values(), *project.lookups.values()]
    return [s.base_dir / s.options["path"] for s in sources if isinstance(s.options.get("path"), str)]


def evaluate(path: str | Path, as_of: dt.date | None = None, **kwargs) -> Result:  # type: ignore[no-untyped-def]
    """Load and evaluate in one call: ``kpi_engine.evaluate("kpi_specs/", as_of=date(2026, 6, 30))``."""
    frames = kwargs.pop("frames", None)
    return load(path, frames=frames).evaluate(as_of, **kwargs)
