"""Forecasts to a target's deadline: a least-squares line through the target window's covered periods, with
80% and 95% prediction intervals and the chance of reaching the target.

The interval around the line's value at ``x`` is ``m * se(x)``, with ``se(x) = s * sqrt(1 + 1/n + (x -
mean)^2 / Sxx)`` from least-squares theory (the noise, and how uncertain the line's level and slope are). The
multiplier ``m`` is Student's t with n - 2 degrees of freedom, raised to the matching quantile of the
series' own past forecast errors: at every earlier origin the same line, fitted on as many periods, forecast
1 to 4 periods ahead, and each error divided by its ``se`` is one sample (used once there are 8). A series
whose trend has forecast worse than its residuals suggest (seasonality, level shifts) so gets wider
intervals. The chance of reaching the target is read from the same distribution. ``bench/backtest.py``
measures the coverage this gives on the demo (docs/performance.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from . import periods
from .api import Result
from .frame import rows_for
from .model import KpiSpec, TargetSpec
from .moved import additive
from .periods import Span

if TYPE_CHECKING:  # numpy loads only when a forecast is made: `kpi run` of KPIs without targets never needs it
    import numpy as np

MIN_FORECAST_POINTS = 3
FORECAST_HISTORY = 4
HORIZONS = 4  # past forecasts 1 to 4 periods ahead calibrate the interval
MIN_PAST_ERRORS = 8


@dataclass(frozen=True)
class Forecast:
    """A least-squares trend projected to the deadline (with its 80% and 95% prediction intervals and the
    chance of reaching the target), or why there is none."""

    value: float | None
    reaches_target: bool | None
    periods: tuple[str, ...]
    method: str
    interval_80: tuple[float, float] | None = None
    interval_95: tuple[float, float] | None = None
    probability: float | None = None  # of reaching the target by the deadline


def t_cdf(value: float, dof: int) -> float:
    """Student's t CDF for a whole number of degrees of freedom, in closed form (Abramowitz and Stegun
    26.7.3-4: a finite series in the angle atan(t / sqrt(dof)))."""
    theta = math.atan(value / math.sqrt(dof))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if dof % 2:
        term, total = math.cos(theta), 0.0
        if dof > 1:
            total = term
            for k in range(3, dof - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        within = (2 / math.pi) * (theta + s * total)
    else:
        term = total = 1.0
        for k in range(2, dof - 1, 2):
            term *= c2 * (k - 1) / k
            total += term
        within = s * total
    return 0.5 + within / 2


@functools.cache
def t_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of Student's t (bisection on the exact CDF, to 1e-10)."""
    low, high = -1e6, 1e6
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, dof) < p else (low, mid)
        if high - low < 1e-10:
            break
    return (low + high) / 2


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, float]:
    """Least squares: (level at the mean x, slope, residual s, mean x, Sxx)."""
    import numpy as np

    n, xm = len(x), float(x.mean())
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - y.mean())).sum()) / sxx if sxx else 0.0
    resid = y - (y.mean() + slope * (x - xm))
    return float(y.mean()), slope, float(np.sqrt((resid**2).sum() / max(n - 2, 1))), xm, sxx


