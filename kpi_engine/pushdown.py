"""Which sources aggregate in their own database, running their queries there, and ``--explain``'s account.

A source whose connector offers a ``Database`` runs there when every group of it compiles to SQL
(``sqlgen``) and no other source needs its rows (conversions match rows in polars, lookups join in memory);
only the aggregates come back, typed as the polars path types them. Otherwise its rows are read as usual.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlglot import exp

from .connectors import Collated, Connector, Database, Env, data_error, repeated_key
from .dialects import RUNS
from .errors import KpiError
from .ir import Agg, Conversions, MetricFunction
from .plan import GroupRequest, Plan, SourcePlan, as_of_end
from .sqlentities import entity_queries
from .sqlgen import PERIOD, NotPushable, Query, SqlCompiler
from .sqlrows import bytewise


@dataclass
class Pushed:
    """A source whose groups run in its database: the queries by group key, and the data-span query."""

    database: Database
    groups: dict[tuple, Query]
    span: Query
    entities: dict[tuple, dict[str, Query]]  # a group's aggregates over entities, one query per entity column
    rest: dict[tuple, str]  # the groups with no SQL form, whose rows are read (projected): why, by group key
    lagged: dict[tuple, dict[int, Query]]  # a group's aggregates moved by days, one query per offset
    lookups: dict[str, Query]  # per lookup joined there, a query finding a repeated key (none: it is unique)
    matched: set[str]  # the columns of its rows that a conversion matches (read, projected): none if none


def push_plan(
    plan: Plan, connectors: Mapping[str, Connector], env: Env, functions: Mapping[str, MetricFunction]
) -> tuple[dict[str, Pushed], dict[str, str]]:
    """Which sources aggregate in their own database, with their queries; and for the others whose database
    could have, why their rows are read instead (for ``--explain``)."""
    pushed: dict[str, Pushed] = {}
    reasons: dict[str, str] = {}
    matched: dict[str, set[str]] = {}  # the sources conversions match, and the columns they read
    for sp in plan.sources.values():
        for g in sp.groups.values():
            for r in g.aggs.values():
                if isinstance(r.agg, Conversions):
                    for name, key in r.agg.matched:
                        matched.setdefault(name, {plan.sources[name].source.time}).update((key, *r.agg.same))
    for name, sp in plan.sources.items():
        db = connectors[sp.source.connector].database(sp.source, env)
        if db is None:
            continue
        try:
            if db.dialect not in RUNS:
                raise NotPushable(f"the engine renders {db.dialect} SQL but does not run it")
            relation, joined, collated = with_lookups(db, sp, plan, connectors, env)
            compiler = SqlCompiler(db.dialect, sp, plan, relation, dict(functions))
            compiler.collated = collated
            checks = {lookup: repeated_key_query(compiler, plan, lookup, table) for lookup, table in joined.items()}
            check = type_check(compiler)
            if check is not None:
                counts = db.fetch(check.sql, check.params).row(0, named=True)
                misfits = sorted(c for c, n in counts.items() if n)
                if misfits:
                    raise NotPushable(
                        f"column `{misfits[0]}` holds values of another type than declared: "
                        "its rows are read and checked"
                    )
            span = span_query(compiler, as_of_end(plan))
            queries: dict[tuple, Query] = {}
            entities: dict[tuple, dict[str, Query]] = {}
            lagged: dict[tuple, dict[int, Query]] = {}
            rest: dict[tuple, str] = {}
            for g in sp.groups.values():
                if g.derive_from is None:
                    try:
                        moved = {lag: compiler.group(g, lag) for lag in compiler.lags(g)}
                        queries[g.key], entities[g.key] = compiler.group(g), entity_queries(compiler, g)
                        lagged[g.key] = moved
                    except NotPushable as why:
                        rest[g.key] = str(why)
            if not queries:  # nothing to aggregate there: one read of the rows serves every group
                raise NotPushable(next(iter(rest.values()), "conversions match its rows in polars"))
        except NotPushable as why:
            reasons[name] = str(why)
            continue
        pushed[name] = Pushed(db, queries, span, entities, rest, lagged, checks, matched.get(name, set()))
    return pushed, reasons


def with_lookups(
    db: Database, sp: SourcePlan, plan: Plan, connectors: Mapping[str, Connector], env: Env
) -> tuple[exp.Expression, dict[str, exp.Expression], Collated]:
    """The source's relation, joined to the lookups it reads columns from when they are tables of the same
    database, as ``lookups.join_lookup`` joins them: a key the lookup lacks keeps its rows, with `unknown` in
    text columns and null in others; each lookup's own relation, by name; and the text columns of all these
    tables that the database does not compare by their bytes. A lookup elsewhere (a CSV file, another
    server) is not pushable."""
    joined = {c: n for c, n in plan.joined(sp.source).items() if c in sp.columns}
    relation, collated = db.relation(), db.collated()
    if not joined:
        return relation, {}, collated
    tables: dict[str, exp.Expression] = {}
    src = "kpi_source"
    columns: list[exp.Expression] = [exp.column(exp.Star(), table=src)]
    joins = []
    for k, name in enumerate(dict.fromkeys(joined.values())):
        spec, schema = plan.lookups[name]
        other = connectors[spec.connector].database(spec, env)
        if other is None or type(other) is not type(db) or other.where() != db.where():
            raise NotPushable(f"it joins the lookup {name}, which is not in the same database: read into memory")
        if schema[spec.key] != sp.schema[spec.key]:
            raise NotPushable(f"it joins the lookup {name} on `{spec.key}`, of another type there")
        alias = f"kpi_lookup{k}"
        tables[name] = other.relation()  # (once: a Spark relation registers a view)
        theirs = other.collated()
        key = exp.column(spec.key, table=alias, quoted=True)
        on: exp.Expression = exp.EQ(this=exp.column(spec.key, table=src, quoted=True), expression=key)
        if schema[spec.key] == pl.String and (collated | theirs).differs(spec.key, key=True):  # bytes, as polars
            on = exp.EQ(this=bytewise(db.dialect, on.this), expression=bytewise(db.dialect, key.copy()))
        collated |= theirs
        joins.append((exp.alias_(tables[name].copy(), alias, table=True, quoted=True), on))
        for column in [c for c, n in joined.items() if n == name]:
            value: exp.Expression = exp.column(column, table=alias, quoted=True)
            if schema[column] == pl.String:  # a key the lookup lacks: `unknown`, as in polars
                missing = exp.Is(this=key.copy(), expression=exp.Null())
                value = exp.Case(ifs=[exp.If(this=missing, true=exp.Literal.string("unknown"))], default=value)
            columns.append(exp.alias_(value, column, quoted=True))
    query = exp.select(*columns).from_(exp.alias_(relation, src, table=True, quoted=True))
    for table, on in joins:
        query = query.join(table, on=on, join_type="left")
    joined_rows = exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("kpi_joined", quoted=True)))
    return joined_rows, tables, collated


def repeated_key_query(compiler: SqlCompiler, plan: Plan, name: str, table: exp.Expression) -> Query:
    """The first key of lookup ``name`` held by several of its rows, with their count (no row: unique), as
    ``lookups.lookup_frames`` checks it in memory."""
    spec = plan.lookups[name][0]  # (its key has the source's type: ``with_lookups``)
    key: exp.Expression = exp.column(spec.key, quoted=True)
    if compiler.by_bytes(spec.key, key=True):  # keys that differ in their bytes only are two keys, as in polars
        key = compiler.bytewise(key)
    count = exp.Count(this=exp.Star())
    query = (
        exp.select(exp.alias_(key, "value", quoted=True), exp.alias_(count, "n", quoted=True))
        .from_(table)
        .where(exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null())))
        .group_by(exp.Literal.number(1))
        .having(exp.GT(this=count.copy(), expression=exp.Literal.number(1)))
        .order_by(exp.Literal.number(1))
        .limit(1)
    )
    compiler.params = {}
    return compiler.query(query)


def run_all(
    plan: Plan,
    connectors: Mapping[str, Connector],
    env: Env,
    functions: Mapping[str, MetricFunction],
    out: dict[str, dict],
) -> dict[str, tuple[set[tuple], set[str]]]:
    """Run the sources that aggregate in their own database into ``out`` (their span and groups, as
    ``execute`` collects them); their names, each with the keys of its groups that read rows instead and the
    columns a conversion matches in its rows. The queries run side by side: a database server works on each
    in its own process, so a 2-core server finishes two at once."""
    pushed, _ = push_plan(plan, connectors, env, functions)
    tasks: list[tuple[str, tuple | None, Query]] = [(name, None, source.span) for name, source in pushed.items()]
    tasks += [(name, key, query) for name, source in pushed.items() for key, query in source.groups.items()]
    tasks += [
        (name, (*key, per), query)
        for name, source in pushed.items()
        for key, queries in source.entities.items()
        for per, query in queries.items()
    ]
    tasks += [
        (name, (*key, "lag", lag), query)
        for name, source in pushed.items()
        for key, queries in source.lagged.items()
        for lag, query in queries.items()
    ]

    def fetch(task: tuple[str, tuple | None, Query]) -> pl.DataFrame:
        name, _, query = task
        try:
            return pushed[name].database.fetch(query.sql, query.params)
        except KpiError:
            raise
        except Exception as exc:  # the database refused the query: name the source, never a traceback
            raise data_error(plan.sources[name].source, exc, "cannot aggregate") from None

    checked = {}  # each lookup joined in a database: its key unique, checked there before any aggregate
    for name, source in pushed.items():
        for lookup, query in source.lookups.items():
            checked[lookup] = (name, query)
    for lookup, (name, query) in checked.items():
        repeated = fetch((name, None, query))
        if repeated.height:
            raise repeated_key(lookup, plan.lookups[lookup][0], *repeated.row(0))
    with ThreadPoolExecutor(max_workers=min(len(tasks), MAX_QUERIES) or 1) as pool:
        frames = list(pool.map(fetch, tasks))
    for (name, key, _), frame in zip(tasks, frames, strict=True):
        entry = out.setdefault(name, {"groups": {}})
        sp = plan.sources[name]
        if key is None:
            entry.update(_span(frame))
        elif len(key) == 2:
            entry["groups"][key] = _typed_group(frame, sp.groups[key], sp.schema)
        elif len(key) == 4:  # aggregates moved by days: a full join, as the polars path makes
            group, lag = sp.groups[key[:2]], key[3]
            moved = [r for r in group.aggs.values() if r.agg.lag == lag and r.agg.per is None]
            typed = _typed_keys(frame, group, sp.schema) + [
                _typed(frame[r.id], _agg_dtype(r.agg, sp.schema)) for r in moved
            ]
            entry["groups"][key[:2]] = entry["groups"][key[:2]].join(
                pl.DataFrame(typed), on=[PERIOD, *group.dims], how="full", coalesce=True, nulls_equal=True
            )
        else:  # a group's aggregates over one entity column: joined to the group's rows, as in polars
            group = sp.groups[key[:2]]
            over = [r for r in group.aggs.values() if r.id in frame.columns]
            typed = _typed_keys(frame, group, sp.schema)
            typed += [_typed(frame[r.id], pl.Int64() if r.agg.func == "count" else pl.Float64()) for r in over]
            entry["groups"][key[:2]] = entry["groups"][key[:2]].join(
                pl.DataFrame(typed), on=[PERIOD, *group.dims], how="left", nulls_equal=True
            )
    return {name: (set(source.rest), source.matched) for name, source in pushed.items()}


#: queries in flight at once, across a run's pushed sources
MAX_QUERIES = 4


def _span(frame: pl.DataFrame) -> dict[str, Any]:
    """The data's first and last day and row count, from a source's span query."""
    first, last = (_as_date(frame[c]) for c in ("first", "last"))
    return {"first": first[0], "last": last[0], "rows": int(frame["rows"][0] or 0)}


def _typed_group(frame: pl.DataFrame, group: GroupRequest, schema: pl.Schema) -> pl.DataFrame:
    """A group's rows as the polars path types them (periods as dates, integer sums in 128 bits until they
    are checked to fit 64)."""
    columns = _typed_keys(frame, group, schema)
    columns += [
        _typed(frame[r.id], _agg_dtype(r.agg, schema))
        for r in group.aggs.values()  # (over entities, and moved by days: their own queries, joined after)
        if (r.agg.per is None or isinstance(r.agg, Conversions)) and not r.agg.lag
    ]
    columns += [_typed(frame[i], pl.Int64) for i, _ in group.row_filters.values()]
    return pl.DataFrame(columns)


def _typed_keys(frame: pl.DataFrame, group: GroupRequest, schema: pl.Schema) -> list[pl.Series]:
    """A group's period (a date) and dimension columns (``time.*`` parts: Int8) as the polars path types them."""
    period = _as_date(frame[PERIOD]).alias(PERIOD) if frame.height else pl.Series(PERIOD, [], pl.Date)
    return [period, *[_typed(frame[d], schema.get(d, pl.Int8())) for d in group.dims]]


