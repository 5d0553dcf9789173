"""Binding ``previous(expr, n)`` and calendar offsets (``previous(expr, 1 month)``) at the aggregate level."""

from __future__ import annotations

import dataclasses

from .entities import EntityBinder
from .formula import Call, Name, Node, Number, Offset, to_source
from .ir import MAX_PREVIOUS, Agg, Ahead, Conversions, Previous, Seen
from .model import MAX_DAYS, MONTHS_PER, Grain
from .nodes import find_all, map_children
from .rowbind import KpiContext

#: how far back ``previous(x, N days)`` may move a coarser KPI's rows
MAX_LAG_DAYS = 366


class OffsetBinder(EntityBinder):
    """``previous()``; ``agg_level`` (binding the expression it shifts) comes from the Binder in ``resolve``."""

    def agg_level(self, node: Node, ctx: KpiContext, shift: int = 0) -> Node:
        raise NotImplementedError

    def previous(self, node: Call, ctx: KpiContext, shift: int) -> Node:
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
        if len(node.args) == 2 and isinstance(node.args[1], Offset) and self._finer(node.args[1], ctx.kpi.grain):
            return self.lagged(node, node.args[1], ctx, shift)
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
        """``previous(x, 1 month)``: (n, unit, periods to look back). An offset that is a whole number of the
        KPI's periods (12 months or 1 year on a monthly KPI) is a plain offset (unit None); a longer one that
        is not (a month on a daily KPI) is a calendar shift; months that do not divide into the KPI's
        quarters or years are refused (days and weeks move the rows instead: ``lagged``)."""
        kpi, grain, unit = ctx.kpi, ctx.kpi.grain, Grain(offset.unit)
        if not 1 <= offset.n <= MAX_PREVIOUS:
            raise self.fail(kpi, offset, f"previous() offset must be from 1 to {MAX_PREVIOUS} {unit}s")
        if unit == grain:
            return offset.n, None, offset.n
        if unit in MONTHS_PER and grain in MONTHS_PER:
            months = offset.n * MONTHS_PER[unit]
            if months % MONTHS_PER[grain]:
                raise self.fail(
                    kpi,
                    offset,
                    f"previous() by {to_source(offset)} on a {grain} KPI: not a whole number of {grain}s",
                    hint=f"offset by whole {grain}s, e.g. previous(x, 1) or previous(x, 1 year), or by days",
                )
            return months // MONTHS_PER[grain], None, months // MONTHS_PER[grain]
        if unit == Grain.WEEK and grain == Grain.DAY:
            return offset.n * 7, None, offset.n * 7
        if unit == Grain.DAY and grain == Grain.WEEK:  # whole weeks of days (others move the rows)
            return offset.n // 7, None, offset.n // 7
        days = MAX_DAYS[unit] * offset.n
        return offset.n, unit, days if grain == Grain.DAY else days // 7 + 1

    @staticmethod
    def _finer(offset: Offset, grain: Grain) -> bool:
        """An offset by days or weeks that is not a whole number of the KPI's periods (5 days on a monthly KPI,
        10 days on a weekly one): the rows move, not the periods."""
        if offset.unit not in ("day", "week") or grain == Grain.DAY:
            return False
        return grain != Grain.WEEK or (offset.unit == "day" and offset.n % 7 != 0)

    def lagged(self, node: Call, offset: Offset, ctx: KpiContext, shift: int) -> Node:
        """``previous(x, 5 days)`` on a monthly KPI: x over each month's days moved 5 days back (1-5 March
        count in April), recomputed from the rows, as MetricFlow's ``offset_window`` at a coarser grain."""
        kpi = ctx.kpi
        days = offset.n * (7 if offset.unit == "week" else 1)
        if not 1 <= days <= MAX_LAG_DAYS:
            raise self.fail(kpi, offset, f"previous() by days goes back from 1 to {MAX_LAG_DAYS} days")
        if kpi.window is not None:
            raise self.fail(
                kpi,
                offset,
                f"previous() by {to_source(offset)} moves the rows of each {kpi.grain}, which `window: "
                f"{kpi.window}` already widens",
                hint=f"offset by whole {kpi.grain}s: previous(x, 1)",
            )
        inner = self.agg_level(node.args[0], ctx, shift)

        def move(n: Node) -> Node:
            if isinstance(n, Agg):
                if isinstance(n, Conversions) or find_all(n, (Seen, Ahead)):
                    raise self.fail(
                        kpi,
                        offset,
                        f"previous() by {to_source(offset)} cannot move `{to_source(node.args[0])}`: conversions, "
                        "`new` and `active()` count whole periods",
                        hint=f"offset by whole {kpi.grain}s: previous(x, 1)",
                    )
                return dataclasses.replace(n, lag=n.lag + days)
            return map_children(n, move)

        return move(inner)

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
