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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import sqlglot
from sqlglot import exp

from . import periods
from .compile import edge_column, row_dtype
from .dialects import APPROX_DISTINCT, DATE_PARTS, LOCAL_DATE, LOCAL_HOUR, PERIOD_START, QUANTILE, SECONDS, SHIFT
from .formula import BinOp, Bool, Call, Column, InList, IsNull, Node, Null, Number, String, Unary
from .ir import DURATION_FUNCS, EDGE_SUMS, QUANTILES, Agg, Conversions, MetricFunction, kind_of
from .model import MONTHS_PER, Calendar, Grain
from .plan import GroupRequest, Plan, SourcePlan
from .timeparse import TimeOptions

PERIOD = "__period"
DATE = "__date"


@dataclass(frozen=True)
class Value:
    """A value for a template slot: it becomes a parameter."""

    value: Any


#: the counting aggregates (whatever the value's type)
COUNTS = ("count", "count_distinct", "approx_count_distinct")


def adds_up(agg: exp.Expression) -> bool:
    """Whether per-day values of ``agg`` roll up to any period: a sum of sums or of counts, a min of mins
    (never a distinct count or a percentile)."""
    return isinstance(agg, exp.Sum | exp.Count | exp.Min | exp.Max) and not isinstance(agg.this, exp.Distinct)


class NotPushable(Exception):  # noqa: N818 - a reason, not a failure
    """Why a group cannot run in its database: the engine reads the source's rows instead."""


