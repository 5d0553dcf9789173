"""Building a KPI's typed spec from its validated YAML: targets, reviews, windows and events.

The loader (``spec``) validates each file against the schema and merges them; this module turns one KPI's
mapping into a ``KpiSpec``, with the checks the schema cannot express (a deadline before the start, a
review day that does not exist, a to-date window no longer than the period).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ErrorCollector, Location, did_you_mean
from .model import MAX_DAYS, WEEKDAYS, Event, Grain, KpiSpec, ReviewSpec, Revision, TargetSpec, Unit, WindowSpec
from .spec_delivery import alert_specs
from .units import money_of
from .yaml_loader import Positions


def build_kpi(kpi_id: str, body: Mapping[str, Any], pos: Positions, errors: ErrorCollector) -> KpiSpec:
    base = ("kpis", kpi_id)
    locations = {"": pos.location(base, key=True), **{k: pos.location(base + (k,)) for k in body}}
    target = _build_target(body["target"], body, base, pos, errors) if "target" in body else None
    if target is not None and target.measure == "window" and "window" in body:
        errors.add(
            "`measure: window` recomputes the KPI over the target window, which its `window:` would contradict",
            locations.get("window"),
            hint="drop `window:` (the target already sums the window), or measure: latest",
        )
    review = _build_review(body["review"], base + ("review",), pos, errors) if "review" in body else None
    formula = body["formula"]
    money = money_of(body["currency"], locations.get("currency"), errors) if "currency" in body else None
    if "currency" in body and body["unit"] != "currency":
        errors.add(
            f"`currency:` is for money, but this KPI's unit is {body['unit']}",
            locations.get("currency"),
            hint="drop `currency:`, or set `unit: currency`",
        )
    return KpiSpec(
        id=kpi_id,
        name=body.get("name", kpi_id),
        unit=Unit(body["unit"]),
        formula=formula,
        grain=Grain(body["grain"]),
        dimensions=tuple(body.get("dimensions", ())),
        description=body.get("description"),
        owner=body.get("owner"),
        stakeholders=tuple(body.get("stakeholders", ())),
        kind=body.get("kind", "quantitative"),
        role=body.get("role", "target"),
        key=bool(body.get("key", False)),
        missing=("null" if body["missing"] is None else body["missing"]) if "missing" in body else None,
        window=_window(body, locations, errors),
        cohort=body["cohort"]["periods"] if "cohort" in body else None,
        events=events(body.get("events", ())),
        notes=tuple(body.get("notes", ())),
        alerts=alert_specs(body.get("alerts")),
        top=body.get("top"),
        currency=money,
        target=target,
        review=review,
        locations=locations,
        formula_offset=_formula_column(pos, base + ("formula",)),
    )


def _window(body: Mapping[str, Any], locations: Mapping[str, Location], errors: ErrorCollector) -> WindowSpec | None:
    """``window:`` as written (the schema checked its shape): trailing days, a to-date period, or a running total."""
    raw = body.get("window")
    if raw is None:
        return None
    grain = Grain(body["grain"])
    if isinstance(raw, dict):
        return WindowSpec(since=dt.date.fromisoformat(str(raw["since"])))
    if raw == "all_time":
        return WindowSpec()
    if raw.endswith("_to_date"):
        to_date = Grain(raw.removesuffix("_to_date"))
        if MAX_DAYS[to_date] <= MAX_DAYS[grain]:
            errors.add(
                f"`window: {raw}` on a {grain} KPI covers no more than the period itself",
                locations.get("window"),
                expected=f"a period longer than a {grain}",
                hint=f"e.g. grain: day with window: {raw}, or no window",
            )
        return WindowSpec(to_date=to_date)
    if raw.endswith("mo"):
        return WindowSpec(months=int(raw.removesuffix("mo")))
    if raw.endswith("w"):
        return WindowSpec(days=7 * int(raw.removesuffix("w")))
    return WindowSpec(days=int(raw.removesuffix("d")))


def events(items: Iterable[Mapping[str, Any]]) -> tuple[Event, ...]:
    return tuple(sorted((Event(dt.date.fromisoformat(e["date"]), e["label"]) for e in items), key=lambda e: e.date))


def _build_target(
    t: Mapping[str, Any], kpi: Mapping[str, Any], base: tuple[str, ...], pos: Positions, errors: ErrorCollector
) -> TargetSpec:
    where = base + ("target",)

    def err(message: str, key: str = "", hint: str | None = None, loc: Location | None = None) -> None:
        errors.add(message, loc or pos.location(where + ((key,) if key else ())), hint=hint)

    date = dt.date.fromisoformat
    start = date(t["start"]) if "start" in t else None
    deadline = date(t["deadline"]) if "deadline" in t else None
    baseline = t.get("baseline")
    period = (
        (date(t["baseline_period"]["start"]), date(t["baseline_period"]["end"])) if "baseline_period" in t else None
    )
    target = TargetSpec(
        direction=t["direction"],
        objective=t.get("objective"),
        value=t.get("value"),
        change=float(t["change"].rstrip("%")) / 100 if "change" in t else None,
        baseline=None if baseline in (None, "auto") else float(baseline),
        baseline_auto=baseline == "auto",
        baseline_period=period,
        start=start,
        deadline=deadline,
        measure=t.get("measure", "latest"),
        pace=t.get("pace", "linear"),
        tolerance=t.get("tolerance"),
        min=t.get("min"),
        max=t.get("max"),
        path=tuple((date(p["date"]), float(p["value"])) for p in t.get("path", ())),
        revisions=tuple(Revision(date(r["from"]), float(r["value"]), r.get("reason")) for r in t.get("revisions", ())),
        by={dim: dict(values) for dim, values in t.get("by", {}).items()},
        at_risk=float(t.get("at_risk", 0.1)),
    )
    _check_target(target, kpi.get("dimensions", []), err, lambda dim: pos.location(where + ("by", dim), key=True))
    return target


def _check_target(
    target: TargetSpec, dims: list[str], err: Callable[..., None], by_loc: Callable[[str], Location]
) -> None:
    """The rules a target must follow beyond its schema, each reported with the field at fault."""
    period = target.baseline_period
    if target.start and target.deadline and target.deadline <= target.start:
        err(
            f"target deadline {target.deadline} is not after its start {target.start}",
            "deadline",
            hint="a time-bound target ends after it starts",
        )
    if target.direction in ("increase", "decrease", "maintain") and target.value is None and target.change is None:
        err(
            f"a target to {target.direction} needs a `value` (or a `change` such as +20%)",
            hint="e.g. value: 2.5, or change: +20% with a baseline",
        )
    if target.value is not None and target.change is not None:
        err("give either `value` or `change`, not both", "change")
    if target.change is not None and target.baseline is None and not target.baseline_auto:
        err("a relative `change` needs a `baseline` (a number or auto)", "change")
    if target.change is not None and target.baseline == 0:
        err("a relative `change` of a zero baseline is zero whatever the percentage", "change")
    if target.baseline_auto and period is None:
        err(
            "`baseline: auto` needs a `baseline_period` with start and end",
            "baseline",
            hint="baseline_period: {start: 2026-01-01, end: 2026-03-31}",
        )
    if period and period[1] < period[0]:
        err(f"baseline period ends ({period[1]}) before it starts ({period[0]})", "baseline_period")
    if target.direction == "range" and (target.min is None or target.max is None):
        err("a `range` target needs `min` and `max`")
    if target.direction == "maintain" and target.tolerance is None:
        err("a `maintain` target needs a `tolerance`", hint="e.g. value: 150, tolerance: 10")
    if target.min is not None and target.max is not None and target.min > target.max:
        err(f"target min {target.min} is above max {target.max}", "min")
    if (target.measure == "window" or target.path or target.revisions) and target.start is None:
        err("this target needs a `start` date", hint="window measures, paths and revisions are dated from the start")
    dates = [d for d, _ in target.path]
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        err("`path` dates must be distinct and in order", "path")
    if target.start and target.deadline and any(not target.start <= d <= target.deadline for d in dates):
        err(f"`path` dates must lie between start {target.start} and deadline {target.deadline}", "path")
    revision_dates = [r.start for r in target.revisions]
    if revision_dates != sorted(revision_dates):
        err("`revisions` must be in date order", "revisions")
    for dim in target.by:
        if dim not in dims:
            err(
                f"per-dimension target for `{dim}`, which is not a dimension of this KPI",
                hint=did_you_mean(dim, dims, "dimensions"),
                loc=by_loc(dim),
            )


WEEKDAY_WORDS = {name: i for i, name in enumerate(WEEKDAYS)}


def _build_review(r: Mapping[str, Any], where: tuple[str, ...], pos: Positions, errors: ErrorCollector) -> ReviewSpec:
    from . import cadence

    review = ReviewSpec(
        r["cadence"], r.get("day"), r.get("meeting"), dt.date.fromisoformat(r["anchor"]) if "anchor" in r else None
    )
    problem = cadence.check(review)
    if problem:
        key, message, hint = problem
        errors.add(message, pos.location(where + (key,)), hint=hint)
    return review


def _formula_column(pos: Positions, path: tuple[str, ...]) -> int | None:
    """Column where the formula text starts on its line, when it is a one-line plain or quoted scalar."""
    style = pos.styles.get(path)
    line_col = pos.values.get(path)
    if line_col is None or style in ("|", ">"):
        return None
    return line_col[1] + (1 if style in ("'", '"') else 0)