def _agg_dtype(agg: Agg, schema: pl.Schema) -> pl.DataType:
    from .compile import integer_sum

    if agg.func in ("count", "count_distinct", "approx_count_distinct"):
        return pl.Int64()
    if agg.func in ("sum", "sum_first_day", "sum_last_day") and integer_sum(agg, schema):
        return pl.Int128()
    return pl.Float64()


def _typed(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    """A database's column as the polars path's type (SQLite's text dates and 0/1 booleans, Decimal sums)."""
    if series.dtype == dtype:
        return series
    if isinstance(dtype, pl.Date):
        return _as_date(series)
    if isinstance(dtype, pl.Boolean) and series.dtype.is_integer():
        return series.cast(pl.Boolean)
    return series.cast(dtype)


def _as_date(series: pl.Series) -> pl.Series:
    if series.dtype == pl.String:
        return series.str.to_date("%Y-%m-%d")
    if isinstance(series.dtype, pl.Datetime):
        return series.dt.date()
    return series.cast(pl.Date)


def explain(plan: Plan, connectors: Mapping[str, Connector], env: Env, functions: Mapping[str, MetricFunction]) -> str:
    """What runs where (``kpi run --explain``): each pushed source's SQL and parameters (its groups, their
    aggregates over entities and moved rows, its lookups' key checks, its data span), and for a source in a
    database that reads its rows instead, why."""
    pushed, reasons = push_plan(plan, connectors, env, functions)
    lines = []
    for name, source in pushed.items():
        db = source.database
        lines.append(f"source {name} aggregates in {db.dialect} ({db.where()}): only aggregates are read")
        queries = [(f"{grain} x {list(dims)}", query) for (grain, dims), query in source.groups.items()]
        for (grain, dims), by in source.entities.items():
            queries += [(f"{grain} x {list(dims)}, over each {per}", query) for per, query in by.items()]
        for (grain, dims), by in source.lagged.items():
            queries += [(f"{grain} x {list(dims)}, rows moved {lag} days", query) for lag, query in by.items()]
        queries += [(f"lookup {lookup}: a repeated key", query) for lookup, query in source.lookups.items()]
        for title, query in [*queries, ("the data's first and last day, and rows", source.span)]:
            lines.append(f"  -- {title}")
            lines += [f"  {line}" for line in query.pretty.splitlines()]
            if query.params:
                lines.append("  -- parameters: " + ", ".join(f"{k} = {v!r}" for k, v in query.params.items()))
        sp = plan.sources[name]
        for key, why in source.rest.items():
            columns = sorted(sp.narrowed([key]).columns)
            lines.append(f"  -- {key[0]} x {list(key[1])} reads its rows into polars (columns {columns}): {why}")
        if source.matched:
            lines.append(
                f"  -- its rows are read for the conversions that match them (columns {sorted(source.matched)})"
            )
    for name, why in reasons.items():
        lines.append(f"source {name} reads its rows into polars (projected, filtered to the days): {why}")
    return "\n".join(lines)


def type_check(compiler: SqlCompiler) -> Query | None:
    """SQLite lets any column hold any value: a query counting, per column the plan reads, the values
    that are not of its declared type (a time DATE() cannot read, text in a number column). The polars
    path reads and checks each value; pushdown runs only where this finds none. None elsewhere."""
    if compiler.dialect != "sqlite":
        return None
    compiler.params = {}
    checks = []
    for name in sorted(c for c in compiler.sp.columns if c in compiler.sp.schema):
        dtype, col = compiler.sp.schema[name], compiler.column(name)
        kind = exp.Anonymous(this="TYPEOF", expressions=[col])
        if isinstance(dtype, pl.Datetime | pl.Date):
            bad = exp.or_(
                exp.NEQ(this=kind, expression=exp.Literal.string("text")),
                exp.Is(this=exp.Anonymous(this="DATE", expressions=[col]), expression=exp.Null()),
            )
        elif dtype.is_integer() or isinstance(dtype, pl.Boolean):
            bad = exp.NEQ(this=kind, expression=exp.Literal.string("integer"))
        elif dtype.is_float():
            bad = exp.Not(
                this=exp.In(this=kind, expressions=[exp.Literal.string("integer"), exp.Literal.string("real")])
            )
        else:
            continue
        bad = exp.and_(exp.Not(this=exp.Is(this=col, expression=exp.Null())), exp.paren(bad))
        checks.append(
            exp.alias_(exp.Count(this=exp.Case(ifs=[exp.If(this=bad, true=exp.Literal.number(1))])), name, quoted=True)
        )
    if not checks:
        return None
    return compiler.query(exp.select(*checks).from_(compiler.relation))


def span_query(compiler: SqlCompiler, upper: dt.date) -> Query:
    """The data's first and last local day and its row count, up to ``upper`` (the day after as-of): the
    local dates of the first and last times, so that no row's date is computed."""
    compiler.params = {}
    src = exp.alias_(exp.Subquery(this=compiler.rows((None, upper))), "kpi_rows", quoted=True)
    t = compiler.column(compiler.sp.source.time)
    query = exp.select(
        exp.alias_(compiler.local_date(exp.Min(this=t)), "first", quoted=True),
        exp.alias_(compiler.local_date(exp.Max(this=t)), "last", quoted=True),
        exp.alias_(exp.Count(this=exp.Star()), "rows", quoted=True),
    ).from_(src)
    return compiler.query(query)
