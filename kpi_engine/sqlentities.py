"""Aggregates over entities in SQL: one ``GROUP BY period, dimensions, entity`` computing the inner aggregates,
then one ``GROUP BY period, dimensions`` over those rows, as ``compile.entity_query`` does in polars.

``count(customer where count(orders) >= 2)`` becomes a count over per-customer rows; only the outer result
leaves the database. History facts join those rows as the polars path's ``_with_facts`` and ``_with_ahead``
do: ``new`` from each entity's first row (``ROW_NUMBER``), ``active(k)`` from the distinct periods each
entity has rows in, moved ``k`` periods, and ``over_next`` from its per-period aggregates, spread over the
periods before.
"""

from __future__ import annotations

from sqlglot import exp

from . import periods
from .compile import is_integer
from .formula import BinOp, Bool, Node, Null, Number, Unary
from .ir import QUANTILES, Agg, Ahead, Conversions, Seen, periods_ahead
from .nodes import find_all
from .plan import GroupRequest, as_of_end
from .sqlgen import DATE, PERIOD, NotPushable, Query, SqlCompiler


def entity_queries(compiler: SqlCompiler, group: GroupRequest) -> dict[str, Query]:
    """One query per entity column of the group's aggregates over entities, by that column."""
    by_entity: dict[str, dict[str, Agg]] = {}
    for r in group.aggs.values():
        if r.agg.per is not None and not isinstance(r.agg, Conversions):
            if r.agg.lag:
                raise NotPushable(f"`{r.agg.key}` moves rows by days")
            by_entity.setdefault(r.agg.per, {})[r.id] = r.agg
    return {per: _entity_query(compiler, group, per, aggs) for per, aggs in by_entity.items()}


def _entity_query(compiler: SqlCompiler, group: GroupRequest, per: str, aggs: dict[str, Agg]) -> Query:
    compiler.params = {}
    dims = list(group.dims)
    inner: dict[str, tuple[str, Agg]] = {}

    found = [a for agg in aggs.values() for a in find_all(agg, Ahead)]
    aheads = {(a.agg.key, a.periods): (f"__ahead{n}", a) for n, a in enumerate(found)}

    def column_of(node: Agg | Seen | Ahead) -> exp.Expression:
        if isinstance(node, Seen):
            return exp.column("__new" if node.kind == "new" else f"__active{node.offset}", quoted=True)
        if isinstance(node, Ahead):
            return exp.column(aheads[(node.agg.key, node.periods)][0], quoted=True)
        if node.key not in inner:
            inner[node.key] = (f"e{len(inner)}", node)
        return exp.column(inner[node.key][0], quoted=True)

    outer = [exp.alias_(_over_entities(compiler, agg, column_of), name, quoted=True) for name, agg in aggs.items()]
    rows = compiler.rows()
    period = compiler.period(group.grain, exp.column(DATE, quoted=True))
    edges = compiler.edges([agg for _, agg in inner.values()], period, dims, per)
    if edges:  # each entity's own first/last time or day
        rows = exp.select(exp.Star(), *edges).from_(exp.alias_(exp.Subquery(this=rows), "kpi_all", quoted=True))
    src = exp.alias_(exp.Subquery(this=rows), "kpi_rows", quoted=True)
    keys = [exp.alias_(period, PERIOD, quoted=True), *[compiler.dimension(d) for d in dims]]
    who = compiler.entity(per)
    per_entity = (
        exp.select(
            *keys,
            exp.alias_(who.copy(), "__who", quoted=True),
            *[exp.alias_(_per_entity(compiler, agg), name, quoted=True) for name, agg in inner.values()],
        )
        .from_(src)
        .where(exp.Not(this=exp.Is(this=who.copy(), expression=exp.Null())))
    )
    if isinstance(group.grain, periods.Span):  # rows outside the span have no period
        per_entity = per_entity.where(exp.Not(this=exp.Is(this=period.copy(), expression=exp.Null())))
    per_entity = per_entity.group_by(*[exp.Literal.number(k + 1) for k in range(len(dims) + 2)])
    facts = {f for agg in aggs.values() for f in find_all(agg, Seen)}
    if facts or aheads:
        per_entity = _with_history(compiler, group, per, per_entity, facts, list(aheads.values()))
    entities = exp.alias_(exp.Subquery(this=per_entity), "kpi_entities", quoted=True)
    for k, (name, agg) in enumerate(aggs.items()):  # active(k), over_next(x, k + 1): unknown until the
        ahead = periods_ahead(agg)  # period k later is over
        if ahead > 0:
            later = compiler.shift(exp.column(PERIOD, quoted=True), group.grain, ahead + 1)
            known = exp.LTE(this=later, expression=compiler.value(as_of_end(compiler.plan)))
            outer[k] = exp.alias_(exp.Case(ifs=[exp.If(this=known, true=outer[k].unalias())]), name, quoted=True)
    query = exp.select(exp.column(PERIOD, quoted=True), *[exp.column(d, quoted=True) for d in dims], *outer)
    query = query.from_(entities).group_by(*[exp.Literal.number(k + 1) for k in range(len(dims) + 1)])
    return compiler.query(query)