@dataclass
class Query:
    """One rendered query and its parameters (named, in the dialect's placeholder style)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    pretty: str = ""  # the same query laid out for reading (``--explain``)


class SqlCompiler:
    """Builds the queries of one source for one dialect. ``relation`` is the source's rows (a table or a
    subquery) as the database sees them; ``schema`` their columns as polars reads them."""

    def __init__(
        self,
        dialect: str,
        sp: SourcePlan,
        plan: Plan,
        relation: exp.Expression,
        functions: Mapping[str, MetricFunction],
    ) -> None:
        self.dialect, self.sp, self.plan, self.relation, self.functions = dialect, sp, plan, relation, functions
        self.params: dict[str, Any] = {}

    # -- values and templates ---------------------------------------------------------------------------
    def value(self, v: object) -> exp.Expression:
        """A parameter holding ``v`` (a spec's or run's value: never pasted into the SQL text)."""
        name = f"p{len(self.params)}"
        self.params[name] = v
        return exp.Placeholder(this=name)

    def template(self, text: str, **parts: exp.Expression | int | Value) -> exp.Expression:
        """A dialect-specific snippet with ``:name`` slots filled by expressions, engine integers, or values
        (parameters, made only for the slots the snippet has)."""
        tree = sqlglot.parse_one(text, read="postgres" if self.dialect == "duckdb" else self.dialect)
        filled: dict[str, exp.Expression] = {}
        for name, part in parts.items():
            if f":{name}" not in text:
                continue
            if isinstance(part, Value):
                filled[name] = self.value(part.value)
            else:
                filled[name] = exp.Literal.number(part) if isinstance(part, int) else part
        return exp.replace_placeholders(tree, **filled)

    def dimension(self, name: str) -> exp.Expression:
        """A dimension: a column, or a part of each row's local date (``time.weekday``) under its name."""
        if not name.startswith(periods.TIME_PART):
            return self.column(name)
        part = name.removeprefix(periods.TIME_PART)
        if part == "hour" and isinstance(self.sp.schema[self.sp.source.time], pl.Date):
            return exp.alias_(exp.Null(), name, quoted=True)  # a date has no hour
        if part == "hour":
            return exp.alias_(self.local(LOCAL_HOUR), name, quoted=True)
        form = DATE_PARTS.get(self.dialect, {}).get(part)
        if form is None:
            raise NotPushable(f"`{name}` has no {self.dialect} form yet")
        return exp.alias_(self.template(form, d=self.column(DATE)), name, quoted=True)

    def double(self) -> str:
        """The dialect's name of a 64-bit float type (PostgreSQL's DOUBLE is DOUBLE PRECISION)."""
        return "DOUBLE PRECISION" if self.dialect == "postgres" else "DOUBLE"

    @staticmethod
    def column(name: str) -> exp.Column:
        """A column by name, quoted (any name a source has is safe)."""
        return exp.column(name, quoted=True)

    # -- time ---------------------------------------------------------------------------------------------
    def local_date(self, t: exp.Expression | None = None) -> exp.Expression:
        """The local date of each row in the spec's time zone, as the polars path computes it; or of ``t``, an
        expression of the time column's type (its MIN, say: local dates keep the order of instants)."""
        return self.local(LOCAL_DATE, t)

    def local(self, forms: Mapping[str, Mapping[str, str]], t: exp.Expression | None = None) -> exp.Expression:
        """A local date or time part of each row (or of ``t``) by the dialect's form in ``forms``
        (``LOCAL_DATE``, ``LOCAL_HOUR``): for a UTC timestamp, a naive one stored in a zone, or an aware one."""
        source, tz = self.sp.source, self.plan.calendar.timezone
        dtype = self.sp.schema[source.time]
        opts = TimeOptions.of(source.options)
        if opts.formats or opts.unit:
            raise NotPushable("the time column is read with time_format or time_unit")
        t = self.column(source.time) if t is None else t
        if isinstance(dtype, pl.Date):
            return t
        if not isinstance(dtype, pl.Datetime):
            raise NotPushable(f"the time column `{source.time}` is {dtype}, not a timestamp or date")
        by_kind = forms.get(self.dialect, {})
        stored = opts.zone or "UTC"  # the zone of naive timestamps
        if dtype.time_zone is not None:
            kind = "aware" if "aware" in by_kind else None
        else:
            kind = "utc" if stored == tz == "UTC" else "naive" if "naive" in by_kind else None
        if kind is None:
            raise NotPushable(f"{self.dialect} cannot convert times to the time zone {tz}")
        return self.template(by_kind[kind], t=t, tz=Value(tz), stored=Value(stored))

    def bound(self, day: dt.date) -> Any:
        """The first instant of local ``day``, as a value comparable with the time column."""
        dtype = self.sp.schema[self.sp.source.time]
        if isinstance(dtype, pl.Date):
            return day
        instant = periods.local_midnight(day, self.plan.calendar.timezone)
        if dtype.time_zone is not None:  # type: ignore[attr-defined]
            return instant
        stored = TimeOptions.of(self.sp.source.options).zone or "UTC"
        return instant.astimezone(ZoneInfo(stored)).replace(tzinfo=None)

    def period(self, grain: periods.Period, d: exp.Expression) -> exp.Expression:
        """The start of the period holding local date ``d``."""
        if isinstance(grain, periods.Span):
            inside = exp.Between(this=d, low=self.value(grain.start), high=self.value(grain.end))
            return exp.Case(ifs=[exp.If(this=inside, true=self.value(grain.start))])
        if not isinstance(grain, Grain):
            raise NotPushable(f"`window: {grain.window}` periods are computed from the rows")  # type: ignore[union-attr]
        cal: Calendar = self.plan.calendar
        form = PERIOD_START[self.dialect][grain]
        return self.template(form, d=d, start=cal.week_start, shift=cal.fiscal_year_start - 1)

    def shift(self, start: exp.Expression, grain: periods.Period, n: int) -> exp.Expression:
        """The start of the period ``n`` periods after the one starting at ``start`` (``periods.shift_expr``):
        null for a custom span, which has no neighbours."""
        grain = periods.base(grain)
        if isinstance(grain, periods.Span):
            return exp.cast(exp.Null(), "DATE")
        if not isinstance(grain, Grain):
            raise NotPushable(f"`window: {grain.window}` periods are computed from the rows")  # type: ignore[union-attr]
        days = {Grain.DAY: 1, Grain.WEEK: 7}.get(grain)
        form = SHIFT[self.dialect]["days" if days else "months"]
        return self.template(form, p=start, n=n * (days or MONTHS_PER[grain]))

    # -- row-level expressions ---------------------------------------------------------------------------
    def row(self, node: Node) -> exp.Expression:
        """A row-level formula node as SQL, with the polars path's null rules (x / 0 is null)."""
        if isinstance(node, Column):
            return self.column(node.column)
        if isinstance(node, Bool):
            return self.boolean(node.value)
        if isinstance(node, Number | String):
            return self.value(node.value)
        if isinstance(node, Call) and node.func in ("date", "datetime"):
            text = node.args[0].value  # type: ignore[attr-defined]
            return self.value(dt.date.fromisoformat(text) if node.func == "date" else dt.datetime.fromisoformat(text))
        if isinstance(node, Null):
            return exp.Null()
        if isinstance(node, BinOp):
            return self._binary(node)
        if isinstance(node, Unary):
            return self.unary(node.op, self.row(node.operand))
        if isinstance(node, IsNull):
            test = exp.Is(this=self.row(node.operand), expression=exp.Null())
            return exp.Not(this=test) if node.negated else test
        if isinstance(node, InList):
            return self._in(node)
        if isinstance(node, Call):
            return self._call(node)
        raise NotPushable(f"`{type(node).__name__}` has no SQL form yet")

    def boolean(self, value: bool) -> exp.Expression:
        """A boolean constant (SQLite has none: 1 or 0)."""
        return exp.Boolean(this=value) if self.dialect != "sqlite" else exp.Literal.number(int(value))

    @staticmethod
    def unary(op: str, inner: exp.Expression) -> exp.Expression:
        """``not x`` or ``-x``."""
        return exp.Not(this=exp.paren(inner)) if op == "not" else exp.Neg(this=exp.paren(inner))

    def _binary(self, node: BinOp) -> exp.Expression:
        return self.binary(node.op, self.row(node.left), self.row(node.right))

    def binary(self, op: str, left: exp.Expression, right: exp.Expression) -> exp.Expression:
        """``left op right`` with the polars path's rules: a true division, null when dividing by zero."""
        left, right = exp.paren(left), exp.paren(right)
        if op == "/":  # a true division (integers too), null when dividing by zero
            num = exp.cast(left, self.double())
            return exp.Div(this=num, expression=exp.Nullif(this=right, expression=exp.Literal.number(0)))
        if op == "%":
            zero = exp.NEQ(this=right, expression=exp.Literal.number(0))
            return exp.Case(ifs=[exp.If(this=zero, true=exp.Mod(this=left, expression=right))])
        ops = {
            "+": exp.Add,
            "-": exp.Sub,
            "*": exp.Mul,
            "==": exp.EQ,
            "!=": exp.NEQ,
            "<": exp.LT,
            "<=": exp.LTE,
            ">": exp.GT,
            ">=": exp.GTE,
            "and": exp.And,
            "or": exp.Or,
        }
        return ops[op](this=left, expression=right)

    def _in(self, node: InList) -> exp.Expression:
        inner = self.row(node.operand)
        values = [self.row(i) for i in node.items if not isinstance(i, Null)]
        test: exp.Expression = exp.In(this=inner, expressions=values) if values else exp.false()
        if any(isinstance(i, Null) for i in node.items):
            test = exp.Or(this=exp.paren(test), expression=exp.Is(this=inner, expression=exp.Null()))
        return exp.Not(this=exp.paren(test)) if node.negated else test

    def _call(self, node: Call) -> exp.Expression:
        args = [self.row(a) for a in node.args]
        if node.func in DURATION_FUNCS:
            form = SECONDS.get(self.dialect)
            if form is None:
                raise NotPushable(f"{self.dialect} has no interval type for {node.func}()")
            arg = node.args[0]
            if ":a" in form and not (isinstance(arg, BinOp) and arg.op == "-"):
                raise NotPushable(f"{self.dialect} takes {node.func}() of a difference of two times only")
            parts = (self.row(arg.left), self.row(arg.right)) if ":a" in form else (args[0], args[0])  # type: ignore[union-attr]
            seconds = self.template(form, x=args[0], a=parts[0], b=parts[1])
            return exp.Div(
                this=exp.cast(seconds, self.double()),
                expression=exp.Literal.number(DURATION_FUNCS[node.func]),
            )
        if node.func == "abs":
            return exp.Abs(this=args[0])
        if node.func == "round":
            digits = int(node.args[1].value) if len(node.args) > 1 else 0  # type: ignore[attr-defined]
            return exp.Round(
                this=exp.cast(args[0], self.double()),
                decimals=exp.Literal.number(digits),
            )
        if node.func == "coalesce":
            return exp.Coalesce(this=args[0], expressions=args[1:])
        raise NotPushable(f"{node.func}() has no SQL form yet")

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
        cont, disc = QUANTILE.get(self.dialect, (None, None))
        form = disc if agg.func == "quantile_disc" else cont
        if form is None:
            kind = "discrete" if agg.func == "quantile_disc" else "exact"
            raise NotPushable(f"{self.dialect} has no {kind} percentile function")
        q = 0.5 if agg.func == "median" else float(agg.args[1].value)  # type: ignore[attr-defined]
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

    def time(self) -> exp.Expression:
        """The source's time column, comparable as stored (SQLite's text as its own UTC form)."""
        t: exp.Expression = self.column(self.sp.source.time)
        return exp.Anonymous(this="DATETIME", expressions=[t]) if self.dialect == "sqlite" else t

    def query(self, tree: exp.Expression) -> Query:
        """The rendered query with the parameters made for it, and its text laid out for ``--explain``."""
        return Query(self.render(tree), dict(self.params), tree.sql(dialect=self.dialect, pretty=True))

    def render(self, query: exp.Expression) -> str:
        """The query's text in the dialect; for PostgreSQL's driver, whose placeholders are ``%(name)s``, a
        ``%`` that is not one (modulo, or in the source's own SQL) is doubled."""
        sql = query.sql(dialect=self.dialect)
        return re.sub(r"%(?!\()", "%%", sql) if self.dialect == "postgres" else sql