def past_errors(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """|error| / se of the line fitted on ``n`` periods at every earlier origin, 1 to HORIZONS periods ahead."""
    import numpy as np

    out = []
    for end in range(n, len(y)):
        level, slope, s, xm, sxx = _line(x[end - n : end], y[end - n : end])
        for h in range(HORIZONS):
            if end + h >= len(y) or not s or not sxx:
                break
            se = s * np.sqrt(1 + 1 / n + (x[end + h] - xm) ** 2 / sxx)
            out.append(abs(y[end + h] - level - slope * (x[end + h] - xm)) / se)
    return np.array(out)


def predict(
    x: np.ndarray, y: np.ndarray, n: int, future: np.ndarray, weights: np.ndarray
) -> tuple[float, float, float, float, int]:
    """The line fitted on the last ``n`` points, summed over ``future`` with ``weights``: (value, se, 80% and
    95% multipliers of ``se``, degrees of freedom). The outcome is read as ``value + scale * T`` with T
    Student's t and ``scale = se * m80 / t80`` (for the chance of reaching a target)."""
    import numpy as np

    level, slope, s, xm, sxx = _line(x[-n:], y[-n:])
    value = float(weights @ (level + slope * (future - xm)))
    spread = float(weights @ weights + weights.sum() ** 2 / n + (weights @ (future - xm)) ** 2 / sxx) if sxx else 0.0
    se = s * np.sqrt(spread)
    dof = max(n - 2, 1)
    t80, t95 = t_quantile(0.9, dof), t_quantile(0.975, dof)
    m80, m95 = t80, t95
    errors = past_errors(x, y, n)
    if len(errors) >= MIN_PAST_ERRORS:
        m80, m95 = max(t80, float(np.quantile(errors, 0.8))), max(t95, float(np.quantile(errors, 0.95)))
    return value, se, m80, m95, dof


def _reaches(t: TargetSpec, value: float, final: float | None) -> bool | None:
    """Whether ``value`` meets the target at the deadline; None when that is not defined."""
    if t.direction == "range" and t.min is not None and t.max is not None:
        return t.min <= value <= t.max
    if final is None:
        return None
    if t.direction == "increase":
        return value >= final
    if t.direction == "decrease":
        return value <= final
    if t.direction == "maintain" and t.tolerance is not None:
        return abs(value - final) <= t.tolerance
    return None


def chance(t: TargetSpec, center: float, scale: float, dof: int, final: float | None) -> float | None:
    """P(the deadline's value meets the target) when it is ``center + scale * T``, T Student's t."""

    def below(v: float) -> float:
        return t_cdf((v - center) / scale, dof) if scale > 0 else float(center <= v)

    if t.direction == "range" and t.min is not None and t.max is not None:
        return below(t.max) - below(t.min)
    if final is None:
        return None
    if t.direction == "increase":
        return 1 - below(final)
    if t.direction == "decrease":
        return below(final)
    if t.direction == "maintain" and t.tolerance is not None:
        return below(final + t.tolerance) - below(final - t.tolerance)
    return None


def window_span(t: TargetSpec, as_of: dt.date) -> Span:
    end = min(as_of, t.deadline) if t.deadline else as_of
    return Span(t.start, end)  # type: ignore[arg-type]


def forecast_at_deadline(
    kpi: KpiSpec, t: TargetSpec, frame: pl.DataFrame, result: Result, dims: Mapping[str, Any], final: float | None
) -> Forecast | None:
    """Least squares over the complete periods of the target window (plus earlier ones when fewer than 4).

    Only periods that start by the deadline and whose every day has data count: a period after the deadline
    would make the forecast move with --as-of once the deadline has passed, and a period 3% covered by its
    source is not a point on the trend.
    """
    import numpy as np

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
    line_at = lambda day: float(intercept + slope * (day - origin).days)  # noqa: E731
    value = line_at(deadline_period)
    method = f"least squares over {used.height} {grain.value} periods"
    future, weights, offset = [deadline_period], [1.0], 0.0
    if t.measure == "window" and additive(bound_expr(result, kpi.id)):
        window = result.spans.get((kpi.id, window_span(t, result.as_of)))
        so_far = (
            rows_for(window, dims)["value"].item() if window is not None and rows_for(window, dims).height else None
        )
        if so_far is None:
            return Forecast(None, None, tuple(used["period"]), "insufficient data: no window value")
        value = offset = so_far
        future, weights = [], []
        day = result.as_of + dt.timedelta(days=1)
        while day <= t.deadline:
            start = periods.start_of(day, grain, result.project.calendar)
            end = min(periods.end_of(start, grain), t.deadline)
            share = ((end - day).days + 1) / ((periods.end_of(start, grain) - start).days + 1)
            value += line_at(start) * share
            future.append(start)
            weights.append(share)
            day = end + dt.timedelta(days=1)
        method += ", summed to the deadline"
    reaches = _reaches(t, value, final)
    if not future:  # the deadline has passed: the window's value is known
        return Forecast(value, None if reaches is None else bool(reaches), tuple(used["period"]), method)
    known = rows.filter(pl.col("start") <= used["start"][-1]).sort("start")
    hx = np.array([(d - origin).days for d in known["start"]], dtype=float)
    fx = np.array([(d - origin).days for d in future], dtype=float)
    hy = known["value"].to_numpy().astype(float)
    point, se, m80, m95, dof = predict(hx, hy, used.height, fx, np.array(weights))
    center = offset + point
    return Forecast(
        value,
        None if reaches is None else bool(reaches),
        tuple(used["period"]),
        method + "; intervals calibrated on its past errors",
        (center - m80 * se, center + m80 * se),
        (center - m95 * se, center + m95 * se),
        chance(t, center, se * m80 / t_quantile(0.9, dof), dof, final),
    )


def bound_expr(result: Result, kpi_id: str) -> Any:
    plan = result.plan
    if plan is None:
        return None
    for kp in plan.kpis:
        if kp.id == kpi_id:
            return kp.expr
    return None
