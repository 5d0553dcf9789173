"""Row-level SQL for pushdown: values as parameters, dialect snippets, each row's local date and time parts,
and the formula's row expressions with the polars path's null rules. ``sqlgen`` builds the aggregates and
queries on top of it."""

from __future__ import annotations

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
from .compile import INT_TYPES, row_dtype
from .connectors import Collated
from .dialects import BYTEWISE, DATE_PARTS, LOCAL_DATE, LOCAL_HOUR, PERIOD_START, SECONDS, SHIFT
from .formula import BinOp, Bool, Call, Column, InList, IsNull, Node, Null, Number, String, Unary
from .ir import DURATION_FUNCS, MetricFunction
from .model import MONTHS_PER, Calendar, Grain
from .plan import Plan, SourcePlan
from .timeparse import TimeOptions

PERIOD = "__period"
DATE = "__date"


@dataclass(frozen=True)
class Value:
    """A value for a template slot: it becomes a parameter."""

    value: Any


class NotPushable(Exception):  # noqa: N818 - a reason, not a failure
    """Why a group cannot run in its database: the engine reads the source's rows instead."""


@dataclass
class Query:
    """One rendered query and its parameters (named, in the dialect's placeholder style)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    pretty: str = ""  # the same query laid out for reading (``--explain``)


def snippet(dialect: str, text: str) -> exp.Expression:
    """A dialect's SQL snippet with ``:name`` slots, parsed (DuckDB's as PostgreSQL's, whose syntax they share)."""
    return sqlglot.parse_one(text, read="postgres" if dialect == "duckdb" else dialect)


def bytewise(dialect: str, text: exp.Expression) -> exp.Expression:
    """``text`` compared, grouped and counted by its UTF-8 bytes, as in polars, whatever the collation of its
    column or database (``dialects.BYTEWISE``)."""
    form = BYTEWISE.get(dialect)
    return text if form is None else exp.replace_placeholders(snippet(dialect, form), x=text)


