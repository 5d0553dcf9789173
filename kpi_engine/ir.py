"""The bound intermediate representation shared by resolve, plan and compile: aggregates, previous(), KPIs."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl

from .formula import Call, Name, Node, Number, Unary, to_source
from .model import Grain, KpiSpec
from .nodes import find_all, transform

AGGREGATES = {
    "sum",
    "count",
    "count_distinct",
    "approx_count_distinct",  # an estimate, asked for by name: HyperLogLog in DuckDB, Spark, BigQuery, Snowflake
    "mean",
    "median",
    "min",
    "max",
    "quantile",
    "quantile_disc",
    "first",
    "last",
    "sum_first_day",
    "sum_last_day",
}
#: semi-additive sums (balances, followers): the rows of the period's first or last day with data
EDGE_SUMS = ("sum_first_day", "sum_last_day")
QUANTILES = (
    "quantile",
    "quantile_disc",
)  # continuous (linear, like PERCENTILE_CONT) and nearest rank (PERCENTILE_DISC)
SCALAR_FUNCS = {"abs": (1, 1), "round": (1, 2), "coalesce": (2, 16)}
ROUND_DIGITS = 15  # round(x, d) for d in -15..15: a double holds about 15 significant digits


def round_digits(node: Node) -> Number | None:
    """The digits of ``round(x, digits)`` as one whole-number literal (``-2`` parses as a negation), None when
    they are not a whole number from -ROUND_DIGITS to ROUND_DIGITS."""
    sign = 1
    if isinstance(node, Unary) and node.op == "-":
        sign, node = -1, node.operand
    if not isinstance(node, Number) or isinstance(node.value, bool) or not float(node.value).is_integer():
        return None
    digits = sign * int(node.value)
    return Number(digits, span=node.span) if abs(digits) <= ROUND_DIGITS else None


DURATION_FUNCS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
LITERAL_FUNCS = {"date", "datetime"}
MAX_PREVIOUS = 1000
RESERVED_COLUMNS = frozenset({"period", "start", "end", "complete", "has_data", "is_total", "value", "kpi", "unit"})
ARITHMETIC = {"+", "-", "*", "/", "%"}
COMPARE = {"==", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class MetricFunction:
    """An aggregate function a plugin adds to the formula language (e.g. ``nps(survey.score)``).

    ``build`` receives the compiled row-level argument expressions (already filtered by ``where``) and returns
    one polars aggregate expression; ``fill`` is the value of a period without rows (0 for counts, None else).

    A function that needs other periods (e.g. the share of the previous period's list of ids seen again) sets
    ``finish``: ``build`` then returns any per-period aggregate (e.g. the list of customer ids) and
    ``finish(column, dims)`` turns that column into the value, with ``column.shift(1).over(dims)`` meaning
    the previous period of the same dimension values.
    """

    name: str
    build: Callable[..., pl.Expr]
    min_args: int = 1
    max_args: int = 1
    doc: str = ""
    fill: float | None = None
    #: the kind each argument must be (``ARG_KINDS``), the last one repeated for further arguments
    arg_kinds: tuple[str, ...] = ("num",)
    #: called at bind time with each call (``FunctionCall``); returns what is wrong with it, or None
    check: Callable[[FunctionCall], str | None] | None = None
    finish: Callable[[pl.Expr, tuple[str, ...]], pl.Expr] | None = None
    plugin: str = ""

    def arg_kind(self, index: int) -> str:
        """The kind argument ``index`` (0-based) must be."""
        return self.arg_kinds[min(index, len(self.arg_kinds) - 1)] if self.arg_kinds else "any"


#: argument kinds a metric function may ask for: "num" also accepts true/false (summed as 1/0)
ARG_KINDS = ("num", "str", "bool", "date", "datetime", "duration", "any")


@dataclass(frozen=True)
class FunctionCall:
    """One call of a metric function as binding sees it, given to the function's ``check``.

    ``args`` are the arguments as written (canonical text), ``kinds`` their kinds (``num``, ``str``, ``bool``,
    ``date``, ``datetime``, ``duration``, ``null``), ``constants`` the value of each literal argument by
    position (``share_top_box(survey.score, 4)`` gives ``{1: 4}``).
    """

    name: str
    source: str
    args: tuple[str, ...]
    kinds: tuple[str, ...]
    constants: Mapping[int, float | int | str | bool | None]


@dataclass(frozen=True)
class Agg(Node):
    """A bound aggregate over one source: ``func(args where filter)`` with row-level, resolved arguments."""

    func: str
    source: str
    args: tuple[Node, ...] = ()
    where: Node | None = None
    #: an aggregate over entities: the source's entity column; ``args`` and ``where`` are then entity-level
    #: expressions over inner ``Agg`` nodes (one row per entity and period), not row-level ones
    per: str | None = None
    entity: str | None = None  # the entity's name, as written
    #: days earlier (``previous(x, 5 days)`` on a monthly KPI): each period aggregates the rows of its own days
    #: moved back this far, as MetricFlow's ``offset_window`` finer than the grain
    lag: int = 0

    @functools.cached_property
    def key(self) -> str:
        """The aggregate's canonical text: equal aggregates share one column of the plan."""
        inner = ", ".join(_key(a) for a in self.args) if self.args else (self.entity or self.source)
        if self.per is not None and self.args:
            inner += f" per {self.entity}"
        if self.where is not None:
            inner += f" where {_key(self.where)}"
        return f"{self.func}({inner})" + (f" {self.lag} days earlier" if self.lag else "")


@dataclass(frozen=True)
class Conversions(Agg):
    """``conversions(visits, orders, 7 days)``: each row of ``target`` matched to the latest row of ``source``
    by the same entity at most ``within`` days before it (MetricFlow's conversion semantics; any time before
    when ``within`` is None), counted in the matched row's period and dimension values.

    With steps between (``conversions(clicks, signups, orders, 7 days)``) each row of ``target`` is matched to
    the latest row of the step before it, that one to the latest of the step before, and so on back to
    ``source``; the whole chain must fit in the window."""

    target: str = ""
    target_key: str = ""  # the entity's column in ``target`` (``per`` is its column in ``source``)
    within: int | None = None  # days
    same: tuple[str, ...] = ()  # columns whose values must match in all rows (MetricFlow's constant properties)
    via: tuple[tuple[str, str], ...] = ()  # the steps between, in order: (source, its entity column)

    @functools.cached_property
    def key(self) -> str:
        steps = "".join(f"{s}, " for s, _ in self.via)
        window = f", {self.within} days" if self.within is not None else ""
        same = "".join(f", {c}" for c in self.same)
        return f"conversions({self.source}, {steps}{self.target}{window}{same} per {self.entity})"

    @property
    def matched(self) -> tuple[tuple[str, str], ...]:
        """The sources matched against ``source``'s rows, in order, with their entity columns."""
        return (*self.via, (self.target, self.target_key))


def _key(node: Node) -> str:
    """Canonical text of an expression that may hold aggregates (an aggregate over entities)."""

    def as_call(n: Node) -> Node:
        if isinstance(n, Seen):
            return Name("new") if n.kind == "new" else Call("active", (Number(n.offset),))
        if isinstance(n, Ahead):
            return Call("over_next", (n.agg, Number(n.periods)))  # its aggregate is a Call by now (bottom-up)
        return Call(n.func, n.args or (Name(n.source),), n.where) if isinstance(n, Agg) and n.per is None else n

    return to_source(transform(node, as_call)) if find_all(node, (Agg, Seen, Ahead)) else to_source(node)


@dataclass(frozen=True)
class Seen(Node):
    """An entity-level fact from the entity's whole history in its source, inside an aggregate over entities:
    ``new`` (its first row falls in this period) or ``active(k)`` (it has rows ``k`` periods later, or
    earlier when ``k`` is negative)."""

    kind: str  # "new" or "active"
    offset: int = 0


@dataclass(frozen=True)
class Ahead(Node):
    """``over_next(sum(orders.amount), 3)`` inside an aggregate over entities: the entity's ``agg`` over this
    period and the ``periods - 1`` after it, from its whole history (a cohort's lifetime value)."""

    agg: Agg
    periods: int


@dataclass(frozen=True)
class Previous(Node):
    """The value of ``expr`` ``n`` periods earlier, for the same dimension values; with ``unit`` (a calendar
    offset longer than the grain: ``previous(x, 1 month)`` on a daily KPI), the period holding the same day
    ``n`` units earlier (31 March -> 28 February)."""

    expr: Node
    n: int = 1
    unit: Grain | None = None
    to_start: bool = False  # at_start(x, month): the period holding the first day of the enclosing ``unit``


@dataclass(frozen=True)
class BoundKpi:
    spec: KpiSpec
    expr: Node  # aggregate-level: Agg, Previous, Number, BinOp, Unary, Call(abs/round/coalesce)
    aggregates: tuple[Agg, ...]
    sources: tuple[str, ...]
    lookback: int  # how many earlier periods previous() needs
    uses: tuple[str, ...] = field(default=())  # KPI ids referenced, directly or not


def kind_of(dtype: pl.DataType) -> str:
    """The formula language's view of a polars type: num, bool, str, date, datetime, duration, null, other."""
    if dtype.is_numeric():
        return "num"
    if isinstance(dtype, pl.Boolean):
        return "bool"
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return "str"
    if isinstance(dtype, pl.Date):
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    if isinstance(dtype, pl.Duration):
        return "duration"
    if isinstance(dtype, pl.Null):
        return "null"
    return "other"


def periods_ahead(node: Node) -> int:
    """How many periods later an expression looks (``active(k)``, ``over_next(x, k)``): 0 when it does not."""
    active = [s.offset for s in find_all(node, Seen) if s.kind == "active"]
    return max([0, *active, *(a.periods - 1 for a in find_all(node, Ahead))])


def cohort_column(kpi: BoundKpi, k: int) -> BoundKpi:
    """The KPI with its ``active(1)`` looking ``k`` periods ahead: column ``k`` of its cohort matrix."""

    def shift(n: Node) -> Node:
        return Seen("active", k, span=n.span) if isinstance(n, Seen) and n.kind == "active" else n

    return dataclasses.replace(kpi, expr=transform(kpi.expr, shift))
