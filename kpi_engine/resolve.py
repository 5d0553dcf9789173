"""Name resolution and type checking: formula ASTs -> bound KPIs over known source columns.

Binding turns bare names into KPI references (inlined), params (constants) or, inside an aggregate, columns
of that aggregate's source; it checks every column against the source schema and every aggregate's input
type, and reports all problems at once with the formula span of each.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from .errors import Diagnostic, ErrorCollector, Location, did_you_mean
from .formula import (
    BinOp,
    Bool,
    Call,
    Column,
    FormulaSyntaxError,
    InList,
    IsNull,
    Name,
    Node,
    Null,
    Number,
    Offset,
    String,
    Unary,
    parse,
    to_source,
)
from .ir import (
    AGGREGATES,
    ARITHMETIC,
    DURATION_FUNCS,
    EDGE_SUMS,
    LITERAL_FUNCS,
    QUANTILES,
    RESERVED_COLUMNS,
    SCALAR_FUNCS,
    Agg,
    BoundKpi,
    MetricFunction,
)
from .model import KpiSpec, Project
from .offsets import OffsetBinder
from .periods import DATE_PARTS, TIME_PART
from .references import MAX_EXPANDED, expanded_size
from .rowbind import KIND_WORDS, Failed, KpiContext
from .timeparse import TimeOptions, output_type, time_expr


class Binder(OffsetBinder):
    """Binds every KPI of a project against source schemas and the available metric functions."""

    def __init__(self, project: Project, schemas: Mapping[str, pl.Schema], functions: Mapping[str, MetricFunction]):
        self.project = project
        self.schemas = schemas
        self.functions = functions
        self.errors = ErrorCollector()
        self.bound: dict[str, BoundKpi | None] = {}
        self.parsed: dict[str, Node | None] = {}
        self.stack: list[str] = []

    # -- diagnostics --------------------------------------------------------------------------------
    def _loc(self, kpi: KpiSpec, span: tuple[int, int] | None) -> Location:
        base = kpi.loc("formula")
        column = base.column
        if span is not None and kpi.formula_offset is not None and "\n" not in kpi.formula:
            column = kpi.formula_offset + span[0]
        return Location(
            base.file,
            base.line,
            column,
            base.field,
            kpi.formula.strip() if "\n" not in kpi.formula else kpi.formula,
            span,
        )

    def fail(
        self, kpi: KpiSpec, node: Node | None, message: str, hint: str | None = None, expected: str | None = None
    ) -> Failed:
        self.errors.add(message, self._loc(kpi, node.span if node is not None else None), hint=hint, expected=expected)
        return Failed()

    # -- entry points -------------------------------------------------------------------------------
    def bind_all(self) -> dict[str, BoundKpi]:
        for kpi_id in self.project.kpis:
            self.bind(kpi_id)
        return {k: v for k, v in self.bound.items() if v is not None}

    def parse(self, kpi: KpiSpec) -> Node | None:
        if kpi.id not in self.parsed:
            try:
                self.parsed[kpi.id] = parse(kpi.formula.strip())
            except FormulaSyntaxError as exc:
                self.errors.add(f"formula syntax error: {exc.message}", self._loc(kpi, exc.span), hint=exc.hint)
                self.parsed[kpi.id] = None
        return self.parsed[kpi.id]

    def bind(self, kpi_id: str) -> BoundKpi | None:
        if kpi_id in self.bound:
            return self.bound[kpi_id]
        kpi = self.project.kpis[kpi_id]
        tree = self.parse(kpi)
        if tree is None:
            self.bound[kpi_id] = None
            return None
        self.stack.append(kpi_id)
        try:
            ctx = KpiContext(kpi)
            expr = self.agg_level(tree, ctx)
            if not ctx.aggs:
                raise self.fail(
                    kpi,
                    tree,
                    "formula reads no data",
                    hint="aggregate a source, e.g. sum(ads.cost); constants belong in `params`",
                )
            self.check_dimensions(kpi, ctx)
            self.check_history(kpi, tree, expr)
            size = expanded_size(expr)
            if size > MAX_EXPANDED:
                used = ", ".join(f"`{u}`" for u in sorted(ctx.uses)[:5])
                raise self.fail(
                    kpi,
                    tree,
                    f"formula expands to {size:,} terms once the KPIs it references ({used}) are inlined",
                    expected=f"at most {MAX_EXPANDED:,} terms",
                    hint="a KPI referenced twice at each level doubles at each level: reference fewer times, "
                    "or write the formula over aggregates directly",
                )
            result: BoundKpi | None = BoundKpi(
                kpi,
                expr,
                tuple(dict.fromkeys(ctx.aggs)),
                tuple(sorted(ctx.sources)),
                ctx.lookback,
                tuple(sorted(ctx.uses)),
            )
        except Failed:
            result = None
        finally:
            self.stack.pop()
        self.bound[kpi_id] = result
        return result

    def check_dimensions(self, kpi: KpiSpec, ctx: KpiContext) -> None:
        """Every dimension is a column of every source the KPI reads values from, or a part of the time."""
        for dim in kpi.dimensions:
            if dim in RESERVED_COLUMNS:
                self.errors.add(
                    f"`{dim}` cannot be a dimension name",
                    kpi.loc("dimensions"),
                    expected="a column name other than " + ", ".join(sorted(RESERVED_COLUMNS)),
                    hint="rename the column in the source, e.g. with a SQL query",
                )
                raise Failed()
            if dim.startswith(TIME_PART):
                part = dim.removeprefix(TIME_PART)
                if part not in DATE_PARTS:
                    self.errors.add(
                        f"`{dim}` is not a part of the time",
                        kpi.loc("dimensions"),
                        expected=", ".join(f"time.{p}" for p in DATE_PARTS),
                        hint=did_you_mean(part, DATE_PARTS, "parts"),
                    )
                    raise Failed()
                continue
            # sources read for values: a conversion's target is only matched, attributed to its base's values
            for source in sorted({a.source for a in ctx.aggs} & self.schemas.keys()):
                if dim not in self.schemas[source]:
                    self.errors.add(
                        f"dimension `{dim}` is not a column of source `{source}`",
                        kpi.loc("dimensions"),
                        hint=did_you_mean(dim, self.schemas.get(source, {}), f"columns of {source}")
                        or "every source a KPI reads must have its dimension columns",
                    )
                    raise Failed()

    # -- aggregate level ----------------------------------------------------------------------------
    def agg_level(self, node: Node, ctx: KpiContext, shift: int = 0) -> Node:
        kpi = ctx.kpi
        if isinstance(node, Number):
            return node
        if isinstance(node, Null):
            return node
        if isinstance(node, Bool | String):
            raise self.fail(
                kpi, node, "a KPI value must be a number", hint="strings and booleans belong in `where` filters"
            )
        if isinstance(node, Name):
            return self.reference(node, ctx, shift)
        if isinstance(node, Column):
            raise self.fail(
                kpi,
                node,
                f"column `{node.source}.{node.column}` is used outside an aggregate",
                hint=f"wrap it in an aggregate, e.g. sum({node.source}.{node.column}) or mean(...)",
            )
        if isinstance(node, BinOp):
            if node.op not in ARITHMETIC:
                raise self.fail(
                    kpi,
                    node,
                    f"`{node.op}` outside a `where` filter",
                    hint='comparisons and and/or filter rows: sum(ads.cost where channel == "search")',
                )
            return BinOp(
                node.op, self.agg_level(node.left, ctx, shift), self.agg_level(node.right, ctx, shift), span=node.span
            )
        if isinstance(node, Unary):
            if node.op == "not":
                raise self.fail(kpi, node, "`not` outside a `where` filter")
            return Unary("-", self.agg_level(node.operand, ctx, shift), span=node.span)
        if isinstance(node, InList | IsNull):
            raise self.fail(
                kpi,
                node,
                "a test (`in`, `is null`) outside a `where` filter",
                hint='filters go inside an aggregate: count(sessions where channel in ["seo"])',
            )
        if isinstance(node, Call):
            return self.agg_call(node, ctx, shift)
        hint = (
            "a calendar offset goes in previous(): previous(sum(ads.cost), 1 month)"
            if isinstance(node, Offset)
            else None
        )
        raise self.fail(kpi, node, f"unsupported expression `{to_source(node)}`", hint=hint)

    def reference(self, node: Name, ctx: KpiContext, shift: int) -> Node:
        kpi, name = ctx.kpi, node.name
        if name in self.project.params:
            return Number(self.project.params[name], span=node.span)
        if name in self.project.kpis:
            if name in self.stack:
                cycle = " -> ".join(self.stack[self.stack.index(name) :] + [name])
                raise self.fail(kpi, node, f"reference cycle: {cycle}", hint="a KPI cannot depend on itself")
            other = self.bind(name)
            if other is None:
                raise Failed()  # the referenced KPI's own errors are already reported
            ctx.sources.update(other.sources)
            ctx.aggs.extend(other.aggregates)
            ctx.uses.update((name, *other.uses))
            ctx.lookback = max(ctx.lookback, shift + other.lookback)
            return other.expr
        if name in self.project.sources:
            raise self.fail(
                kpi,
                node,
                f"source `{name}` used as a value",
                hint=f"count its rows with count({name}) or aggregate a column: sum({name}.column)",
            )
        if name in AGGREGATES or name in self.functions:
            raise self.fail(kpi, node, f"function `{name}` needs arguments", hint=f"call it: {name}(...)")
        if name in self.project.unchecked:
            raise Failed()  # a KPI or source left out for errors already reported
        candidates = [*self.project.kpis, *self.project.params]
        raise self.fail(
            kpi,
            node,
            f"unknown name `{name}`",
            expected="a KPI id or a param",
            hint=did_you_mean(name, candidates, "KPIs and params")
            or "columns are written source.column inside an aggregate, e.g. sum(ads.clicks)",
        )

    def agg_call(self, node: Call, ctx: KpiContext, shift: int) -> Node:
        kpi, func = ctx.kpi, node.func
        if func == "previous":
            return self.previous(node, ctx, shift)
        if func == "at_start":
            return self.at_start(node, ctx, shift)
        if func in SCALAR_FUNCS:
            lo, hi = SCALAR_FUNCS[func]
            if node.where is not None or not lo <= len(node.args) <= hi:
                raise self.fail(kpi, node, f"{func}() takes {lo}{'' if lo == hi else f' to {hi}'} argument(s)")
            if func == "round" and len(node.args) == 2:
                args = (self.agg_level(node.args[0], ctx, shift), self.round_digits(kpi, node.args[1]))
            else:
                args = tuple(self.agg_level(a, ctx, shift) for a in node.args)
            return Call(func, args, span=node.span)
        if func == "conversions":
            agg = self.conversions(node, ctx)
            ctx.aggs.append(agg)
            ctx.sources.update((agg.source, agg.target))
            return agg
        entity = self.entity_of(node) if func in AGGREGATES or node.per is not None else None
        if entity is not None:
            agg = self.entity_aggregate(node, entity, ctx)
            ctx.aggs.append(agg)
            ctx.sources.add(agg.source)
            return agg
        if func in AGGREGATES or func in self.functions:
            agg = self.aggregate(node, ctx)
            ctx.aggs.append(agg)
            ctx.sources.add(agg.source)
            return agg
        if func in DURATION_FUNCS or func in LITERAL_FUNCS:
            raise self.fail(
                kpi,
                node,
                f"{func}() works on row values; use it inside an aggregate",
                hint=f"e.g. mean({func}(tickets.first_response_at - tickets.created_at))"
                if func in DURATION_FUNCS
                else None,
            )
        known = [*AGGREGATES, *SCALAR_FUNCS, "previous", *self.functions]
        raise self.fail(kpi, node, f"unknown function `{func}`", hint=did_you_mean(func, known, "functions"))

    # -- aggregates and row level -------------------------------------------------------------------
    def aggregate(self, node: Call, ctx: KpiContext) -> Agg:
        kpi, func = ctx.kpi, node.func
        plugin = self.functions.get(func) if func not in AGGREGATES else None
        lo, hi = (1, 1) if plugin is None else (plugin.min_args, plugin.max_args)
        if func in QUANTILES:
            lo, hi = 2, 2
        if not lo <= len(node.args) <= hi:
            usage = f"e.g. {func}(source.column, 0.9)" if func in QUANTILES else f"e.g. {func}(source.column)"
            if plugin is not None:  # the plugin's own words, which show its other arguments
                usage = f"{func}(): {plugin.doc}" if plugin.doc else f"{func}(source.column{', ...' * (lo - 1)})"
            raise self.fail(
                kpi,
                node,
                f"{func}() takes {lo if lo == hi else f'{lo} to {hi}'} argument(s), got {len(node.args)}",
                hint=usage,
            )
        if (
            func == "count"
            and len(node.args) == 1
            and isinstance(node.args[0], Name)
            and node.args[0].name in self.project.sources
        ):
            source = node.args[0].name
            if source not in self.schemas:
                return Agg("count", source, (), node.where, span=node.span)  # unread: see below
            where = self.row_level(node.where, source, ctx, want="bool") if node.where is not None else None
            return Agg("count", source, (), where, span=node.span)
        row_args = node.args[:1] if func in QUANTILES else node.args
        source = self.source_of(node, row_args, ctx)
        if source not in self.schemas:
            # a source whose columns could not be read (a failed plugin, data outside the allowed folders): the
            # aggregate is kept unchecked, so the KPI still says which sources it reads; it is never planned
            return Agg(func, source, tuple(node.args), node.where, span=node.span)
        args: list[Node] = []
        kinds: list[str] = []
        for index, arg in enumerate(row_args):
            bound, kind = self.row_level_kind(arg, source, ctx)
            if plugin is not None:
                self.check_function_arg(plugin, index, arg, kind, ctx)
            else:
                self.check_agg_input(func, arg, kind, ctx)
            args.append(bound)
            kinds.append(kind)
        if plugin is not None and plugin.check is not None:
            self.check_call(plugin, node, source, args, kinds, ctx)
        if func in QUANTILES:
            q = node.args[1]
            if not (isinstance(q, Number) and 0 <= q.value <= 1):
                raise self.fail(
                    kpi, q, "quantile() needs a constant between 0 and 1", hint="e.g. quantile(tickets.minutes, 0.9)"
                )
            args.append(Number(float(q.value), span=q.span))
        where = self.row_level(node.where, source, ctx, want="bool") if node.where is not None else None
        return Agg(func, source, tuple(args), where, span=node.span)

    def check_agg_input(self, func: str, arg: Node, kind: str, ctx: KpiContext) -> None:
        numeric = func in ("sum", "mean", "median", "min", "max", "first", "last", *EDGE_SUMS, *QUANTILES)
        if numeric and kind not in ("num", "bool", "null"):
            hint = "count it with count(...) or count_distinct(...)" if kind == "str" else None
            if kind == "str" and isinstance(arg, Column):  # a text file types a column from its values: an
                # empty column, or one of 1,234.50, reads as text
                hint += f"; if it holds numbers, declare its type (csv, ndjson: dtypes: {{{arg.column}: float}})"
            if kind == "duration":
                hint = f"convert it first: {func}(minutes(...)) or seconds/hours/days(...)"
            raise self.fail(
                ctx.kpi,
                arg,
                f"{func}() needs numbers, but `{to_source(arg)}` is {KIND_WORDS.get(kind, kind)}",
                hint=hint,
            )


def bind_project(
    project: Project, schemas: Mapping[str, pl.Schema], functions: Mapping[str, MetricFunction]
) -> tuple[dict[str, BoundKpi], list[Diagnostic]]:
    """Bind every KPI; returns the bound KPIs and every diagnostic found (empty when all is well).

    A KPI over a source without a schema (its connector failed, or its data was not read) is bound as far as
    that allows: its ``sources`` are complete, its aggregates over that source unchecked. ``runnable`` tells
    the two apart.
    """
    binder = Binder(project, {name: _as_read(project, name, schema) for name, schema in schemas.items()}, functions)
    bound = binder.bind_all()
    return bound, binder.errors.diagnostics


def _as_read(project: Project, name: str, schema: pl.Schema) -> pl.Schema:
    """A source's columns as formulas see them: its time column as the engine reads it (text times such as
    JSON's are parsed), so that ``minutes(e.at - e.created)`` or ``e.at >= datetime(...)`` bind."""
    source = project.sources.get(name)
    if source is None or source.time not in schema:
        return schema
    dtype, opts = schema[source.time], TimeOptions.of(source.options)
    if time_expr(pl.col(source.time), dtype, opts) is None:
        return schema  # (the scan says what is wrong with it)
    return pl.Schema({**schema, source.time: output_type(dtype, opts)})


def runnable(bound: Mapping[str, BoundKpi], schemas: Mapping[str, pl.Schema]) -> dict[str, BoundKpi]:
    """The bound KPIs whose every source was read, so that they can be planned."""
    return {k: v for k, v in bound.items() if set(v.sources) <= schemas.keys()}
