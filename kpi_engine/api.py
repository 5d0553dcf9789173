"""The whole pipeline in a few lines: load -> bind -> plan -> execute -> evaluate."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from . import spec as spec_mod
from .connectors import Env
from .errors import Diagnostic, ErrorCollector, KpiError, did_you_mean
from .execute import execute
from .ir import BoundKpi, kind_of
from .periods import Span
from .plan import Plan, Window, build_plan
from .plugins import Registry, default_registry
from .resolve import bind_project
from .series import evaluate_plan
from .spec import KpiSpec, Project


@dataclass
class Catalog:
    """A validated project: specs, source schemas and bound formulas, ready to evaluate."""

    project: Project
    registry: Registry
    env: Env
    schemas: dict[str, pl.Schema]
    bound: dict[str, BoundKpi]

    def plan(self, window: Window, kpis: Iterable[str] | None = None, spans: Iterable[tuple[str, Span]] = ()) -> Plan:
        wanted = spec_mod.iter_kpis(self.project, kpis)
        requests: list[BoundKpi | tuple[BoundKpi, Span]] = [self.bound[k.id] for k in wanted]
        requests += [(self.bound[kpi_id], span) for kpi_id, span in dict.fromkeys(spans)]
        return build_plan(
            requests,
            self.project.sources,
            self.schemas,
            self.project.calendar,
            window,
            self.registry.functions,
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
    ) -> Result:
        """Evaluate KPIs (all, or ``kpis``) over data up to the end of ``as_of`` (default: today).

        ``spans`` asks for KPIs recomputed over custom windows too (``(kpi_id, Span)``, in ``Result.spans``),
        in the same scans.
        """
        as_of = as_of or today(self.project.calendar.timezone)
        if start and end and start > end:
            raise KpiError(Diagnostic(f"--from {start} is after --to {end}"))
        window = Window(as_of, start, end)
        plan = self.plan(window, kpis, spans)
        data = execute(plan, self.registry.connectors, self.registry.functions, self.env, streaming=streaming)
        frames = evaluate_plan(plan, data)
        series = {k: v for k, v in frames.items() if isinstance(k, str)}
        windows = {k: v for k, v in frames.items() if not isinstance(k, str)}
        freshness = {name: d.last for name, d in data.items()}
        return Result(as_of, self.project, series, freshness, plan, windows)


@dataclass
class Result:
    """KPI series by id (polars DataFrames), the as-of date and each source's latest data day."""

    as_of: dt.date
    project: Project
    series: dict[str, pl.DataFrame]
    freshness: dict[str, dt.date | None] = field(default_factory=dict)
    plan: Plan | None = None
    spans: dict[tuple[str, Span], pl.DataFrame] = field(default_factory=dict)

    def __getitem__(self, kpi_id: str) -> pl.DataFrame:
        return self.series[kpi_id]

    def kpi(self, kpi_id: str) -> KpiSpec:
        return self.project.kpis[kpi_id]


def today(tz: str) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(tz)).date()


def load(
    path: str | Path,
    *,
    frames: Mapping[str, pl.DataFrame | pl.LazyFrame] | None = None,
    registry: Registry | None = None,
    allow_outside: bool = False,
) -> Catalog:
    """Load and fully validate the spec file or directory at ``path``; raises KpiError with every problem.

    Data paths must stay below the spec's folder unless ``allow_outside`` is set.
    """
    registry = registry or default_registry()
    env = Env(frames or {}, allow_outside)
    project = spec_mod.load_project(path, registry.connector_schemas())
    errors = ErrorCollector()
    schemas = read_schemas(project, registry, env, errors)
    bound, problems = bind_project(project, schemas, registry.functions)
    errors.extend(problems)
    errors.raise_if_any()
    return Catalog(project, registry, env, schemas, bound)


def read_schemas(project: Project, registry: Registry, env: Env, errors: ErrorCollector) -> dict[str, pl.Schema]:
    """Ask each source's connector for its columns (metadata only); check the time column on the way."""
    schemas: dict[str, pl.Schema] = {}
    for name, source in project.sources.items():
        connector = registry.connectors.get(source.connector)
        if connector is None:  # the schema already rejected unknown names; this is a plugin that failed
            errors.add(
                f"connector `{source.connector}` of source `{name}` is not available",
                source.loc("connector"),
                hint=did_you_mean(source.connector, registry.connectors, "connectors"),
            )
            continue
        try:
            schema = connector.schema(source, env)
        except KpiError as exc:
            errors.extend(exc.diagnostics)
            continue
        time = source.time
        if time not in schema:
            errors.add(
                f"time column `{time}` is not a column of source `{name}`",
                source.loc("time"),
                hint=did_you_mean(time, schema, f"columns of {name}"),
            )
        elif kind_of(schema[time]) not in ("date", "datetime") and schema[time] != pl.String:
            errors.add(
                f"time column `{time}` of source `{name}` is {schema[time]}, not a date or timestamp",
                source.loc("time"),
                hint=f"name a timestamp column, or declare it in `dtypes: {{{time}: datetime}}`",
            )
        schemas[name] = schema
    return schemas


def evaluate(path: str | Path, as_of: dt.date | None = None, **kwargs) -> Result:  # type: ignore[no-untyped-def]
    """Load and evaluate in one call: ``kpi_engine.evaluate("kpi_specs/", as_of=date(2026, 6, 30))``."""
    frames = kwargs.pop("frames", None)
    return load(path, frames=frames).evaluate(as_of, **kwargs)
