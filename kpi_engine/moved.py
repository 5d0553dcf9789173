"""Why a number moved: a sum's or a ratio's change between two periods split exactly across a dimension.

A sum's change is the sum of its values' changes. A ratio ``k * N / D`` (CTR, conversion rate, CPC: both
parts sums or counts) moves because values' own rates moved (the **rate** effect) and because the weight of
each value in the denominator moved (the **mix** effect). With ``w`` a value's share of ``D`` and ``r`` its
rate, both midpoints between the two periods::

    rate_i = (r1_i - r0_i) * (w0_i + w1_i) / 2
    mix_i  = (w1_i - w0_i) * ((r0_i + r1_i) / 2 - (R0 + R1) / 2)

and ``sum(rate_i + mix_i) == R1 - R0`` exactly (the shares sum to 1 in both periods). A value present in one
period only has no rate change: its whole effect is mix. Rows whose dimension is null are one more value.
The parts ``N`` and ``D`` are evaluated as two extra series in the same run: their aggregates are the KPI's
own, so the plan shares them and the run reads nothing more.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from . import periods
from .ir import Agg, BoundKpi
from .model import KpiSpec
from .nodes import BinOp, Node, Number, Unary
from .units import Shown, format_change

ADDITIVE = ("sum", "count")
NULL_LABEL = "(none)"


def additive(node: Node) -> bool:
    """A linear combination of sums and counts (revenue - cost, 2 * count(x))."""
    if isinstance(node, Agg):
        return node.func in ADDITIVE and node.per is None and not node.lag
    if isinstance(node, Number):
        return False
    if isinstance(node, Unary) and node.op == "-":
        return additive(node.operand)
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        return additive(node.left) and additive(node.right)
    if isinstance(node, BinOp) and node.op == "*":
        return (isinstance(node.left, Number) and additive(node.right)) or (
            isinstance(node.right, Number) and additive(node.left)
        )
    if isinstance(node, BinOp) and node.op == "/":
        return isinstance(node.right, Number) and additive(node.left)
    return False


def parts(kpi: BoundKpi) -> tuple[str, Node, Node | None, float] | None:
    """``("sum", expr, None, 1)`` or ``("ratio", N, D, k)`` for a KPI ``k * N / D``; None for other shapes
    (windows, cohorts, distinct counts, means, previous(): their changes do not split this way)."""
    spec = kpi.spec
    if spec.window is not None or spec.cohort or spec.kind != "quantitative" or kpi.lookback:
        return None
    expr, scale = kpi.expr, 1.0
    while isinstance(expr, BinOp) and expr.op == "*" and isinstance(expr.left, Number):
        scale, expr = scale * float(expr.left.value), expr.right
    while isinstance(expr, BinOp) and expr.op in ("*", "/") and isinstance(expr.right, Number):
        factor = float(expr.right.value)
        if expr.op == "/" and factor == 0:
            return None
        scale, expr = (scale * factor if expr.op == "*" else scale / factor), expr.left
    if additive(expr):
        return "sum", kpi.expr, None, 1.0
    if isinstance(expr, BinOp) and expr.op == "/":
        top, bottom = expr.left, expr.right
        if isinstance(top, BinOp) and top.op == "*" and isinstance(top.left, Number) and additive(top.right):
            scale, top = scale * float(top.left.value), top.right
        if additive(top) and additive(bottom):
            return "ratio", top, bottom, scale
    return None


def part_ids(kpi_id: str) -> tuple[str, str]:
    return f"{kpi_id}~numerator", f"{kpi_id}~denominator"


def with_parts(catalog: Any, ids: Iterable[str]) -> tuple[Any, list[str]]:
    """A copy of ``catalog`` that also evaluates each ratio KPI's numerator and denominator (by
    dimension) under the ids ``part_ids``; returns it and the extra ids to ask for."""
    extra: dict[str, BoundKpi] = {}
    for kpi_id in ids:
        bound = catalog.bound.get(kpi_id)
        shape = parts(bound) if bound is not None and bound.spec.dimensions else None
        if shape is None or shape[0] != "ratio":
            continue
        for part_id, node in zip(part_ids(kpi_id), shape[1:3], strict=True):
            spec = dataclasses.replace(bound.spec, id=part_id, target=None, review=None, alerts=(), events=())
            extra[part_id] = dataclasses.replace(bound, spec=spec, expr=node, uses=())
    return (catalog.with_kpis(extra), list(extra)) if extra else (catalog, [])


@dataclass(frozen=True)
class Effect:
    """One dimension value's part of a change: ``rate + mix == change`` (``mix`` is 0 for a sum)."""

    value: str
    rate: float
    mix: float
    before: float | None  # its own value (its rate, for a ratio) in each period
    after: float | None
    share_before: float | None = None  # its share of the denominator
    share_after: float | None = None

    @property
    def change(self) -> float:
        return self.rate + self.mix


