"""SMART targets at a date: the value under review, where it should be by now, status, why, and forecast.

Pace: the expected value on a day is read off a line from the baseline at ``start`` to the target at
``deadline`` (through the ``path`` checkpoints when given); the target is the one in force that day (the
latest revision whose ``from`` is on or before it). ``pace: none`` expects the target itself all along.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .api import Result
from .forecast import Forecast, forecast_at_deadline, window_span
from .frame import rows_for
from .model import KpiSpec, Project, Revision, TargetSpec
from .periods import Span
from .units import format_date, format_value, formatter

STATUSES = ("achieved", "on_track", "at_risk", "off_track", "no_data", "not_started", "missed")


@dataclass(frozen=True)
class Assessment:
    """Where a KPI (or one dimension value of it) stands against its target at the as-of date."""

    kpi: str
    status: str
    why: str
    value: float | None = None
    target: float | None = None
    expected: float | None = None
    band: float | None = None
    baseline: float | None = None
    period: str | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    forecast: Forecast | None = None
    dims: Mapping[str, Any] = field(default_factory=dict)
    revision: Revision | None = None  # the revision in force for the period under review, if any


def target_text(t: TargetSpec | None, target: float | None, fmt: Callable[[float | None], str]) -> str:
    """The scorecard's target: the value, with the tolerance of a ``maintain`` target (``2.00% ± 8.00 pp``)
    or the bounds of a ``range`` (``180,000.00 to 260,000.00``): what the status is judged against."""
    if t is not None and t.direction == "range" and t.min is not None and t.max is not None:
        return f"{fmt(t.min)} to {fmt(t.max)}"
    if target is None:
        return "–"
    if t is not None and t.direction == "maintain" and t.tolerance is not None:
        band = fmt(t.tolerance)
        return f"{fmt(target)} ± " + (band.removesuffix("%") + " pp" if band.endswith("%") else band)
    return fmt(target)


def revision_in_force(t: TargetSpec, day: dt.date) -> Revision | None:
    """The latest revision effective on or before ``day``."""
    found = None
    for revision in t.revisions:
        if revision.start <= day:
            found = revision
    return found


def target_value(t: TargetSpec, day: dt.date, baseline: float | None) -> float | None:
    """The target in force on ``day``: the latest revision from on or before it, else the spec's value."""
    revision = revision_in_force(t, day)
    if revision is not None:
        return revision.value
    if t.value is None and t.change is not None and baseline is not None:
        # relative to the baseline's size: +20% of -100 is -80, a rise, as an `increase` target means
        return baseline + t.change * abs(baseline) if baseline else None
    return t.value


def expected_value(t: TargetSpec, day: dt.date, baseline: float | None) -> float | None:
    """Where the KPI should be on ``day`` (see the module docstring)."""
    final = target_value(t, day, baseline)
    if t.pace == "none" or final is None or baseline is None or t.start is None or t.deadline is None:
        return final
    points = [(t.start, baseline), *[(d, v) for d, v in t.path if t.start < d < t.deadline], (t.deadline, final)]
    if day <= t.start:
        return baseline
    if day >= t.deadline:
        return final
    for (d0, v0), (d1, v1) in zip(points, points[1:], strict=False):
        if d0 <= day <= d1:
            return v0 + (v1 - v0) * (day - d0).days / max((d1 - d0).days, 1)
    return final


def span_requests(project: Project, as_of: dt.date) -> list[tuple[str, Span]]:
    """The window evaluations targets need: auto baselines and window measures."""
    out = []
    for kpi in project.kpis.values():
        t = kpi.target
        if t is None:
            continue
        if t.baseline_auto and t.baseline_period:
            out.append((kpi.id, Span(*t.baseline_period)))
        if t.measure == "window" and t.start and as_of >= t.start:
            out.append((kpi.id, window_span(t, as_of)))
    return out


def baseline_of(kpi: KpiSpec, result: Result) -> float | None:
    t = kpi.target
    if t is None:
        return None
    if t.baseline_auto and t.baseline_period:
        frame = result.spans.get((kpi.id, Span(*t.baseline_period)))
        return rows_for(frame)["value"].item() if frame is not None and frame.height else None
    return t.baseline


def assess(result: Result) -> dict[str, list[Assessment]]:
    """Assessments of every evaluated KPI with a target: the total first, then each targeted dimension value."""
    out: dict[str, list[Assessment]] = {}
    for kpi_id, frame in result.series.items():
        kpi = result.project.kpis[kpi_id]
        if kpi.target is None:
            continue
        baseline = baseline_of(kpi, result)
        assessments = [assess_one(kpi, result, frame, baseline, {})]
        for dim, values in kpi.target.by.items():
            for value, dim_target in values.items():
                dim_spec = _dim_target(kpi.target, dim_target)
                dim_base = _value_before(frame, kpi.target.start, {dim: value}) if kpi.target.start else None
                assessments.append(assess_one(kpi, result, frame, dim_base, {dim: value}, dim_spec))
        out[kpi_id] = assessments
    return out


