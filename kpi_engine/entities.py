"""Binding aggregates over entities: aggregate per customer (or user, account), then over the customers.

``count(customer where count(orders) >= 2)`` counts the customers with two or more orders in the period;
``mean(count(orders) per customer)`` is the mean over customers of their order counts. The expressions after
``per``/``where`` are entity-level: arithmetic and comparisons over inner aggregates of one source that
declares the entity (``entities: {customer: customer_id}``), computed per entity, period and dimension values,
and two facts from the entity's whole history in that source: ``new`` (its first row is in this period) and
``active(k)`` (it has rows ``k`` periods later; earlier when ``k`` is negative).
"""

from __future__ import annotations

import itertools

from .errors import did_you_mean
from .formula import BinOp, Bool, Call, Column, Name, Node, Null, Number, Offset, Unary, to_source, walk
from .ir import AGGREGATES, Agg, Ahead, Conversions, Seen, kind_of
from .model import KpiSpec
from .nodes import find_all
from .rowbind import KIND_WORDS, KpiContext, RowBinder

#: aggregates that may run over entities (count_distinct of entities is count(entity))
OUTER = ("count", "sum", "mean", "median", "min", "max", "quantile", "quantile_disc")


class EntityBinder(RowBinder):
    """Binds aggregates over entities; ``aggregate`` (the row-level one) comes from the Binder in ``resolve``."""

    def aggregate(self, node: Call, ctx: KpiContext) -> Agg:
        raise NotImplementedError

    def check_history(self, kpi: KpiSpec, tree: Node, expr: Node) -> None:
        """``new``/``active()`` against ``window:`` (which they cannot share), and ``cohort:`` (which needs the
        formula written with ``active(1)``, each matrix column putting its own offset there)."""
        seen = find_all(expr, (Seen, Ahead))
        if kpi.window is not None and seen:
            raise self.fail(
                kpi,
                seen[0],
                f"`new` and `active()` count periods of the KPI's grain, which `window: {kpi.window}` overlaps",
                hint="compute cohorts in a KPI without window",
            )
        if kpi.cohort is not None and {s.offset for s in seen if isinstance(s, Seen) and s.kind == "active"} != {1}:
            raise self.fail(
                kpi,
                tree,
                "a cohort matrix needs the formula written with active(1): each column puts its own offset there",
                hint="e.g. 100 * count(orders.customer where new and active(1)) / count(orders.customer where new)",
            )

    def entity_names(self) -> dict[str, list[str]]:
        """Every declared entity and the sources that declare it."""
        out: dict[str, list[str]] = {}
        for name, source in self.project.sources.items():
            for entity in source.entities:
                out.setdefault(entity, []).append(name)
        return out

    def entity_of(self, node: Call) -> str | None:
        """The entity an aggregate runs over: ``per customer``, or the entity counted by ``count(customer)`` or
        ``count(orders.customer)`` (an entity of that source, when it has no column of that name)."""
        if node.per is not None:
            return node.per
        if node.func == "count" and len(node.args) == 1 and isinstance(node.args[0], Column):
            source, name = node.args[0].source, node.args[0].column
            spec = self.project.sources.get(source)
            if spec is not None and name in spec.entities and name not in self.schemas.get(source, {}):
                return name
        if node.func == "count" and len(node.args) == 1 and isinstance(node.args[0], Name):
            name = node.args[0].name
            if name in self.project.sources:
                return None
            nested = node.where is not None and any(
                isinstance(n, Call) and (n.func in AGGREGATES or n.func in self.functions) for n in walk(node.where)
            )
            if name in self.entity_names() or nested:  # a misspelt entity is reported as such
                return name
        return None

    def entity_aggregate(self, node: Call, entity: str, ctx: KpiContext) -> Agg:
        kpi, func = ctx.kpi, node.func
        owners = self.entity_names()
        if entity not in owners:
            raise self.fail(
                kpi,
                node,
                f"unknown entity `{entity}`",
                hint=did_you_mean(entity, owners, "entities")
                or "declare it on a source: entities: {customer: customer_id}",
            )
        if func not in OUTER:
            raise self.fail(
                kpi,
                node,
                f"{func}() cannot aggregate over entities",
                hint=f"count({entity} where ...) counts entities; {', '.join(OUTER[1:])} take (... per {entity})",
            )
        counted = node.per is None  # count(customer ...)
        values = () if counted else node.args[:1]
        if not counted and len(node.args) != (2 if func.startswith("quantile") else 1):
            raise self.fail(kpi, node, f"{func}(... per {entity}) takes one entity-level value")
        found: set[str] = set()
        bound = []
        for value in values:
            out, kind = self.entity_level(value, entity, found, ctx)
            if kind not in ("num", "bool", "null"):
                raise self.fail(kpi, value, f"{func}() needs numbers, but `{to_source(value)}` is {KIND_WORDS[kind]}")
            bound.append(out)
        where = None
        if node.where is not None:
            where, kind = self.entity_level(node.where, entity, found, ctx)
            if kind not in ("bool", "null"):
                raise self.fail(
                    kpi, node.where, f"a `where` over entities must be true or false, found {KIND_WORDS[kind]}"
                )
        if func.startswith("quantile"):
            q = node.args[1]
            if not (isinstance(q, Number) and 0 <= q.value <= 1):
                raise self.fail(kpi, q, "quantile() needs a constant between 0 and 1")
            bound.append(Number(float(q.value), span=q.span))
        home = node.args[0].source if counted and isinstance(node.args[0], Column) else None
        if home is not None:
            found.add(home)  # count(orders.customer where count(sessions) >= 1) reads two sources
        source = self.entity_source(node, entity, owners[entity], found, ctx)
        column = self.project.sources[source].entities.get(entity)
        if column is None:
            raise self.fail(
                kpi,
                node,
                f"source `{source}` declares no entity `{entity}`",
                hint=f"sources declaring it: {', '.join(owners[entity])}; or add entities: {{{entity}: <column>}}",
            )
        if source in self.schemas and column not in self.schemas[source]:
            raise self.fail(
                kpi,
                node,
                f"entity `{entity}` is column `{column}` of source `{source}`, which has no such column",
                hint=did_you_mean(column, self.schemas[source], f"columns of {source}"),
            )
        return Agg(func, source, tuple(bound), where, span=node.span, per=column, entity=entity)

    def entity_source(self, node: Call, entity: str, owners: list[str], found: set[str], ctx: KpiContext) -> str:
        """The one source whose rows are grouped per entity."""
        if len(found) > 1:
            names = ", ".join(f"`{s}`" for s in sorted(found))
            raise self.fail(
                ctx.kpi,
                node,
                f"an aggregate over entities reads one source, but this one reads {names}",
                hint="aggregate each source over its entities on its own, and combine the results",
            )
        if found:
            return found.pop()
        if len(owners) > 1:
            raise self.fail(
                ctx.kpi,
                node,
                f"`{entity}` is an entity of {', '.join(f'`{s}`' for s in owners)}: say whose",
                hint=f"e.g. count({owners[0]}.{entity}) or count({owners[0]}.{entity} where new)",
            )
        return owners[0]

    def entity_level(self, node: Node, entity: str, found: set[str], ctx: KpiContext) -> tuple[Node, str]:
        """An expression computed once per entity: inner aggregates combined by arithmetic and comparisons."""
        kpi = ctx.kpi
        if isinstance(node, Number):
            return node, "num"
        if isinstance(node, Bool):
            return node, "bool"
        if isinstance(node, Null):
            return node, "null"
        if isinstance(node, Name) and node.name in self.project.params:
            return Number(self.project.params[node.name], span=node.span), "num"
        if isinstance(node, Name) and node.name == "new":
            return Seen("new", span=node.span), "bool"
        if isinstance(node, Call) and node.func == "over_next":
            return self.over_next(node, entity, found, ctx), "num"
        if isinstance(node, Call) and node.func == "active":
            k = node.args[0] if len(node.args) == 1 and node.where is None else None
            if isinstance(k, Unary) and k.op == "-" and isinstance(k.operand, Number):
                k = Number(-k.operand.value, span=k.span)
            if not (isinstance(k, Number) and isinstance(k.value, int) and k.value != 0 and abs(k.value) <= 120):
                raise self.fail(
                    kpi,
                    node,
                    "active() takes a whole number of periods, not 0: active(1) is the next period, active(-1) "
                    "the previous one",
                    hint=f"e.g. count({entity} where new and active(1)) counts new {entity}s back a period later",
                )
            return Seen("active", int(k.value), span=node.span), "bool"
        if isinstance(node, Call) and (node.func in AGGREGATES or node.func in self.functions):
            if self.entity_of(node) is not None:
                raise self.fail(kpi, node, "aggregates over entities cannot be nested")
            inner = self.aggregate(node, ctx)
            found.add(inner.source)
            return inner, "num"
        if isinstance(node, BinOp):
            left, lk = self.entity_level(node.left, entity, found, ctx)
            right, rk = self.entity_level(node.right, entity, found, ctx)
            return BinOp(node.op, left, right, span=node.span), self.binop_kind(node, lk, rk, ctx)
        if isinstance(node, Unary):
            operand, kind = self.entity_level(node.operand, entity, found, ctx)
            want = "bool" if node.op == "not" else "num"
            if kind not in (want, "null"):
                raise self.fail(kpi, node, f"`{node.op}` needs {KIND_WORDS[want]}, found {KIND_WORDS[kind]}")
            return Unary(node.op, operand, span=node.span), kind
        if isinstance(node, Column | Name):
            text = to_source(node)
            raise self.fail(
                kpi,
                node,
                f"`{text}` is a row value, but this expression is computed once per {entity}",
                hint=f"aggregate it per {entity}, e.g. sum({text}) or count(...)",
            )
        raise self.fail(kpi, node, f"`{to_source(node)}` cannot be computed per {entity}")

    def conversions(self, node: Call, ctx: KpiContext) -> Conversions:
        """``conversions(visits, orders, 7 days)``, or with steps between (``conversions(clicks, signups,
        orders, 7 days)``); ``per user`` when the sources share several entities."""
        kpi = ctx.kpi
        steps, within, same = self._conversion_args(node, kpi)
        if kpi.window is not None:
            raise self.fail(
                kpi, node, f"conversions() counts per period of the KPI's grain, which `window: {kpi.window}` overlaps"
            )
        sources = [self.project.sources[s] for s in steps]
        shared = [e for e in sources[0].entities if all(e in s.entities for s in sources[1:])]
        entity = node.per or (shared[0] if len(shared) == 1 else None)
        if entity is None or entity not in shared:
            found = ", ".join(f"`{e}`" for e in shared) or "none"
            raise self.fail(
                kpi,
                node,
                f"conversions() matches rows of {_listed(steps)} by an entity they all declare (found: {found})",
                hint="declare it on each, e.g. entities: {user: user_id}; with several, add `per user`",
            )
        keys = [s.entities[entity] for s in sources]
        for source, column in zip(steps, keys, strict=True):
            if source in self.schemas and column not in self.schemas[source]:
                raise self.fail(
                    kpi, node, f"entity `{entity}` is column `{column}` of source `{source}`, which has no such column"
                )
        typed = [(s, k, kind_of(self.schemas[s][k])) for s, k in zip(steps, keys, strict=True) if s in self.schemas]
        for (s1, k1, kind1), (s2, k2, kind2) in itertools.pairwise(typed):
            if kind1 != kind2:
                raise self.fail(
                    kpi,
                    node,
                    f"`{s1}.{k1}` is {KIND_WORDS[kind1]} but `{s2}.{k2}` is {KIND_WORDS[kind2]}",
                    hint="the same entity must have the same type in every source",
                )
        return Conversions(
            "conversions",
            steps[0],
            span=node.span,
            same=same,
            per=keys[0],
            entity=entity,
            target=steps[-1],
            target_key=keys[-1],
            within=within,
            via=tuple(zip(steps[1:-1], keys[1:-1], strict=True)),
        )

    def _conversion_args(self, node: Call, kpi: KpiSpec) -> tuple[list[str], int | None, tuple[str, ...]]:
        """The steps (leading names of sources), the window in days and the columns all steps must share."""
        usage = "e.g. conversions(sessions, orders, 7 days): orders within 7 days of a session by the same entity"
        args = node.args
        if node.where is not None or len(args) < 2 or not all(isinstance(a, Name) for a in args[:2]):
            raise self.fail(
                kpi,
                node,
                "conversions() takes two or more sources (the steps), an optional window and columns all must share",
                hint=usage,
            )
        steps = [args[0].name, args[1].name]
        rest = list(args[2:])
        while rest and isinstance(rest[0], Name) and rest[0].name in self.project.sources:
            steps.append(rest.pop(0).name)
        for arg, name in zip(args, steps, strict=False):
            if name not in self.project.sources:
                raise self.fail(
                    kpi, arg, f"unknown source `{name}`", hint=did_you_mean(name, self.project.sources, "sources")
                )
        within = None
        for offset in (a for a in rest if not isinstance(a, Name)):
            if within is not None or not (
                isinstance(offset, Offset) and offset.unit in ("day", "week") and offset.n >= 1
            ):
                raise self.fail(
                    kpi, offset, "the conversion window is a number of days or weeks, e.g. 7 days", hint=usage
                )
            within = offset.n * (7 if offset.unit == "week" else 1)
        same = tuple(a.name for a in rest if isinstance(a, Name))  # MetricFlow's constant properties
        for column in same:
            for source in steps:
                if source in self.schemas and column not in self.schemas[source]:
                    raise self.fail(
                        kpi,
                        node,
                        f"`{column}` must be a column of {_listed(steps)}, but `{source}` has none",
                        hint=did_you_mean(column, self.schemas[source], f"columns of {source}")
                        or "extra arguments name columns whose values must match, e.g. session_id",
                    )
        return steps, within, same

    def over_next(self, node: Call, entity: str, found: set[str], ctx: KpiContext) -> Ahead:
        """``over_next(sum(orders.amount), 3)``: the entity's sum or count over this period and the next two."""
        usage = "e.g. over_next(sum(orders.amount), 3): this period and the 2 after it"
        if node.where is not None or len(node.args) != 2 or not isinstance(node.args[0], Call):
            raise self.fail(ctx.kpi, node, "over_next() takes an aggregate and a number of periods", hint=usage)
        k = node.args[1]
        if not (isinstance(k, Number) and isinstance(k.value, int) and 1 <= k.value <= 36):
            raise self.fail(ctx.kpi, k, "over_next() covers a whole number of periods from 1 to 36", hint=usage)
        inner = self.aggregate(node.args[0], ctx)
        if inner.func not in ("sum", "count"):
            raise self.fail(
                ctx.kpi, node.args[0], f"over_next() adds up periods, so it takes sum or count, not {inner.func}()"
            )
        found.add(inner.source)
        return Ahead(inner, int(k.value), span=node.span)


def _listed(names: list[str]) -> str:
    """`a` and `b`, or `a`, `b` and `c`."""
    quoted = [f"`{n}`" for n in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]