@dataclass(frozen=True)
class Movement:
    """A KPI's change between two periods split across one dimension."""

    kpi: str
    kind: str  # sum | ratio
    dim: str
    against: str  # previous | year
    period: str
    other: str
    before: float
    after: float
    effects: tuple[Effect, ...]
    unit: Shown

    @property
    def change(self) -> float:
        return self.after - self.before

    def text(self, name: str, top: int = 3) -> str:
        """``CTR -0.31 pp vs 2026-W21: search rate -0.22 pp, mix shift to display -0.09 pp``."""
        items: list[tuple[float, str]] = []
        for e in self.effects:
            if self.kind == "sum":
                items.append((e.rate, f"{e.value} {format_change(e.rate, self.unit)}"))
                continue
            items.append((e.rate, f"{e.value} rate {format_change(e.rate, self.unit)}"))
            grew = (e.share_after or 0) >= (e.share_before or 0)
            items.append(
                (e.mix, f"mix shift {'to' if grew else 'away from'} {e.value} {format_change(e.mix, self.unit)}")
            )
        items = [i for i in items if abs(i[0]) > 1e-12]
        items.sort(key=lambda i: -abs(i[0]))
        head = f"{name} {format_change(self.change, self.unit)} vs {self.other}"
        rest = f" (+{len(items) - top} smaller)" if len(items) > top else ""
        return head + (": " + ", ".join(t for _, t in items[:top]) + rest if items else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dim,
            "against": self.against,
            "period": self.period,
            "other_period": self.other,
            "before": self.before,
            "after": self.after,
            "change": self.change,
            "kind": self.kind,
            "effects": [
                {
                    "value": e.value,
                    "rate": e.rate,
                    "mix": e.mix,
                    "change": e.change,
                    "before": e.before,
                    "after": e.after,
                    "share_before": e.share_before,
                    "share_after": e.share_after,
                }
                for e in self.effects
            ],  # fmt: skip
        }


def by_value(frame: pl.DataFrame, dim: str, start: dt.date) -> tuple[dict[str, float], float | None]:
    """Each value of ``dim`` in the period starting ``start`` (summed over the other dimensions), the total,
    and the rest of the total (rows with a null ``dim``) as ``NULL_LABEL``."""
    rows = frame.filter(pl.col("start") == start)
    total_rows = rows.filter(pl.col("is_total"))
    total = total_rows["value"][0] if total_rows.height else None
    parts: dict[str, list[float]] = {}
    for value, x in rows.filter(~pl.col("is_total") & pl.col(dim).is_not_null()).select(dim, "value").iter_rows():
        parts.setdefault(str(value), []).append(0.0 if x is None else float(x))
    values = {v: math.fsum(xs) for v, xs in sorted(parts.items())}  # exact: the same bytes whatever the order
    if total is not None:
        rest = float(total) - math.fsum(values.values())
        if abs(rest) > 1e-9 * max(1.0, abs(float(total))):
            values[NULL_LABEL] = rest
    return values, (float(total) if total is not None else None)


