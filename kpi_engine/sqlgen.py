"""Compiling a source's part of the plan to SQL, for databases that aggregate their own rows (pushdown).

``pushdown`` decides which sources run in their database and runs the queries built here.

Each group of the plan (``group_by(period, *dims)`` with its aggregates and row counts) becomes one SELECT
that returns exactly the columns the polars path computes, so that everything after it (derived groups,
series, targets) is the same code whatever ran the group. The SQL is built as a sqlglot tree and rendered for
the database's dialect: identifiers are quoted by sqlglot and every value from a spec or a run (filter
constants, the time window) is a named parameter, never text pasted into the query.

What a dialect cannot compute exactly as the polars path does raises ``NotPushable`` with the reason; the
engine then reads the source's rows instead and ``--explain`` says why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlglot import exp

from . import periods
from .compile import edge_column, row_dtype
from .dialects import APPROX_DISTINCT, QUANTILE, SHIFT
from .ir import EDGE_SUMS, QUANTILES, Agg, Conversions, kind_of
from .model import Grain
from .plan import GroupRequest
from .sqlrows import DATE, PERIOD, NotPushable, Query, RowCompiler, Value

__all__ = ["DATE", "PERIOD", "NotPushable", "Query", "SqlCompiler", "Value"]

#: the counting aggregates (whatever the value's type)
COUNTS = ("count", "count_distinct", "approx_count_distinct")


def adds_up(agg: exp.Expression) -> bool:
    """Whether per-day values of ``agg`` roll up to any period: a sum of sums or of counts, a min of mins
    (never a distinct count or a percentile)."""
    return isinstance(agg, exp.Sum | exp.Count | exp.Min | exp.Max) and not isinstance(agg.this, exp.Distinct)


class SqlCompiler(RowCompiler):
    """Builds the queries of one source for one dialect: its groups' aggregates over the rows ``RowCompiler``
    reads. ``relation`` is the source's rows (a table or a subquery) as the database sees them."""

    # -- aggregates ---------------------------------------------------------------------------------------
    def aggregate(self, agg: Agg, edges: bool = False, cond: exp.Expression | None = None) -> exp.Expression:
        """One aggregate of a group: the polars path's value for the same rows. ``edges``: the rows carry
        each semi-additive sum's first or last day (``edge_columns``). ``cond``: a filter already in SQL."""
        if isinstance(agg, Conversions):
            raise NotPushable(f"`{agg.key}` matches rows in polars")
        if agg.per is not None:
            raise NotPushable(f"`{agg.key}` aggregates per {agg.entity}: the rows are read")
        if agg.lag:
            raise NotPushable(f"`{agg.key}` moves rows by days")
        if agg.func in self.functions:
            raise NotPushable(f"{agg.func}() is a plugin's function, computed in polars")
        if agg.func in (*EDGE_SUMS, "first", "last") and not edges:
            raise NotPushable(f"{agg.func}() per entity has no SQL form yet")
        if agg.func in ("first", "last"):  # x at the edge time; at the same instant the greater value is last
            at_edge = exp.and_(self.present(agg), exp.EQ(this=self.time(), expression=self.column(edge_column(agg))))
            value = exp.Case(ifs=[exp.If(this=at_edge, true=exp.cast(exp.paren(self.row(agg.args[0])), self.double()))])
            return exp.Min(this=value) if agg.func == "first" else exp.Max(this=value)
        if agg.func not in (*COUNTS, "sum", "min", "max", "median", *QUANTILES, *EDGE_SUMS):
            raise NotPushable(f"{agg.func}() has no SQL form yet")
        cond = self.row(agg.where) if agg.where is not None else cond
        if agg.func in EDGE_SUMS:  # the rows of the period's first or last day: a sum over them, 0 when a
            # dimension value has none that day (polars adds no rows to 0; SQL's SUM of none is NULL)
            on_edge = exp.EQ(this=self.column(DATE), expression=self.column(edge_column(agg)))
            cond = on_edge if cond is None else exp.and_(exp.paren(cond), on_edge)
            total = self.aggregate(dataclasses.replace(agg, func="sum", where=None), edges, cond)
            return exp.Coalesce(this=total, expressions=[exp.Literal.number(0)])

        def masked(value: exp.Expression) -> exp.Expression:
            return value if cond is None else exp.Case(ifs=[exp.If(this=cond, true=value)])

        if not agg.args:  # count(source)
            return exp.Count(this=masked(exp.Literal.number(1)) if cond is not None else exp.Star())
        value = self.row(agg.args[0])
        if kind_of(row_dtype(agg.args[0], self.sp.schema)) == "bool" and agg.func not in COUNTS:
            value = exp.cast(exp.paren(value), "INTEGER")
        if agg.func == "count":
            return exp.Count(this=masked(value))
        if agg.func == "approx_count_distinct" and self.dialect in APPROX_DISTINCT:
            return self.template(APPROX_DISTINCT[self.dialect], x=masked(value))
        if agg.func in ("count_distinct", "approx_count_distinct"):
            return exp.Count(this=exp.Distinct(expressions=[masked(value)]))
        if agg.func == "sum":
            if (
                self.dialect == "spark" and row_dtype(agg.args[0], self.sp.schema).is_integer()
            ):  # exact past 64 bits, as polars
                value = exp.cast(value, "DECIMAL(38, 0)")
            return exp.Sum(this=masked(value))
        if agg.func in ("min", "max"):
            return (exp.Min if agg.func == "min" else exp.Max)(this=masked(value))
        return self.quantile(agg, masked(value))

    def quantile(self, agg: Agg, value: exp.Expression) -> exp.Expression:
        """``median``, ``quantile`` or ``quantile_disc`` of ``value`` in the dialect's exact percentile."""
        q = 0.5 if agg.func == "median" else float(agg.args[1].value)  # type: ignore[attr-defined]
        if agg.func == "quantile_disc" and self.dialect == "spark":  # Spark's exact PERCENTILE_DISC, which
            # sqlglot would render as PERCENTILE_APPROX: built as a function it does not know
            disc = exp.Anonymous(this="PERCENTILE_DISC", expressions=[exp.Literal.number(q)])
            return exp.WithinGroup(this=disc, expression=exp.Order(expressions=[exp.Ordered(this=value)]))
        cont, disc = QUANTILE.get(self.dialect, (None, None))
        form = disc if agg.func == "quantile_disc" else cont
        if form is None:
            kind = "discrete" if agg.func == "quantile_disc" else "exact"
            raise NotPushable(f"{self.dialect} has no {kind} percentile function")
        return self.template(form, x=value, q=exp.Literal.number(q))

    # -- queries ------------------------------------------------------------------------------------------
    def rows(self, days: tuple[dt.date | None, dt.date | None] | None = None) -> exp.Select:
        """The source's rows in the plan's days (or ``days``: [first, until)), each with its local date (the
        subquery every group reads)."""
        t = self.time()
        rows = exp.select(exp.Star(), exp.alias_(self.local_date(), DATE, quoted=True)).from_(self.relation)
        lower, upper = days if days is not None else (self.sp.lower, self.sp.upper)
        for bound, op in ((lower, exp.GTE), (upper, exp.LT)):
            if bound is not None:
                value = self.bound(bound)
                if self.dialect == "sqlite":
                    value = value.strftime("%Y-%m-%d %H:%M:%S")
                rows = rows.where(op(this=t, expression=self.value(value)))
        return rows

    @staticmethod
    def lags(group: GroupRequest) -> list[int]:
        """The day offsets of the group's moved aggregates (``previous(x, 5 days)``), each its own query."""
        return sorted({r.agg.lag for r in group.aggs.values() if r.agg.lag and r.agg.per is None})

    def group(self, group: GroupRequest, lag: int = 0) -> Query:
        """The SELECT of one group: period, dimensions, each aggregate and row count by its id. When every
        aggregate adds up across days (sums, counts, min, max), the rows are first grouped by local date and
        the period is computed once per date, not once per row (``_by_day``). With ``lag``, the aggregates
        moved that many days instead: each row counts in the period of its date ``lag`` days later, and the
        result is joined to the group's (a full join, as the polars path does)."""
        self.params = {}
        dims = list(group.dims)
        inner = self.rows()
        if self.sp.prefilter and not lag:
            inner = inner.where(exp.or_(*[exp.paren(self.row(f)) for f in self.sp.prefilter]))
        day: exp.Expression = self.column(DATE)
        if lag:
            day = self.template(SHIFT[self.dialect]["days"], p=day, n=lag)
        period = self.period(group.grain, day)
        chosen = [  # (over entities: ``sqlentities``; a conversion raises NotPushable in ``aggregate``)
            r for r in group.aggs.values() if (r.agg.per is None or isinstance(r.agg, Conversions)) and r.agg.lag == lag
        ]
        chosen = [dataclasses.replace(r, agg=dataclasses.replace(r.agg, lag=0)) for r in chosen]
        edges = self.edges([r.agg for r in chosen], period, dims)
        if edges:  # window columns: semi-additive sums' days, first/last times
            inner = exp.select(exp.Star(), *edges).from_(exp.alias_(exp.Subquery(this=inner), "kpi_all", quoted=True))
        src = exp.alias_(exp.Subquery(this=inner), "kpi_rows", quoted=True)
        aggs: dict[str, exp.Expression] = {}
        for r in chosen:
            aggs[r.id] = self.aggregate(r.agg, edges=True)
        for i, f in group.row_filters.values() if not lag else ():
            aggs[i] = (
                exp.Count(this=exp.Star())
                if f is None
                else exp.Count(this=exp.Case(ifs=[exp.If(this=self.row(f), true=exp.Literal.number(1))]))
            )
        keys = [self.dimension(d) for d in dims]
        if group.grain != Grain.DAY and all(adds_up(a) for a in aggs.values()):
            src, keys, aggs = self._by_day(src, keys, aggs)
        select = [exp.alias_(period, PERIOD, quoted=True), *keys]
        select += [exp.alias_(a, i, quoted=True) for i, a in aggs.items()]
        query = exp.select(*select).from_(src)
        if isinstance(group.grain, periods.Span):
            query = query.where(exp.Not(this=exp.Is(this=period.copy(), expression=exp.Null())))
        query = query.group_by(*[exp.Literal.number(k + 1) for k in range(len(dims) + 1)])
        return self.query(query)

    def _by_day(
        self, src: exp.Expression, keys: list[exp.Expression], aggs: dict[str, exp.Expression]
    ) -> tuple[exp.Expression, list[exp.Expression], dict[str, exp.Expression]]:
        """The rows grouped by local date and dimensions, each aggregate computed per day (the subquery the
        period is then computed over), with the dimensions and aggregates that roll those days up."""
        names = [k.alias_or_name for k in keys]
        daily = exp.select(self.column(DATE), *keys, *[exp.alias_(a, i, quoted=True) for i, a in aggs.items()])
        daily = daily.from_(src).group_by(*[exp.Literal.number(k + 1) for k in range(len(keys) + 1)])
        rollup = {
            i: (exp.Sum if isinstance(a, exp.Count | exp.Sum) else type(a))(this=self.column(i))
            for i, a in aggs.items()
        }
        return exp.alias_(exp.Subquery(this=daily), "kpi_days", quoted=True), [self.column(n) for n in names], rollup

    def edges(
        self, aggs: list[Agg], period: exp.Expression, dims: list[str], per: str | None = None
    ) -> list[exp.Expression]:
        """Window columns the group's aggregates read: for each semi-additive sum, its first or last day with a
        counted row over the period (never per dimension value, as ``edge_columns``); for ``first(x)`` and
        ``last(x)``, the first or last time with a value of x in the period and dimension values. Inside an
        aggregate over entities (``per``), each entity has its own."""
        entity = [self.column(per)] if per is not None else []
        out = {}
        for agg in aggs:
            if agg.func in EDGE_SUMS:
                day: exp.Expression = self.column(DATE)
                if agg.where is not None:
                    day = exp.Case(ifs=[exp.If(this=self.row(agg.where), true=day)])
                edge = exp.Min(this=day) if agg.func == "sum_first_day" else exp.Max(this=day)
                window = exp.Window(this=edge, partition_by=[period.copy(), *entity])
            elif agg.func in ("first", "last"):
                when = self.present(agg)
                at = exp.Case(ifs=[exp.If(this=when, true=self.time())])
                edge = exp.Min(this=at) if agg.func == "first" else exp.Max(this=at)
                parts = [period.copy(), *[self.dimension(d).unalias() for d in dims], *entity]
                window = exp.Window(this=edge, partition_by=parts)
            else:
                continue
            out[edge_column(agg)] = exp.alias_(window, edge_column(agg), quoted=True)
        return list(out.values())

    def present(self, agg: Agg) -> exp.Expression:
        """The rows ``first(x)``/``last(x)`` read: x present, and the aggregate's filter true."""
        test = exp.Not(this=exp.Is(this=exp.paren(self.row(agg.args[0])), expression=exp.Null()))
        return test if agg.where is None else exp.and_(test, exp.paren(self.row(agg.where)))