def _dim_target(t: TargetSpec, value: float) -> TargetSpec:
    import dataclasses

    return dataclasses.replace(t, value=value, change=None, revisions=(), path=(), by={})


def _value_before(frame: pl.DataFrame, start: dt.date, dims: Mapping[str, Any]) -> float | None:
    rows = rows_for(frame, dims).filter(pl.col("complete") & (pl.col("end") < start) & pl.col("value").is_not_null())
    return rows["value"][-1] if rows.height else None


def evaluate_with_targets(
    catalog: Any, as_of: dt.date | None, **kwargs: Any
) -> tuple[Result, dict[str, list[Assessment]]]:
    """Evaluate (as of today by default) and assess targets in one run: window and baseline spans share the
    scans. What `kpi run`, `kpi check` and `kpi serve` judge."""
    from .api import today

    as_of = as_of or today(catalog.project.calendar.timezone)
    wanted = set(kwargs.get("kpis") or catalog.project.kpis)
    spans = [(k, s) for k, s in span_requests(catalog.project, as_of) if k in wanted]
    result = catalog.evaluate(as_of, spans=spans, **kwargs)
    return result, assess(result)


def assess_one(
    kpi: KpiSpec,
    result: Result,
    frame: pl.DataFrame,
    baseline: float | None,
    dims: Mapping[str, Any],
    t: TargetSpec | None = None,
) -> Assessment:
    """The status of one KPI (total or one dimension value) at ``result.as_of``."""
    t = t or kpi.target
    assert t is not None
    as_of, unit = result.as_of, kpi.shown
    fmt = lambda v: format_value(v, unit)  # noqa: E731
    common: dict[str, Any] = {"kpi": kpi.id, "dims": dict(dims), "baseline": baseline}
    if t.start and as_of < t.start:
        return Assessment(
            status="not_started",
            why=f"not started: the target window opens on {format_date(t.start)}",
            target=target_value(t, t.start, baseline),
            **common,
        )
    review_day = min(as_of, t.deadline) if t.deadline else as_of
    if t.measure == "window":
        span = window_span(t, as_of)
        window = result.spans.get((kpi.id, span))
        rows = rows_for(window, dims) if window is not None else pl.DataFrame()
        row = rows.row(0, named=True) if rows.height else None
        label, p_start, p_end = f"{format_date(span.start)} to {format_date(span.end)}", span.start, span.end
    else:
        rows = rows_for(frame, dims).filter(pl.col("complete") & (pl.col("end") <= review_day))
        row = rows.row(-1, named=True) if rows.height else None
        label = row["period"] if row else None
        p_start, p_end = (row["start"], row["end"]) if row else (None, None)
    common.update(period=label, period_start=p_start, period_end=p_end)
    value = row["value"] if row and row["has_data"] else None
    final = target_value(t, p_end or review_day, baseline)
    common["target"] = final
    common["revision"] = revision_in_force(t, p_end or review_day)
    if value is None:
        sources = _kpi_sources(result, kpi.id)
        latest = [d for name, d in result.freshness.items() if d is not None and (not sources or name in sources)]
        seen = f" (latest data: {format_date(max(latest))})" if latest else ""
        what = f"for {label}" if label else "for a complete period yet"
        return Assessment(status="no_data", why=f"no data {what}{seen}", **common)
    common["value"] = value
    forecast = forecast_at_deadline(kpi, t, frame, result, dims, final)
    common["forecast"] = forecast
    ref_day = p_end or review_day
    expected = expected_value(t, ref_day, baseline) if t.direction in ("increase", "decrease") else None
    common["expected"] = expected
    # as many digits as it takes for the numbers compared in the why text to read differently when they are
    fmt = formatter([value, expected], unit, written=[final, baseline, t.min, t.max, t.tolerance])
    status, band, why = _judge(t, value, final, expected, baseline, ref_day, as_of, fmt, label)
    if common["revision"] is not None:
        r = common["revision"]
        why += f"; target revised to {fmt(r.value)} from {format_date(r.start)}" + (
            f" ({r.reason})" if r.reason else ""
        )
    if forecast is not None and forecast.value is not None:
        why += f"; forecast {fmt(forecast.value)} at deadline"
        if forecast.interval_80 is not None and as_of < t.deadline:
            low, high = forecast.interval_80
            why += f" (80% range {fmt(low)} to {fmt(high)}"
            why += (
                f", {forecast.probability:.0%} chance of reaching the target)"
                if forecast.probability is not None
                else ")"
            )
    elif forecast is not None and t.deadline and as_of < t.deadline:
        why += f"; no forecast ({forecast.method})"
    return Assessment(status=status, why=why, band=band, **common)


