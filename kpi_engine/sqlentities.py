"""Aggregates over entities in SQL: one ``GROUP BY period, dimensions, entity`` computing the inner aggregates,
then one ``GROUP BY period, dimensions`` over those rows, as ``compile.entity_query`` does in polars.

``count(customer where count(orders) >= 2)`` becomes a count over per-customer rows; only the outer result
leaves the database. History facts (``new``, ``active(k)``, ``over_next``) are not pushed yet.
"""

from __future__ import annotations

from sqlglot import exp

from . import periods
from .formula import BinOp, Bool, Node, Null, Number, Unary
from .ir import QUANTILES, Agg, Ahead, Conversions, Seen
from .nodes import find_all
from .plan import GroupRequest
from .sqlgen import DATE, PERIOD, NotPushable, Query, SqlCompiler


def entity_queries(compiler: SqlCompiler, group: GroupRequest) -> dict[str, Query]:
    """One query per entity column of the group's aggregates over entities, by that column."""
    by_entity: dict[str, dict[str, Agg]] = {}
    for r in group.aggs.values():
        if r.agg.per is not None and not isinstance(r.agg, Conversions):
            if find_all(r.agg, (Seen, Ahead)):
                raise NotPushable(f"`{r.agg.key}` reads the entity's history (new, active, over_next)")
            if r.agg.lag:
                raise NotPushable(f"`{r.agg.key}` moves rows by days")
            by_entity.setdefault(r.agg.per, {})[r.id] = r.agg
    return {per: _entity_query(compiler, group, per, aggs) for per, aggs in by_entity.items()}


def _entity_query(compiler: SqlCompiler, group: GroupRequest, per: str, aggs: dict[str, Agg]) -> Query:
    compiler.params = {}
    dims = list(group.dims)
    inner: dict[str, tuple[str, Agg]] = {}

    def column_of(agg: Agg) -> exp.Expression:
        if agg.key not in inner:
            inner[agg.key] = (f"e{len(inner)}", agg)
        return exp.column(inner[agg.key][0], quoted=True)

    outer = [exp.alias_(_over_entities(compiler, agg, column_of), name, quoted=True) for name, agg in aggs.items()]
    rows = compiler.rows()
    period = compiler.period(group.grain, exp.column(DATE, quoted=True))
    edges = compiler.edges([agg for _, agg in inner.values()], period, dims, per)
    if edges:  # each entity's own first/last time or day
        rows = exp.select(exp.Star(), *edges).from_(exp.alias_(exp.Subquery(this=rows), "kpi_all", quoted=True))
    src = exp.alias_(exp.Subquery(this=rows), "kpi_rows", quoted=True)
    keys = [exp.alias_(period, PERIOD, quoted=True), *[compiler.dimension(d) for d in dims]]
    who = exp.column(per, quoted=True)
    per_entity = (
        exp.select(
            *keys,
            exp.alias_(who.copy(), "__who", quoted=True),
            *[exp.alias_(compiler.aggregate(agg, edges=True), name, quoted=True) for name, agg in inner.values()],
        )
        .from_(src)
        .where(exp.Not(this=exp.Is(this=who.copy(), expression=exp.Null())))
    )
    if isinstance(group.grain, periods.Span):  # rows outside the span have no period
        per_entity = per_entity.where(exp.Not(this=exp.Is(this=period.copy(), expression=exp.Null())))
    per_entity = per_entity.group_by(*[exp.Literal.number(k + 1) for k in range(len(dims) + 2)])
    entities = exp.alias_(exp.Subquery(this=per_entity), "kpi_entities", quoted=True)
    query = exp.select(exp.column(PERIOD, quoted=True), *[exp.column(d, quoted=True) for d in dims], *outer)
    query = query.from_(entities).group_by(*[exp.Literal.number(k + 1) for k in range(len(dims) + 1)])
    return compiler.query(query)


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
    if isinstance(node, Agg):
        return column_of(node)
    if isinstance(node, Bool):
        return compiler.boolean(node.value)
    if isinstance(node, Number):
        return compiler.value(node.value)
    if isinstance(node, Null):
        return exp.Null()
    if isinstance(node, BinOp):
        return compiler.binary(
            node.op, _entity(compiler, node.left, column_of), _entity(compiler, node.right, column_of)
        )
    if isinstance(node, Unary):
        return compiler.unary(node.op, _entity(compiler, node.operand, column_of))
    raise NotPushable(f"`{type(node).__name__}` over entities has no SQL form yet")
