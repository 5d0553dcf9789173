"""Forecasts to a target's deadline: a least-squares line through the target window's covered periods."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from . import periods
from .api import Result
from .formula import BinOp, Number
from .frame import rows_for
from .ir import Agg
from .model import KpiSpec, TargetSpec
from .periods import Span

MIN_FORECAST_POINTS = 3
FORECAST_HISTORY = 4


@dataclass(frozen=True)
class Forecast:
    """A least-squares trend projected to the deadline, or why there is none."""

    value: float | None
    reaches_target: bool | None
    periods: tuple[str, ...]
    method: str


def window_span(t: TargetSpec, as_of: dt.date) -> Span:
    end = min(as_of, t.deadline) if t.deadline else as_of
    return Span(t.start, end)  # type: ignore[arg-type]


def is_additive(node: Any) -> bool:
    """A KPI whose values add up across periods (sums and counts, and sums of those)."""

    if isinstance(node, Agg):
        return node.func in ("sum", "count") and node.per is None
    if isinstance(node, BinOp) and node.op in ("+", "-"):
        return is_additive(node.left) and is_additive(node.right)
    if isinstance(node, BinOp) and node.op == "*":
        return (isinstance(node.left, Number) and is_additive(node.right)) or (
            isinstance(node.right, Number) and is_additive(node.left)
        )
    return False


def forecast_at_deadline(
    kpi: KpiSpec, t: TargetSpec, frame: pl.DataFrame, result: Result, dims: Mapping[str, Any], final: float | None
) -> Forecast | None:
    """Least squares over the complete periods of the target window (plus earlier ones when fewer than 4).

    Only periods that start by the deadline and whose every day has data count: a period after the deadline
    would make the forecast move with --as-of once the deadline has passed, and a period 3% covered by its
    source is not a point on the trend.
    """
    if t.deadline is None:
        return None
    rows = rows_for(frame, dims).filter(
        pl.col("complete")
        & pl.col("has_data")
        & pl.col("value").is_not_null()
        & (pl.col("coverage") >= 1.0)
        & (pl.col("start") <= t.deadline)
    )
    inside = rows.filter(pl.col("start") >= t.start) if t.start else rows
    before = rows.filter(pl.col("start") < t.start) if t.start else rows.clear()
    used = inside
    if used.height < FORECAST_HISTORY and before.height:
        used = pl.concat([before.tail(FORECAST_HISTORY - used.height), used])
    if used.height < MIN_FORECAST_POINTS:
        return Forecast(None, None, tuple(used["period"]), f"insufficient data: {used.height} complete periods")
    origin = used["start"][0]
    x = np.array([(d - origin).days for d in used["start"]], dtype=float)
    y = used["value"].to_numpy().astype(float)
    slope, intercept = np.polyfit(x, y, 1)
    grain = kpi.grain
    deadline_period = periods.start_of(t.deadline, grain, result.project.calendar)
    predict = lambda day: float(intercept + slope * (day - origin).days)  # noqa: E731
    value = predict(deadline_period)
    method = f"least squares over {used.height} {grain.value} periods"
    if t.measure == "window" and is_additive(bound_expr(result, kpi.id)):
        window = result.spans.get((kpi.id, window_span(t, result.as_of)))
        so_far = (
            rows_for(window, dims)["value"].item() if window is not None and rows_for(window, dims).height else None
        )
        if so_far is None:
            return Forecast(None, None, tuple(used["period"]), "insufficient data: no window value")
        value = so_far
        day = result.as_of + dt.timedelta(days=1)
        while day <= t.deadline:
            start = periods.start_of(day, grain, result.project.calendar)
            end = min(periods.end_of(start, grain), t.deadline)
            share = ((end - day).days + 1) / ((periods.end_of(start, grain) - start).days + 1)
            value += predict(start) * share
            day = end + dt.timedelta(days=1)
        method += ", summed to the deadline"
    reaches = None
    if final is not None:
        if t.direction == "increase":
            reaches = value >= final
        elif t.direction == "decrease":
            reaches = value <= final
        elif t.direction == "maintain" and t.tolerance is not None:
            reaches = abs(value - final) <= t.tolerance
    if t.direction == "range" and t.min is not None and t.max is not None:
        reaches = t.min <= value <= t.max
    return Forecast(value, reaches, tuple(used["period"]), method)


def bound_expr(result: Result, kpi_id: str) -> Any:
    plan = result.plan
    if plan is None:
        return None
    for kp in plan.kpis:
        if kp.id == kpi_id:
            return kp.expr
    return None