def _per_entity(compiler: SqlCompiler, agg: Agg) -> exp.Expression:
    """An entity's own aggregate; a sum of none or of nulls only is 0, as in polars (SQL's SUM gives NULL,
    which would drop the entity from a quantile or a mean over the entities)."""
    value = compiler.aggregate(agg, edges=True)
    return exp.Coalesce(this=value, expressions=[exp.Literal.number(0)]) if agg.func == "sum" else value


ME = "kpi_me"  # the per-entity rows, in the query that joins their history facts


def _mine(name: str) -> exp.Column:
    return exp.column(name, table=ME, quoted=True)


def _same_entity_and_period(alias: str) -> exp.Expression:
    """The join of a per-(entity, period) table to the per-entity rows."""
    return exp.and_(
        exp.EQ(this=exp.column("__who", table=alias, quoted=True), expression=_mine("__who")),
        exp.EQ(this=exp.column("__p", table=alias, quoted=True), expression=_mine(PERIOD)),
    )


def _with_history(
    compiler: SqlCompiler,
    group: GroupRequest,
    per: str,
    per_entity: exp.Select,
    facts: set[Seen],
    aheads: list[tuple[str, Ahead]],
) -> exp.Select:
    """The per-entity rows with a column per history fact (``__new``, ``__active{k}``, true or false) and per
    ``over_next`` (``__ahead{n}``, 0 when none), read from the entity's whole history up to as-of."""
    who = compiler.entity(per)
    history = compiler.rows().where(exp.Not(this=exp.Is(this=who.copy(), expression=exp.Null())))
    rows = exp.alias_(exp.Subquery(this=history), "kpi_history", quoted=True)
    parts = []
    if any(f.kind == "new" for f in facts):
        parts.append(_new(compiler, group, who, rows))
    for k in sorted({f.offset for f in facts if f.kind == "active"}):
        parts.append(_active(compiler, group, who, rows, k))
    for name, ahead in aheads:
        parts.append(_ahead(compiler, group, who, rows, name, ahead))
    query = exp.select(exp.column(exp.Star(), table=ME), *[column for _, _, column in parts])
    query = query.from_(exp.alias_(exp.Subquery(this=per_entity), ME, quoted=True))
    for table, on, _ in parts:
        query = query.join(table, on=on, join_type="left")
    return query


Part = tuple[exp.Expression, exp.Expression, exp.Expression]  # a table to join, on what, the column it gives


def _new(compiler: SqlCompiler, group: GroupRequest, who: exp.Column, rows: exp.Expression) -> Part:
    """``__new``: the entity's first row (by time, then dimension values) falls in this period, under these
    dimension values (its acquisition channel)."""
    dims = list(group.dims)
    order = [exp.Ordered(this=compiler.time(), nulls_first=True)]
    order += [exp.Ordered(this=compiler.dimension(d).unalias(), nulls_first=True) for d in dims]
    rank = exp.Window(this=exp.RowNumber(), partition_by=[who.copy()], order=exp.Order(expressions=order))
    ranked = exp.select(
        exp.alias_(who.copy(), "__who", quoted=True),
        exp.alias_(exp.column(DATE, quoted=True), "__first", quoted=True),
        *[exp.alias_(compiler.dimension(d).unalias(), f"__first{i}", quoted=True) for i, d in enumerate(dims)],
        exp.alias_(rank, "__rank", quoted=True),
    ).from_(rows.copy())
    first = exp.select("*").from_(exp.alias_(exp.Subquery(this=ranked), "kpi_ranked", quoted=True))
    first = first.where(exp.EQ(this=exp.column("__rank", quoted=True), expression=exp.Literal.number(1)))
    on = exp.EQ(this=exp.column("__who", table="kpi_first", quoted=True), expression=_mine("__who"))
    new: exp.Expression = exp.EQ(
        this=compiler.period(group.grain, exp.column("__first", table="kpi_first", quoted=True)),
        expression=_mine(PERIOD),
    )
    for i, d in enumerate(dims):
        same = exp.NullSafeEQ(this=_mine(d), expression=exp.column(f"__first{i}", table="kpi_first", quoted=True))
        new = exp.and_(new, same)
    table = exp.alias_(exp.Subquery(this=first), "kpi_first", quoted=True)
    return table, on, exp.alias_(_true_or_false(compiler, new), "__new", quoted=True)


def _active(compiler: SqlCompiler, group: GroupRequest, who: exp.Column, rows: exp.Expression, k: int) -> Part:
    """``__active{k}``: the entity has rows ``k`` periods after this one (the periods it has rows in, moved
    ``k`` back)."""
    alias = f"kpi_active{k}".replace("-", "m")
    moved = compiler.shift(compiler.period(group.grain, exp.column(DATE, quoted=True)), group.grain, -k)
    seen = exp.select(exp.alias_(who.copy(), "__who", quoted=True), exp.alias_(moved, "__p", quoted=True))
    seen = seen.from_(rows.copy()).distinct()
    found = exp.Not(this=exp.Is(this=exp.column("__who", table=alias, quoted=True), expression=exp.Null()))
    table = exp.alias_(exp.Subquery(this=seen), alias, quoted=True)
    return (
        table,
        _same_entity_and_period(alias),
        exp.alias_(_true_or_false(compiler, found), f"__active{k}", quoted=True),
    )