def explain(result: Any, kpi: KpiSpec, start: dt.date, other: dt.date, against: str) -> list[Movement]:
    """The change of ``kpi`` from the period starting ``other`` to the one starting ``start``, split across
    each of its dimensions; empty when its shape does not split or a period has no data."""
    bound = result.bound_of(kpi.id)
    shape = parts(bound) if bound is not None else None
    frame = result.series.get(kpi.id)
    if shape is None or frame is None or not kpi.dimensions:
        return []
    cal = result.project.calendar
    labels = (periods.label(start, kpi.grain, cal), periods.label(other, kpi.grain, cal))
    out = []
    for dim in kpi.dimensions:
        if shape[0] == "sum":
            now, total1 = by_value(frame, dim, start)
            then, total0 = by_value(frame, dim, other)
            if total0 is None or total1 is None:
                continue
            effects = tuple(
                Effect(v, now.get(v, 0.0) - then.get(v, 0.0), 0.0, then.get(v), now.get(v))
                for v in sorted(now.keys() | then.keys())
            )
            out.append(Movement(kpi.id, "sum", dim, against, labels[0], labels[1], total0, total1, effects, kpi.shown))
            continue
        movement = _ratio(result, kpi, dim, start, other, shape[3], against, labels)
        if movement is not None:
            out.append(movement)
    return out


def _ratio(
    result: Any, kpi: KpiSpec, dim: str, start: dt.date, other: dt.date, scale: float, against: str,
    labels: tuple[str, str],
) -> Movement | None:  # fmt: skip
    num_id, den_id = part_ids(kpi.id)
    if num_id not in result.parts or den_id not in result.parts:
        return None
    n1, tn1 = by_value(result.parts[num_id], dim, start)
    n0, tn0 = by_value(result.parts[num_id], dim, other)
    d1, td1 = by_value(result.parts[den_id], dim, start)
    d0, td0 = by_value(result.parts[den_id], dim, other)
    if not (tn0 is not None and tn1 is not None and td0 and td1):
        return None  # a period without data or with a zero denominator: its ratio is undefined
    big0, big1 = scale * tn0 / td0, scale * tn1 / td1
    mid = (big0 + big1) / 2
    effects = []
    for v in sorted((d0.keys() | d1.keys()) - {""}):
        w0, w1 = d0.get(v, 0.0) / td0, d1.get(v, 0.0) / td1
        r0 = scale * n0[v] / d0[v] if d0.get(v) else None
        r1 = scale * n1[v] / d1[v] if d1.get(v) else None
        a, b = (r0 if r0 is not None else r1), (r1 if r1 is not None else r0)
        if a is None or b is None:
            continue  # a value with a zero denominator in both periods weighs nothing
        rate = (b - a) * (w0 + w1) / 2
        mix = (w1 - w0) * ((a + b) / 2 - mid)
        effects.append(Effect(v, rate, mix, r0, r1, w0, w1))
    return Movement(kpi.id, "ratio", dim, against, labels[0], labels[1], big0, big1, tuple(effects), kpi.shown)


def around(result: Any, kpi: KpiSpec, start: dt.date) -> dict[str, list[Movement]]:
    """The period starting ``start`` against the previous period and a year earlier, per dimension."""
    end = periods.end_of(start, kpi.grain)
    year = periods.year_earlier_span(periods.Span(start, end), result.project.calendar).start
    out: dict[str, list[Movement]] = {}
    for against, other in (("previous", periods.shift(start, kpi.grain, -1)), ("year", year)):
        found = explain(result, kpi, start, other, against)
        if found:
            out[against] = found
    return out


def latest(result: Any, kpi: KpiSpec) -> dict[str, list[Movement]]:
    """The latest complete period with data against the previous period and a year earlier."""
    frame = result.series.get(kpi.id)
    if frame is None or not kpi.dimensions:
        return {}
    done = frame.filter(pl.col("is_total") & pl.col("complete") & pl.col("has_data")).sort("start")
    return around(result, kpi, done["start"][-1]) if done.height else {}


def texts(result: Any, kpi: KpiSpec, start: dt.date | None) -> list[str]:
    """The report's lines: one per comparison and dimension."""
    if start is None:
        return []
    return [m.text(kpi.name) for found in around(result, kpi, start).values() for m in found]
