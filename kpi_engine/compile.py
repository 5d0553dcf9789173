"""Compile bound formula nodes to polars expressions: row level, aggregates, and aggregate level."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping

import polars as pl

from .formula import BinOp, Bool, Call, Column, InList, IsNull, Node, Null, Number, String, Unary
from .ir import DURATION_FUNCS, EDGE_SUMS, QUANTILES, Agg, Ahead, MetricFunction, Previous, Seen, periods_ahead
from .lifetimes import History, first_seen
from .nodes import find_all

INT_TYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Boolean)


def safe_divide(left: pl.Expr, right: pl.Expr) -> pl.Expr:
    """``left / right`` that is null (never inf or NaN) when ``right`` is zero or null."""
    return pl.when(right != 0).then(left.cast(pl.Float64) / right.cast(pl.Float64)).otherwise(None)


def _binary(op: str, left: pl.Expr, right: pl.Expr) -> pl.Expr:
    if op == "/":
        return safe_divide(left, right)
    if op == "%":
        return pl.when(right != 0).then(left % right).otherwise(None)
    return {
        "+": lambda: left + right,
        "-": lambda: left - right,
        "*": lambda: left * right,
        "==": lambda: left == right,
        "!=": lambda: left != right,
        "<": lambda: left < right,
        "<=": lambda: left <= right,
        ">": lambda: left > right,
        ">=": lambda: left >= right,
        "and": lambda: left & right,
        "or": lambda: left | right,
    }[op]()


def _literal(node: Node) -> object:
    if isinstance(node, Number | String | Bool):
        return node.value
    if isinstance(node, Call) and node.func == "date":
        return dt.date.fromisoformat(node.args[0].value)  # type: ignore[attr-defined]
    if isinstance(node, Call) and node.func == "datetime":
        return dt.datetime.fromisoformat(node.args[0].value)  # type: ignore[attr-defined]
    return None


def row_expr(node: Node) -> pl.Expr:
    """A row-level node (columns, constants, operators, row functions) as a polars expression."""
    if isinstance(node, Column):
        return pl.col(node.column)
    if isinstance(node, Number | String | Bool) or (isinstance(node, Call) and node.func in ("date", "datetime")):
        return pl.lit(_literal(node))
    if isinstance(node, Null):
        return pl.lit(None)
    if isinstance(node, BinOp):
        return _binary(node.op, row_expr(node.left), row_expr(node.right))
    if isinstance(node, Unary):
        inner = row_expr(node.operand)
        return ~inner if node.op == "not" else -inner
    if isinstance(node, IsNull):
        inner = row_expr(node.operand)
        return inner.is_not_null() if node.negated else inner.is_null()
    if isinstance(node, InList):
        values = [_literal(i) for i in node.items if not isinstance(i, Null)]
        inner = row_expr(node.operand)
        test = inner.is_in(values)
        if any(isinstance(i, Null) for i in node.items):
            test = test | inner.is_null()
        return ~test if node.negated else test
    if isinstance(node, Call):
        return _scalar_call(node, row_expr)
    raise TypeError(f"not a row-level node: {node!r}")


def _scalar_call(node: Call, compile_arg: Callable[[Node], pl.Expr]) -> pl.Expr:
    args = [compile_arg(a) for a in node.args]
    if node.func in DURATION_FUNCS:
        return args[0].dt.total_microseconds().cast(pl.Float64) / (1e6 * DURATION_FUNCS[node.func])
    if node.func == "abs":
        return args[0].abs()
    if node.func == "round":
        digits = int(node.args[1].value) if len(node.args) > 1 else 0  # type: ignore[attr-defined]
        return round_decimal(args[0], digits)
    if node.func == "coalesce":
        return pl.coalesce(args)
    raise TypeError(f"unknown function {node.func}")


def round_decimal(x: pl.Expr, digits: int) -> pl.Expr:
    """``round(x, digits)`` as SQL's numeric ROUND and spreadsheets do it: half away from zero, on the value's
    15-significant-digit decimal form, so ``round(1.005, 2)`` is 1.01 and ``round(2.5)`` is 3 (the binary
    double 1.00499999999999989... would give 1.0, and polars' default half-to-even 2)."""
    scale = 10.0 ** abs(digits)
    y = x.cast(pl.Float64) * scale if digits >= 0 else x.cast(pl.Float64) / scale
    decimal = pl.when(y.abs() < 1e15).then(y.round_sig_figs(15)).otherwise(y)  # (above, doubles are whole)
    whole = decimal.round(0, mode="half_away_from_zero")
    return whole / scale if digits >= 0 else whole * scale


class FunctionFailed(Exception):
    """A plugin's metric function raised while its expression was built."""

    def __init__(self, function: MetricFunction, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.function = function


DATE = "__date"  # each row's local date, in every frame an aggregate reads


def agg_expr(agg: Agg, schema: pl.Schema, functions: Mapping[str, MetricFunction], order: str | None = None) -> pl.Expr:
    """One aggregate as a polars expression for ``group_by(...).agg``; sums of integers are Int64. ``order``
    is the source's time column, which ``first`` and ``last`` follow."""
    cond = row_expr(agg.where).fill_null(False) if agg.where is not None else None
    if not agg.args:  # count(source)
        return (cond.sum() if cond is not None else pl.len()).cast(pl.Int64)
    args = [row_expr(a) for a in agg.args]
    value = args[0]
    func = agg.func
    if cond is not None:
        # built-ins ignore nulls, and masking rows is ~1.5x faster than filtering each group; plugins get rows
        keep = (lambda a: a.filter(cond)) if func in functions else (lambda a: pl.when(cond).then(a))
        args = [keep(a) if not isinstance(n, Number) else a for a, n in zip(args, agg.args, strict=True)]
        value = args[0]
    if func in EDGE_SUMS:  # the rows of the period's first or last day (see edge_columns)
        value = value.filter(pl.col(DATE) == pl.col(edge_column(agg)))
        func = "sum"
    if func == "sum":  # integers are summed in 128 bits: execution checks the result fits 64 (never wraps)
        return value.cast(pl.Int128).sum() if integer_sum(agg, schema) else float_sum(value)
    if func == "count":
        return value.count().cast(pl.Int64)
    if func in ("count_distinct", "approx_count_distinct"):  # (polars' estimate is off by up to 16% on a
        # few hundred values, and exact counting is cheap in one process: an estimate may always be exact)
        return value.drop_nulls().n_unique().cast(pl.Int64)
    if func == "median":
        return value.cast(pl.Float64).median()
    if func in ("min", "max"):
        return getattr(value.cast(pl.Float64), func)()
    if func in ("first", "last"):  # the value of the period's first or last row (ties: the greater value last)
        present = value.cast(pl.Float64).sort_by([pl.col(order or ""), value], nulls_last=False).drop_nulls()
        return present.first() if func == "first" else present.last()
    if func in QUANTILES:
        return quantile(value.cast(pl.Float64), float(agg.args[1].value), func == "quantile_disc")  # type: ignore[attr-defined]
    function = functions[func]
    try:
        built = function.build(*args)
    except Exception as exc:  # a plugin's bug: the caller skips the KPIs that need it, naming the plugin
        raise FunctionFailed(function, exc) from exc
    return built if function.finish is not None else built.cast(pl.Float64)


def quantile(value: pl.Expr, q: float, discrete: bool) -> pl.Expr:
    """The q-quantile of the non-null values: interpolated linearly (SQL's PERCENTILE_CONT), or, ``discrete``,
    the first value whose cumulative share reaches q (PERCENTILE_DISC: always one of the values)."""
    if not discrete:
        return value.quantile(q, interpolation="linear")
    present = value.drop_nulls().sort()
    rank = (pl.lit(q) * present.len()).ceil().cast(pl.Int64) - 1
    return present.get(rank.clip(0), null_on_oob=True)  # no values: null


def edge_column(agg: Agg) -> str:
    """The column holding the first or last day a semi-additive sum reads (``sum_last_day(x)``)."""
    return "__edge_" + hashlib.sha1(agg.key.encode()).hexdigest()[:12]


def edge_columns(aggs: Iterable[Agg], partition: list[str]) -> list[pl.Expr]:
    """For each semi-additive sum, the first or last day with a row it counts, over ``partition`` (the period,
    and the entity inside an aggregate over entities), never per dimension value: as MetricFlow's
    non-additive dimension, so that the values of a dimension add up to the total."""
    out = {}
    for agg in aggs:
        if agg.func in EDGE_SUMS:
            day = pl.col(DATE)
            if agg.where is not None:
                day = pl.when(row_expr(agg.where).fill_null(False)).then(day)
            edge = day.min() if agg.func == "sum_first_day" else day.max()
            out[edge_column(agg)] = edge.over(partition).alias(edge_column(agg))
    return list(out.values())


def row_dtype(node: Node, schema: pl.Schema) -> pl.DataType:
    """The polars type of a row-level node over columns of ``schema``."""
    return pl.LazyFrame(schema=schema).select(row_expr(node)).collect_schema().dtypes()[0]


def integer_sum(agg: Agg, schema: pl.Schema) -> bool:
    """Whether ``sum(...)`` adds integers (its result is then an exact integer)."""
    return isinstance(row_dtype(agg.args[0], schema), INT_TYPES)


def is_integer(node: Node, schemas: Mapping[str, pl.Schema]) -> bool:
    """Whether an aggregate-level expression is an exact integer: counts and integer sums combined by
    ``+ - *``, integer literals, ``abs`` and ``previous``. Such KPIs stay Int64 to the output."""
    if isinstance(node, Agg):
        if node.func in ("count", "count_distinct", "approx_count_distinct", "conversions"):
            return True
        return node.func in ("sum", *EDGE_SUMS) and node.per is None and integer_sum(node, schemas[node.source])
    if isinstance(node, Number):
        return isinstance(node.value, int) or float(node.value).is_integer() and abs(node.value) < 2**63
    if isinstance(node, BinOp):
        return node.op in ("+", "-", "*") and is_integer(node.left, schemas) and is_integer(node.right, schemas)
    if isinstance(node, Unary):
        return node.op == "-" and is_integer(node.operand, schemas)
    if isinstance(node, Previous):
        return is_integer(node.expr, schemas)
    if isinstance(node, Call):
        return node.func == "abs" and is_integer(node.args[0], schemas)
    return False


def rollup_expr(how: str, column: str, dtype: pl.DataType) -> pl.Expr:
    """Combine per-dimension results of an additive aggregate into a total (integer sums stay 128-bit)."""
    if how == "sum" and dtype == pl.Float64:
        return float_sum(pl.col(column))
    return getattr(pl.col(column), how)()


GRID = 2.0**30  # the fixed-point part's resolution: 2^-30 (about 9.3e-10)
FIXED = 2.0**60  # values this large are summed as floats: 2^90 per row leaves Int128 room for 2^37 rows


def float_sum(value: pl.Expr) -> pl.Expr:
    """A float sum that gives the same bits whatever order polars adds the rows in.

    polars adds floats in an order that depends on threads and hash seeds, so the last digit of a sum changed
    from run to run. Each value is split exactly into a multiple of 2^-30, summed as a 128-bit integer (exact,
    so order-free), and the remainder below 2^-30, summed as a float: its rounding is many orders of magnitude
    below the result's last digit. Only sums made entirely of values under about 1e-9 keep the float's order.
    """
    x = value.cast(pl.Float64)
    grid = pl.when(x.abs() < FIXED).then((x * GRID).round())
    whole = grid.cast(pl.Int128).sum().cast(pl.Float64) / GRID
    rest = (x - (grid / GRID).fill_null(0.0)).sum()
    return whole + rest


def kpi_expr(
    node: Node,
    column_of: Callable[[Agg], pl.Expr],
    dims: tuple[str, ...],
    integer: bool = False,
    back: Callable[[Previous], pl.Expr] | None = None,
) -> pl.Expr:
    """An aggregate-level node over a frame with one column per aggregate, sorted by period within dims.

    ``integer`` (see ``is_integer``) computes in 128-bit integers, checked against 64 bits afterwards.
    ``back`` gives, per row, how many periods back a calendar offset (``previous(x, 1 month)``) lands.
    """

    def again(n: Node) -> pl.Expr:
        return kpi_expr(n, column_of, dims, integer, back)

    if isinstance(node, Agg):
        return column_of(node).cast(pl.Int128) if integer else column_of(node)
    if isinstance(node, Number):
        return pl.lit(int(node.value), dtype=pl.Int128) if integer else pl.lit(float(node.value))
    if isinstance(node, Null):
        return pl.lit(None, dtype=pl.Float64)
    if isinstance(node, BinOp):
        return _binary(node.op, again(node.left), again(node.right))
    if isinstance(node, Unary):
        return -again(node.operand)
    if isinstance(node, Previous) and node.unit is not None:
        if back is None:
            raise TypeError("a calendar offset needs the grid's period column")
        index = pl.int_range(pl.len()) - back(node)
        inner = pl.when(index >= 0).then(again(node.expr).gather(index.clip(0))).otherwise(None)
        return inner.over(dims) if dims else inner
    if isinstance(node, Previous):
        inner = again(node.expr).shift(node.n)
        return inner.over(dims) if dims else inner
    if isinstance(node, Call):
        return _scalar_call(node, again)
    raise TypeError(f"not an aggregate-level node: {node!r}")


def entity_query(
    lf: pl.LazyFrame,
    keys: list[str],
    per: str,
    aggs: Mapping[str, Agg],
    schema: pl.Schema,
    functions: Mapping[str, MetricFunction],
    history: History,
) -> pl.LazyFrame:
    """Aggregates over entities (``aggs`` by output column), all over the entity column ``per``: one
    ``group_by(*keys, per)`` computes every inner aggregate once per entity, then one ``group_by(*keys)``
    aggregates over the entities. Rows without an entity key belong to no entity."""
    inner: dict[str, tuple[str, Agg]] = {}
    found = [a for agg in aggs.values() for a in find_all(agg, Ahead)]
    aheads = {(a.agg.key, a.periods): (f"__ahead{n}", a) for n, a in enumerate(found)}

    def column_of(node: Agg | Ahead) -> pl.Expr:
        if isinstance(node, Ahead):
            return pl.col(aheads[(node.agg.key, node.periods)][0])
        if node.key not in inner:
            inner[node.key] = (f"__e{len(inner)}", node)
        return pl.col(inner[node.key][0])

    outer = [_over_entities(agg, column_of).alias(name) for name, agg in aggs.items()]
    per_entity = (
        lf.filter(pl.col(per).is_not_null())
        .with_columns(edge_columns([agg for _, agg in inner.values()], [keys[0], per]))
        .group_by(list(dict.fromkeys([*keys, per])))  # the entity may be a dimension too
        .agg(agg_expr(agg, schema, functions, history.time).alias(name) for name, agg in inner.values())
    )
    facts = {s for agg in aggs.values() for s in find_all(agg, Seen)}
    per_entity = _with_facts(per_entity, keys, per, facts, history)
    for name, ahead in aheads.values():
        per_entity = _with_ahead(
            per_entity, keys[0], per, name, ahead, agg_expr(ahead.agg, schema, functions, history.time), history
        )
    frame = per_entity.group_by(keys).agg(outer)
    for name, agg in aggs.items():  # active(k), over_next(x, k + 1): unknown until the period k later is over
        ahead = periods_ahead(agg)
        if ahead > 0:
            known = history.shift(pl.col(keys[0]), ahead + 1) <= pl.lit(history.horizon)
            frame = frame.with_columns(pl.when(known).then(pl.col(name)).otherwise(None).alias(name))
    return frame


def _with_facts(
    per_entity: pl.LazyFrame, keys: list[str], per: str, facts: set[Seen], history: History
) -> pl.LazyFrame:
    """Add a column per history fact: ``__new`` and ``__active{k}``, true or false for each entity and period.

    An entity is new in the period and under the dimension values of its first row (its acquisition channel),
    so that new entities per dimension value add up to the total.
    """
    period, dims = keys[0], keys[1:]
    rows = history.frame.filter(pl.col(per).is_not_null())
    if any(s.kind == "new" for s in facts):
        kept = history.first.get(per) if history.first else None
        first = kept if kept is not None else first_seen(rows, per, dims, history.date, history.time)
        new = history.period_of(pl.col("__first")) == pl.col(period)
        for d in dims:
            new = new & pl.col(d).eq_missing(pl.col(f"__first_{d}"))
        per_entity = per_entity.join(first, on=per, how="left").with_columns(new.fill_null(False).alias("__new"))
    offsets = sorted({s.offset for s in facts if s.kind == "active"})
    if offsets:
        rows = history.rows_from(max(0, -offsets[0])).filter(pl.col(per).is_not_null())
        seen = rows.select(pl.col(per), history.period_of(pl.col(history.date)).alias("__p")).unique()
    for k in offsets:
        active = seen.select(per, history.shift(pl.col("__p"), -k).alias(period), pl.lit(True).alias(f"__active{k}"))
        per_entity = per_entity.join(active, on=[period, per], how="left", nulls_equal=False).with_columns(
            pl.col(f"__active{k}").fill_null(False)
        )
    return per_entity


def _with_ahead(
    per_entity: pl.LazyFrame, period: str, per: str, name: str, ahead: Ahead, value: pl.Expr, history: History
) -> pl.LazyFrame:
    """Add column ``name``: the entity's aggregate over this period and the ``periods - 1`` after it."""
    rows = history.rows_from(0).filter(pl.col(per).is_not_null())
    each = rows.group_by(pl.col(per), history.period_of(pl.col(history.date)).alias("__p")).agg(value.alias("__v"))
    spread = pl.concat(
        [each.select(per, history.shift(pl.col("__p"), -j).alias(period), "__v") for j in range(ahead.periods)]
    )
    total = spread.group_by(per, period).agg(float_sum(pl.col("__v")).alias(name))  # (in any order: same bits)
    return per_entity.join(total, on=[period, per], how="left").with_columns(pl.col(name).fill_null(0))


def _over_entities(agg: Agg, column_of: Callable[[Agg], pl.Expr]) -> pl.Expr:
    """The outer aggregate of an aggregate over entities, over one row per entity."""
    cond = _entity_expr(agg.where, column_of).fill_null(False) if agg.where is not None else None
    if agg.func == "count":
        counted = _entity_expr(agg.args[0], column_of).is_not_null() if agg.args else cond
        if counted is None:  # every entity of the group
            return pl.len().cast(pl.Int64)
        return (counted & cond if cond is not None and agg.args else counted).sum().cast(pl.Int64)
    value = _entity_expr(agg.args[0], column_of).cast(pl.Float64)
    if cond is not None:
        value = pl.when(cond).then(value)
    if agg.func == "sum":
        return float_sum(value)
    if agg.func == "mean":
        return safe_divide(float_sum(value), value.count())
    if agg.func in QUANTILES:
        return quantile(value, float(agg.args[1].value), agg.func == "quantile_disc")  # type: ignore[attr-defined]
    return getattr(value, agg.func)()  # median, min, max


def _entity_expr(node: Node, column_of: Callable[[Agg], pl.Expr]) -> pl.Expr:
    """An entity-level expression over the per-entity columns of its inner aggregates."""
    if isinstance(node, Agg | Ahead):
        return column_of(node)  # type: ignore[arg-type]
    if isinstance(node, Seen):
        return pl.col("__new" if node.kind == "new" else f"__active{node.offset}")
    if isinstance(node, Number | Bool):
        return pl.lit(node.value)
    if isinstance(node, Null):
        return pl.lit(None, dtype=pl.Float64)
    if isinstance(node, BinOp):
        return _binary(node.op, _entity_expr(node.left, column_of), _entity_expr(node.right, column_of))
    if isinstance(node, Unary):
        inner = _entity_expr(node.operand, column_of)
        return ~inner if node.op == "not" else -inner
    raise TypeError(f"not an entity-level node: {node!r}")