def _ahead(
    compiler: SqlCompiler, group: GroupRequest, who: exp.Column, rows: exp.Expression, name: str, ahead: Ahead
) -> Part:
    """``over_next(x, n)``: the entity's x per period, spread over the ``n - 1`` periods before it, summed."""
    each = (
        exp.select(
            exp.alias_(who.copy(), "__who", quoted=True),
            exp.alias_(compiler.period(group.grain, exp.column(DATE, quoted=True)), "__p", quoted=True),
            exp.alias_(exp.cast(compiler.aggregate(ahead.agg), compiler.double()), "__v", quoted=True),
        )
        .from_(rows.copy())
        .group_by(exp.Literal.number(1), exp.Literal.number(2))
    )
    each_rows = exp.alias_(exp.Subquery(this=each), "kpi_each", quoted=True)
    spread: exp.Expression | None = None
    for j in range(ahead.periods):
        moved = exp.select(
            exp.column("__who", quoted=True),
            exp.alias_(compiler.shift(exp.column("__p", quoted=True), group.grain, -j), "__p", quoted=True),
            exp.column("__v", quoted=True),
        ).from_(each_rows.copy())
        spread = moved if spread is None else exp.union(spread, moved, distinct=False)
    total = exp.select(
        exp.column("__who", quoted=True),
        exp.column("__p", quoted=True),
        exp.alias_(exp.Sum(this=exp.column("__v", quoted=True)), "__v", quoted=True),
    ).from_(exp.alias_(exp.Subquery(this=spread), "kpi_spread", quoted=True))
    total = total.group_by(exp.Literal.number(1), exp.Literal.number(2))
    alias = f"kpi_{name.strip('_')}"
    value = exp.Coalesce(this=exp.column("__v", table=alias, quoted=True), expressions=[exp.Literal.number(0)])
    table = exp.alias_(exp.Subquery(this=total), alias, quoted=True)
    return table, _same_entity_and_period(alias), exp.alias_(value, name, quoted=True)


def _true_or_false(compiler: SqlCompiler, test: exp.Expression) -> exp.Expression:
    """A boolean column that is never null (a fact the entity does not have is false)."""
    return exp.Case(ifs=[exp.If(this=test, true=compiler.boolean(True))], default=compiler.boolean(False))


def _over_entities(compiler: SqlCompiler, agg: Agg, column_of) -> exp.Expression:  # type: ignore[no-untyped-def]
    """The outer aggregate over one row per entity (the polars path's ``_over_entities``)."""
    cond = _entity(compiler, agg.where, column_of) if agg.where is not None else None
    if agg.func == "count":
        counted = (
            exp.Not(this=exp.Is(this=_entity(compiler, agg.args[0], column_of), expression=exp.Null()))
            if agg.args
            else None
        )
        test = exp.and_(counted, exp.paren(cond)) if counted is not None and cond is not None else counted or cond
        if test is None:
            return exp.Count(this=exp.Star())
        return exp.Count(this=exp.Case(ifs=[exp.If(this=test, true=exp.Literal.number(1))]))
    value: exp.Expression = exp.cast(exp.paren(_entity(compiler, agg.args[0], column_of)), compiler.double())
    if cond is not None:
        value = exp.Case(ifs=[exp.If(this=cond, true=value)])
    if agg.func == "sum":
        return exp.Sum(this=value)
    if agg.func == "mean":
        return exp.Div(
            this=exp.Sum(this=value),
            expression=exp.Nullif(this=exp.Count(this=value.copy()), expression=exp.Literal.number(0)),
        )
    if agg.func in ("min", "max"):
        return (exp.Min if agg.func == "min" else exp.Max)(this=value)
    if agg.func == "median" or agg.func in QUANTILES:
        return compiler.quantile(agg, value)
    raise NotPushable(f"{agg.func}() over entities has no SQL form yet")


def _entity(compiler: SqlCompiler, node: Node, column_of) -> exp.Expression:  # type: ignore[no-untyped-def]
    """An entity-level expression over the per-entity columns of its inner aggregates."""
    if isinstance(node, Agg | Seen | Ahead):
        return column_of(node)
    if isinstance(node, Bool):
        return compiler.boolean(node.value)
    if isinstance(node, Number):
        return compiler.value(node.value)
    if isinstance(node, Null):
        return exp.Null()
    if isinstance(node, BinOp):
        left, right = _entity(compiler, node.left, column_of), _entity(compiler, node.right, column_of)
        if node.op == "%":
            schemas = {compiler.sp.source.name: compiler.sp.schema}
            integer = is_integer(node.left, schemas) and is_integer(node.right, schemas)
            return compiler.modulo(left, right, integer)
        return compiler.binary(node.op, left, right)
    if isinstance(node, Unary):
        return compiler.unary(node.op, _entity(compiler, node.operand, column_of))
    raise NotPushable(f"`{type(node).__name__}` over entities has no SQL form yet")
