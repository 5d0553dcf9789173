"""Reading what a catalog's sources and lookups hold at load time: each one's columns (from its connector,
checked against what it declares), and the lookups' columns joined onto the sources that list them."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from .connectors import Connector, Env, OutsideData
from .errors import ErrorCollector, KpiError, did_you_mean
from .ir import kind_of
from .model import Project, SourceSpec
from .plugins import PluginError, Registry
from .timeparse import TimeOptions, time_expr


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