class RowCompiler:
    """Row-level SQL of one source for one dialect. ``relation`` is the source's rows (a table or a
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
        #: the text columns the database does not compare by their bytes (``by_bytes``)
        self.collated = Collated()

    # -- values and templates ---------------------------------------------------------------------------
    def value(self, v: object) -> exp.Expression:
        """A parameter holding ``v`` (a spec's or run's value: never pasted into the SQL text)."""
        name = f"p{len(self.params)}"
        self.params[name] = v
        return exp.Placeholder(this=name)

    def template(self, text: str, **parts: exp.Expression | int | Value) -> exp.Expression:
        """A dialect-specific snippet with ``:name`` slots filled by expressions, engine integers, or values
        (parameters, made only for the slots the snippet has)."""
        tree = snippet(self.dialect, text)
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
        """A dimension: a column (text grouped by its bytes), or a part of each row's local date
        (``time.weekday``) under its name."""
        if not name.startswith(periods.TIME_PART):
            column = self.column(name)
            return exp.alias_(self.bytewise(column), name, quoted=True) if self.by_bytes(name, key=True) else column
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

    def is_text(self, name: str) -> bool:
        """Whether the source's column ``name`` holds text."""
        return self.sp.schema.get(name) == pl.String

    def bytewise(self, text: exp.Expression) -> exp.Expression:
        """``text`` compared by its bytes in this dialect (``bytewise``)."""
        return bytewise(self.dialect, text)

    def entity(self, name: str) -> exp.Expression:
        """Entity column ``name``: text entities are told apart by their bytes, as in polars."""
        column = self.column(name)
        return self.bytewise(column) if self.by_bytes(name, key=True) else column

    def by_bytes(self, name: str, key: bool = False) -> bool:
        """Whether column ``name`` needs ``bytewise`` in SQL: text, in a dialect that has it, unless the
        database says its collation compares it by bytes already; as a ``key`` (a dimension, an entity), in
        equality only."""
        return self.is_text(name) and self.dialect in BYTEWISE and self.collated.differs(name, key)

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
            column = self.column(node.column)
            return self.bytewise(column) if self.by_bytes(node.column) else column
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
        if node.op == "%":
            integer = isinstance(row_dtype(node, self.sp.schema), INT_TYPES)
            return self.modulo(self.row(node.left), self.row(node.right), integer)
        return self.binary(node.op, self.row(node.left), self.row(node.right))

    def modulo(self, left: exp.Expression, right: exp.Expression, integer: bool) -> exp.Expression:
        """``left % right`` with the polars path's rule: the remainder takes the divisor's sign (``-7 % 3`` is
        2, as in Python), null when dividing by zero. SQL's ``%`` takes the dividend's sign, and PostgreSQL
        has none for floats: integers go round it twice, floats subtract the floored quotient."""
        left, right = exp.paren(left), exp.paren(right)
        divisor = exp.Nullif(this=right, expression=exp.Literal.number(0))
        if integer:
            once = exp.Add(this=exp.Mod(this=left, expression=divisor), expression=right)
            return exp.Mod(this=exp.paren(once), expression=right)
        quotient = exp.Floor(this=exp.Div(this=exp.cast(left, self.double()), expression=divisor))
        return exp.Sub(this=left, expression=exp.Mul(this=right, expression=quotient))

    def binary(self, op: str, left: exp.Expression, right: exp.Expression) -> exp.Expression:
        """``left op right`` with the polars path's rules: a true division, null when dividing by zero (``%``:
        ``modulo``)."""
        left, right = exp.paren(left), exp.paren(right)
        if op == "/":  # a true division (integers too), null when dividing by zero
            num = exp.cast(left, self.double())
            return exp.Div(this=num, expression=exp.Nullif(this=right, expression=exp.Literal.number(0)))
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
            difference = isinstance(arg, BinOp) and arg.op == "-"
            if ":a" in form and not difference:
                raise NotPushable(f"{self.dialect} takes {node.func}() of a difference of two times only")
            parts = (args[0], args[0])
            if difference:
                sides = (arg.left, arg.right)  # type: ignore[union-attr]
                parts = (self.row(sides[0]), self.row(sides[1]))
                if any(isinstance(row_dtype(side, self.sp.schema), pl.Date) for side in sides):
                    # as timestamps: two DATEs subtract to a number of days, not an interval
                    parts = (exp.cast(parts[0], "TIMESTAMP"), exp.cast(parts[1], "TIMESTAMP"))
                    args[0] = exp.Sub(this=parts[0], expression=parts[1])
            seconds = self.template(form, x=args[0], a=parts[0], b=parts[1])
            return exp.Div(
                this=exp.cast(seconds, self.double()),
                expression=exp.Literal.number(DURATION_FUNCS[node.func]),
            )
        if node.func == "abs":
            return exp.Abs(this=args[0])
        if node.func == "round":
            digits = int(node.args[1].value) if len(node.args) > 1 else 0  # type: ignore[attr-defined]
            return self.round(args[0], digits)
        if node.func == "coalesce":
            return exp.Coalesce(this=args[0], expressions=args[1:])
        raise NotPushable(f"{node.func}() has no SQL form yet")

    def round(self, x: exp.Expression, digits: int) -> exp.Expression:
        """``compile.round_decimal`` in SQL: half away from zero on the 15-digit decimal form. PostgreSQL's
        numeric cast and SQLite's ROUND work that way; elsewhere the value is first rounded to 15 significant
        digits (Spark's ROUND reads a double's shortest form: 7.034999999999999, not 7.035)."""
        number = exp.cast(x, self.double())
        scale = exp.Literal.number(10 ** abs(digits))
        if self.dialect in ("postgres", "sqlite"):
            if digits >= 0:
                return exp.Round(this=number, decimals=exp.Literal.number(digits))
            # (SQLite takes negative digits as 0)
            tens = exp.Round(this=exp.Div(this=number, expression=scale), decimals=exp.Literal.number(0))
            return exp.Mul(this=tens, expression=scale)
        y = exp.paren(exp.Mul(this=number, expression=scale) if digits >= 0 else exp.Div(this=number, expression=scale))
        whole = exp.Round(this=self._significant(y), decimals=exp.Literal.number(0))
        return exp.Div(this=whole, expression=scale) if digits >= 0 else exp.Mul(this=whole, expression=scale)

    def _significant(self, y: exp.Expression) -> exp.Expression:
        """``y`` rounded to 15 significant digits where that can move it across a half (0.4 <= |y| < 1e15).
        Spark's ROUND takes literal digits only: one branch per power of ten."""
        size = exp.Abs(this=y)

        def below(bound: str) -> exp.Expression:
            return exp.LT(this=size.copy(), expression=exp.Literal.number(bound))

        if self.dialect == "spark":
            ifs = [exp.If(this=below("0.4"), true=y.copy())] + [
                exp.If(this=below(f"1e{k + 1}"), true=exp.Round(this=y.copy(), decimals=exp.Literal.number(14 - k)))
                for k in range(15)
            ]
            return exp.Case(ifs=ifs, default=y.copy())
        magnitude = exp.cast(exp.Floor(this=exp.Anonymous(this="LOG10", expressions=[size])), "INT")
        places = exp.Sub(this=exp.Literal.number(14), expression=magnitude)
        inside = exp.and_(exp.GTE(this=size.copy(), expression=exp.Literal.number("0.4")), below("1e15"))
        return exp.Case(ifs=[exp.If(this=inside, true=exp.Round(this=y.copy(), decimals=places))], default=y.copy())

    def time(self) -> exp.Expression:
        """The source's time column, comparable as stored (SQLite's text as its own UTC form)."""
        t: exp.Expression = self.column(self.sp.source.time)
        return exp.Anonymous(this="DATETIME", expressions=[t]) if self.dialect == "sqlite" else t

    def query(self, tree: exp.Expression) -> Query:
        """The rendered query with the parameters it holds (a part built and then left out, such as a span's
        period under a shift that is null, leaves its parameters out too: DuckDB refuses extra ones), and its
        text laid out for ``--explain``."""
        held = {p.name for p in tree.find_all(exp.Placeholder)}
        params = {k: v for k, v in self.params.items() if k in held}
        return Query(self.render(tree), params, tree.sql(dialect=self.dialect, pretty=True))

    def render(self, query: exp.Expression) -> str:
        """The query's text in the dialect; for PostgreSQL's driver, whose placeholders are ``%(name)s``, a
        ``%`` that is not one (modulo, or in the source's own SQL) is doubled."""
        sql = query.sql(dialect=self.dialect)
        return re.sub(r"%(?!\()", "%%", sql) if self.dialect == "postgres" else sql
