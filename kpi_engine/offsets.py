"""Binding ``previous(expr, n)`` and calendar offsets (``previous(expr, 1 month)``) at the aggregate level."""

from __future__ import annotations

from .entities import EntityBinder
from .formula import Call, Name, Node, Number, Offset, to_source
from .ir import MAX_PREVIOUS, Previous
from .model import MAX_DAYS, MONTHS_PER, Grain
from .rowbind import KpiContext


class OffsetBinder(EntityBinder):
    """``previous()``; ``agg_level`` (binding the expression it shifts) comes from the Binder in ``resolve``."""

    def agg_level(self, node: Node, ctx: KpiContext, shift: int = 0) -> Node:
        raise NotImplementedError

    def previous(self, node: Call, ctx: KpiContext, shift: int) -> Previous:
        """``previous(expr)``, ``previous(expr, n)`` or ``previous(expr, 1 month)``; ``shift`` is how far back
        the enclosing expression already looks, so that nested offsets add up in ``ctx.lookback``."""
        kpi = ctx.kpi
        if node.where is not None or not 1 <= len(node.args) <= 2:
            raise self.fail(
                kpi,
                node,
                "previous() takes an expression and an optional offset",
                hint="previous(sum(ads.revenue)) or previous(sum(ads.revenue), 12)",
            )
        n = 1
        if len(node.args) == 2 and isinstance(node.args[1], Offset):
            n, unit, periods = self.calendar_offset(node.args[1], ctx)
            ctx.lookback = max(ctx.lookback, shift + periods)
            inner = self.agg_level(node.args[0], ctx, shift + periods)
            return Previous(inner, n, unit, span=node.span) if unit else Previous(inner, n, span=node.span)
        if len(node.args) == 2:
            arg = node.args[1]
            if not (isinstance(arg, Number) and isinstance(arg.value, int) and 1 <= arg.value <= MAX_PREVIOUS):
                raise self.fail(
                    kpi,
                    arg,
                    f"previous() offset must be a whole number of periods from 1 to {MAX_PREVIOUS}",
                    hint="e.g. previous(sum(ads.revenue), 12) for a year of months, or previous(sum(x), 1 year)",
                )
            n = int(arg.value)
        ctx.lookback = max(ctx.lookback, shift + n)
        return Previous(self.agg_level(node.args[0], ctx, shift + n), n, span=node.span)

    def calendar_offset(self, offset: Offset, ctx: KpiContext) -> tuple[int, Grain | None, int]:
        """``previous(x, 1 month)``: (n, unit, periods to look back). A unit that is a whole number of the KPI's
        periods (12 months on a monthly KPI) is a plain offset (unit None); a longer one that is not (a month
        on a daily KPI) is a calendar shift; one shorter than the period is refused."""
        kpi, grain, unit = ctx.kpi, ctx.kpi.grain, Grain(offset.unit)
        if not 1 <= offset.n <= MAX_PREVIOUS:
            raise self.fail(kpi, offset, f"previous() offset must be from 1 to {MAX_PREVIOUS} {unit}s")
        in_months = unit in MONTHS_PER and grain in MONTHS_PER
        if unit == grain or (in_months and MONTHS_PER[unit] % MONTHS_PER[grain] == 0):
            n = offset.n * (MONTHS_PER[unit] // MONTHS_PER[grain] if in_months else 1)
            return n, None, n
        if unit == Grain.WEEK and grain == Grain.DAY:
            return offset.n * 7, None, offset.n * 7
        if grain in MONTHS_PER or (grain == Grain.WEEK and unit == Grain.DAY):
            raise self.fail(
                kpi,
                offset,
                f"previous() by {to_source(offset)} on a {grain} KPI: the offset is shorter than the period",
                hint=f"offset by whole {grain}s, e.g. previous(x, 1) or previous(x, 1 year)",
            )
        days = MAX_DAYS[unit] * offset.n
        return offset.n, unit, days if grain == Grain.DAY else days // 7 + 1

    def at_start(self, node: Call, ctx: KpiContext, shift: int) -> Previous:
        """``at_start(x, month)``: x in the period holding the first day of the enclosing month (quarter,
        year, week): MetricFlow's ``offset_to_grain``."""
        kpi, grain = ctx.kpi, ctx.kpi.grain
        usage = "e.g. count(bookings) - at_start(count(bookings), month) on a daily KPI"
        unit = node.args[1] if len(node.args) == 2 else None
        if (
            node.where is not None
            or not isinstance(unit, Name)
            or unit.name not in ("week", "month", "quarter", "year")
        ):
            raise self.fail(kpi, node, "at_start() takes an expression and week, month, quarter or year", hint=usage)
        enclosing = Grain(unit.name)
        if MAX_DAYS[enclosing] <= MAX_DAYS[grain]:
            raise self.fail(
                kpi, unit, f"at_start(..., {unit.name}) on a {grain} KPI: a {unit.name} is not longer", hint=usage
            )
        if grain in (Grain.DAY, Grain.WEEK):  # periods it may look back: the whole unit
            periods = MAX_DAYS[enclosing] // MAX_DAYS[grain] + 1
        else:
            periods = MONTHS_PER[enclosing] // MONTHS_PER[grain]
        ctx.lookback = max(ctx.lookback, shift + periods)
        inner = self.agg_level(node.args[0], ctx, shift + periods)
        return Previous(inner, 0, enclosing, True, span=node.span)
