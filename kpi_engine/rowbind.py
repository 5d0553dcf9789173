"""Row-level binding and type checks: the expressions inside an aggregate, over one source's columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import polars as pl

from .errors import ErrorCollector, did_you_mean
from .formula import (
    BinOp,
    Bool,
    Call,
    Column,
    InList,
    IsNull,
    Name,
    Node,
    Null,
    Number,
    Offset,
    String,
    Unary,
    to_source,
    walk,
)
from .ir import (
    AGGREGATES,
    ARITHMETIC,
    COMPARE,
    DURATION_FUNCS,
    LITERAL_FUNCS,
    ROUND_DIGITS,
    SCALAR_FUNCS,
    Agg,
    FunctionCall,
    MetricFunction,
    kind_of,
    round_digits,
)
from .model import KpiSpec, Project


class Failed(Exception):
    """Raised inside binding once a diagnostic has been recorded, to abandon the current KPI."""


class KpiContext:
    """What binding one KPI has found so far: sources read, aggregates, KPIs used, previous() depth."""

    def __init__(self, kpi: KpiSpec) -> None:
        self.kpi = kpi
        self.sources: set[str] = set()
        self.aggs: list[Agg] = []
        self.uses: set[str] = set()
        self.lookback = 0


class RowBinder:
    """Binds and types row-level expressions; the Binder in ``resolve`` builds on it."""

    project: Project
    schemas: Mapping[str, pl.Schema]
    functions: Mapping[str, MetricFunction]
    errors: ErrorCollector

    def fail(
        self, kpi: KpiSpec, node: Node | None, message: str, hint: str | None = None, expected: str | None = None
    ) -> Failed:
        raise NotImplementedError

    def row_level(self, node: Node, source: str, ctx: KpiContext, want: str) -> Node:
        bound, kind = self.row_level_kind(node, source, ctx)
        if want == "bool" and kind not in ("bool", "null"):
            raise self.fail(
                ctx.kpi,
                node,
                f"a `where` filter must be true or false, but `{to_source(node)}` is {KIND_WORDS.get(kind, kind)}",
                hint='compare it: where channel == "search"',
            )
        return bound

    def row_level_kind(self, node: Node, source: str, ctx: KpiContext) -> tuple[Node, str]:
        kpi = ctx.kpi
        if source not in self.schemas:
            raise Failed()  # the source itself could not be read; that error is already reported
        schema = self.schemas[source]
        if isinstance(node, Number):
            return node, "num"
        if isinstance(node, String):
            return node, "str"
        if isinstance(node, Bool):
            return node, "bool"
        if isinstance(node, Null):
            return node, "null"
        if isinstance(node, Column | Name):
            column = node.column if isinstance(node, Column) else node.name
            if isinstance(node, Name) and column not in schema:
                if column in self.project.params:
                    return Number(self.project.params[column], span=node.span), "num"
                if column in self.project.kpis:
                    raise self.fail(
                        kpi,
                        node,
                        f"KPI `{column}` referenced inside an aggregate",
                        hint="reference KPIs outside aggregates: ad_spend / leads",
                    )
            if column not in schema:
                raise self.fail(
                    kpi,
                    node,
                    f"unknown column `{column}` in source `{source}`",
                    hint=did_you_mean(column, schema, f"columns of {source}"),
                )
            return Column(source, column, span=node.span), kind_of(schema[column])
        if isinstance(node, Unary):
            operand, kind = self.row_level_kind(node.operand, source, ctx)
            expected = "bool" if node.op == "not" else "num"
            if kind not in (expected, "null") and not (node.op == "-" and kind == "duration"):
                raise self.fail(
                    kpi, node, f"`{node.op}` needs {KIND_WORDS[expected]}, found {KIND_WORDS.get(kind, kind)}"
                )
            return Unary(node.op, operand, span=node.span), kind
        if isinstance(node, BinOp):
            left, lk = self.row_level_kind(node.left, source, ctx)
            right, rk = self.row_level_kind(node.right, source, ctx)
            kind = self.binop_kind(node, lk, rk, ctx)
            return BinOp(node.op, left, right, span=node.span), kind
        if isinstance(node, IsNull):
            operand, _ = self.row_level_kind(node.operand, source, ctx)
            return IsNull(operand, node.negated, span=node.span), "bool"
        if isinstance(node, InList):
            operand, kind = self.row_level_kind(node.operand, source, ctx)
            items = []
            for item in node.items:
                bound, ik = self.row_level_kind(item, source, ctx)
                if not isinstance(bound, Number | String | Bool | Null | Call) or ik not in (kind, "null"):
                    raise self.fail(
                        kpi,
                        item,
                        f"list items must be constants of the same type as `{to_source(node.operand)}` "
                        f"({KIND_WORDS.get(kind, kind)})",
                    )
                items.append(bound)
            return InList(operand, tuple(items), node.negated, span=node.span), "bool"
        if isinstance(node, Call):
            return self.row_call(node, source, ctx)
        hint = (
            "a calendar offset goes in previous(): previous(sum(ads.cost), 1 month)"
            if isinstance(node, Offset)
            else None
        )
        raise self.fail(kpi, node, f"unsupported expression `{to_source(node)}`", hint=hint)

    def row_call(self, node: Call, source: str, ctx: KpiContext) -> tuple[Node, str]:
        kpi, func = ctx.kpi, node.func
        if node.where is not None:
            raise self.fail(kpi, node, f"`where` only filters aggregates, not {func}()")
        if func in LITERAL_FUNCS:
            arg = node.args[0] if len(node.args) == 1 else None
            if not isinstance(arg, String):
                raise self.fail(kpi, node, f"{func}() takes one quoted ISO value", hint=f'e.g. {func}("2026-04-01")')
            try:
                value = (dt.date.fromisoformat if func == "date" else dt.datetime.fromisoformat)(arg.value)
            except ValueError:
                raise self.fail(
                    kpi, arg, f"invalid {func} `{arg.value}`", expected="ISO 8601, e.g. 2026-04-01"
                ) from None
            if isinstance(value, dt.datetime):  # as the engine's times are: naive UTC
                utc = self.utc_time(value)
                return Call(func, (String(utc.isoformat(), span=arg.span),), span=node.span), func
            return node, func
        if func in DURATION_FUNCS:
            if len(node.args) != 1:
                raise self.fail(kpi, node, f"{func}() takes one duration")
            arg, kind = self.row_level_kind(node.args[0], source, ctx)
            if kind not in ("duration", "null"):
                raise self.fail(
                    kpi,
                    node.args[0],
                    f"{func}() needs a duration (the difference of two timestamps), found {KIND_WORDS.get(kind, kind)}",
                    hint=f"{func}(tickets.first_response_at - tickets.created_at)",
                )
            return Call(func, (arg,), span=node.span), "num"
        if func in SCALAR_FUNCS:
            lo, hi = SCALAR_FUNCS[func]
            if not lo <= len(node.args) <= hi:
                raise self.fail(kpi, node, f"{func}() takes {lo}{'' if lo == hi else f' to {hi}'} argument(s)")
            bound = [self.row_level_kind(a, source, ctx) for a in node.args]
            if func == "round" and len(node.args) == 2:
                bound[1] = (self.round_digits(kpi, node.args[1]), "num")
            kinds = {k for _, k in bound if k != "null"}
            if func in ("abs", "round") and not kinds <= {"num"}:
                raise self.fail(kpi, node, f"{func}() needs a number")
            if len(kinds) > 1:
                raise self.fail(kpi, node, f"{func}() arguments must share one type, found {', '.join(sorted(kinds))}")
            return Call(func, tuple(b for b, _ in bound), span=node.span), (kinds.pop() if kinds else "null")
        if func in AGGREGATES or func in self.functions or func == "previous":
            raise self.fail(kpi, node, f"`{func}` inside another aggregate", hint="aggregate once, then combine")
        known = [*SCALAR_FUNCS, *DURATION_FUNCS, *LITERAL_FUNCS]
        raise self.fail(kpi, node, f"unknown function `{func}`", hint=did_you_mean(func, known, "row functions"))

    def utc_time(self, value: dt.datetime) -> dt.datetime:
        """A ``datetime("...")`` literal as naive UTC: a time without an offset is a wall-clock time of the
        project's time zone (the first of two at a DST fall-back), one with an offset (``Z``, ``+02:00``)
        that instant."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(self.project.calendar.timezone))
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def round_digits(self, kpi: KpiSpec, node: Node) -> Number:
        """``round(x, digits)``'s digits as one literal, or an error: a whole number from -15 to 15."""
        digits = round_digits(node)
        if digits is None:
            raise self.fail(
                kpi,
                node,
                f"round() digits must be a whole number from -{ROUND_DIGITS} to {ROUND_DIGITS}",
                hint="round(x, 2) for hundredths, round(x, -3) for thousands",
            )
        return digits

    def binop_kind(self, node: BinOp, lk: str, rk: str, ctx: KpiContext) -> str:
        op = node.op
        kinds = {lk, rk} - {"null"}
        if op in ("and", "or"):
            if kinds <= {"bool"}:
                return "bool"
        elif op in COMPARE:
            if len(kinds) <= 1:
                return "bool"
        elif op in ARITHMETIC:
            if kinds <= {"num", "bool"} and kinds:
                return "num"
            if op == "-" and lk == rk and lk in ("datetime", "date"):
                return "duration"
            if op in ("+", "-") and kinds == {"duration"}:
                return "duration"
            if not kinds:
                return "null"
        hint = "compare like with like; a difference of timestamps is a duration: minutes(a - b)"
        if op in COMPARE and kinds == {"datetime", "date"}:
            hint = (
                'a timestamp compares with datetime("2026-04-01T00:00") (a wall-clock time of the spec\'s '
                'time zone), a date column with date("2026-04-01")'
            )
        raise self.fail(
            ctx.kpi, node, f"`{op}` cannot combine {KIND_WORDS.get(lk, lk)} and {KIND_WORDS.get(rk, rk)}", hint=hint
        )

    def source_of(self, node: Call, args: tuple[Node, ...], ctx: KpiContext) -> str:
        kpi = ctx.kpi
        found = {}
        for arg in (*args, *([node.where] if node.where is not None else [])):
            for sub in walk(arg):
                if isinstance(sub, Column):
                    found.setdefault(sub.source, sub)
                if isinstance(sub, Call) and (
                    sub.func in AGGREGATES or sub.func in self.functions or sub.func == "previous"
                ):
                    raise self.fail(
                        kpi,
                        sub,
                        f"`{sub.func}` inside another aggregate",
                        hint="aggregate once, then combine: sum(a.x) / count(a)",
                    )
        for name, col in found.items():
            if name in self.project.unchecked:
                raise Failed()
            if name not in self.project.sources:
                raise self.fail(
                    kpi, col, f"unknown source `{name}`", hint=did_you_mean(name, self.project.sources, "sources")
                )
        if len(found) > 1:
            names = ", ".join(f"`{n}`" for n in found)
            raise self.fail(
                kpi,
                node,
                f"one aggregate reads one source, but `{node.func}(...)` mixes {names}",
                hint="aggregate each source on its own and combine the results: sum(a.x) / sum(b.y)",
            )
        if not found:
            bare = [sub.name for a in args for sub in walk(a) if isinstance(sub, Name)]
            if len(args) == 1 and isinstance(args[0], Name) and node.func != "count":
                name = args[0].name
                if name in self.project.sources:
                    raise self.fail(
                        kpi, node, f"{node.func}() of a whole source", hint=f"name a column: {node.func}({name}.column)"
                    )
            if len(args) == 1 and isinstance(args[0], Name) and args[0].name not in self.project.sources:
                name = args[0].name
                if name in self.project.unchecked:
                    raise Failed()
                close = did_you_mean(name, self.project.sources, "sources")
                if node.func == "count" or close:  # count(visit where ...) names a source: which one was meant?
                    raise self.fail(kpi, args[0], f"unknown source `{name}`", hint=close)
            owners = [s for s, schema in self.schemas.items() if bare and bare[0] in schema]
            hint = f"write `{owners[0]}.{bare[0]}`" if owners else "write source.column, e.g. sum(ads.clicks)"
            raise self.fail(kpi, node, f"`{node.func}(...)` does not say which source it reads", hint=hint)
        return next(iter(found))

    def check_function_arg(self, fn: MetricFunction, index: int, arg: Node, kind: str, ctx: KpiContext) -> None:
        """A plugin function's argument against the kind it declares (``MetricFunction.arg_kinds``)."""
        want = fn.arg_kind(index)
        if want == "any" or kind in (want, "null") or (want == "num" and kind == "bool"):
            return
        raise self.fail(
            ctx.kpi,
            arg,
            f"{fn.name}() argument {index + 1} must be {KIND_WORDS.get(want, want)}, "
            f"but `{to_source(arg)}` is {KIND_WORDS.get(kind, kind)}",
            hint=f"{fn.name}(): {fn.doc}" if fn.doc else None,
        )

    def check_call(
        self, fn: MetricFunction, node: Call, source: str, args: list[Node], kinds: list[str], ctx: KpiContext
    ) -> None:
        """A plugin function's own check of one call, reported at the call (a raising check is the plugin's bug)."""
        constants = {i: a.value for i, a in enumerate(args) if isinstance(a, Number | String | Bool)}
        constants |= {i: None for i, a in enumerate(args) if isinstance(a, Null)}
        call = FunctionCall(fn.name, source, tuple(to_source(a) for a in args), tuple(kinds), constants)
        try:
            problem = fn.check(call)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the plugin's fault, named as such
            raise self.fail(
                ctx.kpi,
                node,
                f"function `{fn.name}` (plugin `{fn.plugin or '?'}`) failed checking this call: "
                f"{type(exc).__name__}: {exc}",
                hint="a bug in the plugin: report it to its authors",
            ) from None
        if problem:
            raise self.fail(ctx.kpi, node, f"{fn.name}(): {problem}", hint=f"{fn.name}(): {fn.doc}" if fn.doc else None)


KIND_WORDS = {
    "num": "a number",
    "bool": "true/false",
    "str": "text",
    "date": "a date",
    "datetime": "a timestamp",
    "duration": "a duration",
    "null": "null",
    "other": "an unsupported type",
}