def _judge(
    t: TargetSpec,
    value: float,
    final: float | None,
    expected: float | None,
    baseline: float | None,
    ref_day: dt.date,
    as_of: dt.date,
    fmt,
    label: str | None,
) -> tuple[str, float | None, str]:  # type: ignore[no-untyped-def]
    past = t.deadline is not None and as_of > t.deadline
    in_period = f" in {label}" if label else ""
    if t.direction == "range":
        lo, hi = t.min, t.max
        assert lo is not None and hi is not None
        band = t.at_risk * (hi - lo)
        inside = lo <= value <= hi
        text = f"{fmt(value)}{in_period} against the range {fmt(lo)} to {fmt(hi)}"
        if past:
            return ("achieved" if inside else "missed"), band, f"{'achieved' if inside else 'missed'}: {text}"
        if inside:
            return "on_track", band, f"on track: {text}"
        distance = lo - value if value < lo else value - hi
        status = "at_risk" if distance <= band else "off_track"
        return status, band, f"{status.replace('_', ' ')}: {text}, {fmt(distance)} outside (at-risk band {fmt(band)})"
    if t.direction == "maintain":
        assert final is not None and t.tolerance is not None
        distance = abs(value - final)
        text = f"{fmt(value)}{in_period} against {fmt(final)} ± {fmt(t.tolerance)}"
        if distance <= t.tolerance:
            return ("achieved" if past else "on_track"), t.tolerance, f"{'achieved' if past else 'on track'}: {text}"
        if past:
            return "missed", t.tolerance, f"missed: {text}"
        status = "at_risk" if distance <= 2 * t.tolerance else "off_track"
        return status, t.tolerance, f"{status.replace('_', ' ')}: {text} (at risk within twice the tolerance)"
    assert final is not None
    sign = 1 if t.direction == "increase" else -1
    gap = abs(final - baseline) if baseline is not None else abs(final)
    band = t.at_risk * gap
    met = sign * (value - final) >= 0
    if past:
        word = "achieved" if met else "missed"
        return (
            word,
            band,
            f"{word}: {fmt(value)}{in_period} against a target of {fmt(final)} by {format_date(t.deadline)}",
        )
    if met:
        return "achieved", band, f"achieved: {fmt(value)}{in_period} reaches the target of {fmt(final)}"
    assert expected is not None
    if t.pace == "none" or baseline is None or t.start is None or t.deadline is None:
        how = f"target {fmt(final)}"
    else:
        how = (
            f"{fmt(expected)} expected by {format_date(ref_day)} on the line from {fmt(baseline)} on "
            f"{format_date(t.start)} to {fmt(final)} on {format_date(t.deadline)}"
        )
        if t.path:
            how += " through the target path"
    if sign * (value - expected) >= 0:
        return "on_track", band, f"on track: {fmt(value)}{in_period} vs {how}"
    if sign * (value - expected) >= -band:
        return "at_risk", band, f"at risk: {fmt(value)}{in_period} vs {how}; within the at-risk band of {fmt(band)}"
    return "off_track", band, f"off track: {fmt(value)}{in_period} vs {how}"


def _kpi_sources(result: Result, kpi_id: str) -> tuple[str, ...]:
    for kp in result.plan.kpis if result.plan else ():
        if kp.id == kpi_id:
            return kp.kpi.sources
    return ()


def overall(assessments: Mapping[str, list[Assessment]], key_ids: list[str]) -> int:
    """`kpi check` exit code: 3 if any off track, missed or without data; 1 if any at risk; else 0."""
    statuses = {a.status for kpi_id in key_ids for a in assessments.get(kpi_id, [])}
    if statuses & {"off_track", "missed", "no_data"}:
        return 3
    if "at_risk" in statuses:
        return 1
    return 0


def assessments_json(items: list[Assessment]) -> dict[str, Any]:
    """The JSON of a KPI's target status: the total's fields, and `by` for dimension targets."""

    def one(a: Assessment) -> dict[str, Any]:
        out = {
            "status": a.status,
            "why": a.why,
            "value": a.value,
            "target": a.target,
            "expected": a.expected,
            "band": a.band,
            "baseline": a.baseline,
            "period": a.period,
            "period_start": a.period_start.isoformat() if a.period_start else None,
            "period_end": a.period_end.isoformat() if a.period_end else None,
            "forecast": None
            if a.forecast is None
            else {
                "value": a.forecast.value,
                "reaches_target": a.forecast.reaches_target,
                "periods": list(a.forecast.periods),
                "method": a.forecast.method,
                "interval_80": list(a.forecast.interval_80) if a.forecast.interval_80 else None,
                "interval_95": list(a.forecast.interval_95) if a.forecast.interval_95 else None,
                "probability": a.forecast.probability,
            },
        }
        if a.revision is not None:
            out["revision"] = {
                "from": a.revision.start.isoformat(),
                "value": a.revision.value,
                "reason": a.revision.reason,
            }
        if a.dims:
            out["dims"] = dict(a.dims)
        return out

    total, *by = items
    doc = one(total)
    doc["by"] = [one(a) for a in by]
    return doc
