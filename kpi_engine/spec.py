"""Load spec files: YAML with positions -> JSON Schema validation -> typed, frozen spec objects."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import source_options
from .errors import Diagnostic, ErrorCollector, KpiError, Location, did_you_mean
from .model import (  # re-exported: plugins import SourceSpec and friends from here
    SPEC_SUFFIXES,
    WEEKDAYS,
    Calendar,
    Event,
    Grain,
    KpiSpec,
    Project,
    ReviewSpec,
    Revision,
    SourceSpec,
    TargetSpec,
    Unit,
    WindowSpec,
    iter_kpis,
)
from .schema import error_paths, full_schema, salvage, schema_errors
from .yaml_loader import Positions, load_yaml

__all__ = [  # the loader, and the model re-exported for plugins written against kpi_engine.spec
    "load_project",
    "spec_files",
    "SPEC_SUFFIXES",
    "WEEKDAYS",
    "Calendar",
    "Event",
    "Grain",
    "KpiSpec",
    "Project",
    "ReviewSpec",
    "Revision",
    "SourceSpec",
    "TargetSpec",
    "Unit",
    "iter_kpis",
]


def spec_files(path: Path) -> list[Path]:
    """The spec files a PATH names: the file itself, or every *.yaml/*.yml below a directory."""
    if not path.exists():
        raise KpiError(
            Diagnostic(
                f"no such file or directory: {path}",
                Location(str(path)),
                hint="pass a spec file or a directory of spec files",
            )
        )
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.rglob("*")
        if p.suffix in SPEC_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    files = [p for p in files if not p.name.endswith((".test.yaml", ".test.yml"))]
    if not files:
        raise KpiError(Diagnostic(f"no spec files (*.yaml, *.yml) in directory {path}", Location(str(path))))
    return files


@dataclass
class _Merge:
    """What the spec files of a project add up to while they are read, file after file."""

    errors: ErrorCollector
    deferred: bool
    unchecked: set[str] = field(default_factory=set)
    calendar_seen: dict[str, tuple[Any, Location]] = field(default_factory=dict)
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    kpis: dict[str, KpiSpec] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    first_seen: dict[tuple[str, str], Location] = field(default_factory=dict)


def load_project(
    path: str | Path, connector_schemas: Mapping[str, Mapping[str, Any]], errors: ErrorCollector | None = None
) -> Project:
    """Load, validate and merge the spec files at ``path``; every problem is reported at once.

    With ``errors``, problems are added there and the parts that are valid are still returned (invalid KPIs
    and sources left out, invalid optional fields dropped), so that the caller can go on checking formulas
    and columns and report everything in one pass; the caller must raise.
    """
    import hashlib

    root = Path(path)
    files = spec_files(root)
    merge = _Merge(errors if errors is not None else ErrorCollector(), errors is not None)
    schema = full_schema(connector_schemas)
    digest = hashlib.sha256()
    for file in files:
        read = _read_file(file, merge.errors)
        if read is None:
            continue
        raw, data, pos = read
        digest.update(str(file).encode() + b"\0" + raw)
        data = _validated(data, pos, schema, merge)
        if data is not None:
            _merge_file(file, data, pos, merge)
    calendar = _build_calendar(merge.calendar_seen, merge.errors)
    for name in merge.params.keys() & merge.kpis.keys():
        merge.errors.add(f"`{name}` is both a param and a KPI id", merge.kpis[name].loc(), hint="rename one of them")
    if not merge.deferred or not merge.kpis:
        merge.errors.raise_if_any()
    if not merge.kpis:
        raise KpiError(Diagnostic("no KPIs defined", Location(str(root)), hint="add a `kpis:` mapping to a spec file"))
    return Project(
        calendar,
        merge.sources,
        merge.params,
        merge.kpis,
        tuple(files),
        root,
        digest.hexdigest()[:12],
        tuple(sorted(merge.events, key=lambda e: e.date)),
        frozenset(merge.unchecked),
    )


def _read_file(file: Path, errors: ErrorCollector) -> tuple[bytes, Any, Positions] | None:
    """A spec file's bytes and its YAML with positions; None (with the error added) when it cannot be read."""
    display = str(file)
    try:
        raw = file.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        errors.add(f"file is not UTF-8 text (byte {exc.start})", Location(display), hint="save the file as UTF-8")
        return None
    except OSError as exc:
        errors.add(f"cannot read file: {exc.strerror}", Location(display))
        return None
    try:
        data, pos = load_yaml(text, display)
    except KpiError as exc:
        errors.extend(exc.diagnostics)
        return None
    if data is None:
        errors.add("spec file is empty", Location(display, 1, 1), hint="start it with `version: 1` and `kpis:`")
        return None
    return raw, data, pos


def _validated(data: Any, pos: Positions, schema: dict[str, Any], merge: _Merge) -> Any:
    """``data`` when the schema accepts it; else its problems are added and what is still usable is kept
    (deferred) or nothing is (None)."""
    problems = schema_errors(data, schema, pos) + source_options.bad_numbers(data, pos)
    if not problems:
        return data
    merge.errors.extend(problems)
    paths = error_paths(data, schema) + source_options.bad_number_paths(data)
    return salvage(data, paths, merge.unchecked) if merge.deferred else None


def _merge_file(file: Path, data: Mapping[str, Any], pos: Positions, merge: _Merge) -> None:
    """Add one file's calendar settings, sources, events, params and KPIs to the project being built."""
    errors = merge.errors
    for key in ("timezone", "week_start", "fiscal_year_start"):
        if key in data:
            loc = pos.location((key,))
            if key in merge.calendar_seen and merge.calendar_seen[key][0] != data[key]:
                prev_value, prev_loc = merge.calendar_seen[key]
                errors.add(
                    f"`{key}: {data[key]}` disagrees with `{key}: {prev_value}` in {prev_loc.file}:{prev_loc.line}",
                    loc,
                    hint="all spec files share one calendar; set it once",
                )
            merge.calendar_seen.setdefault(key, (data[key], loc))
    base_dir = file.parent.resolve()
    roots = source_options.data_root(data, base_dir, pos, errors)
    for name, body in (data.get("sources") or {}).items():
        loc = pos.location(("sources", name), key=True)
        if _dupe(errors, merge.first_seen, "source", name, loc):
            continue
        locations = {"": loc, **{k: pos.location(("sources", name, k)) for k in body}}
        source_options.check_time_options(body, locations, errors)
        options = {k: v for k, v in body.items() if k not in ("connector", "time", "description", "entities")}
        merge.sources[name] = SourceSpec(
            name, body["connector"], body["time"], options, base_dir, locations, roots, body.get("entities") or {}
        )
    merge.events.extend(_events(data.get("events", ())))
    for name, value in (data.get("params") or {}).items():
        if not _dupe(errors, merge.first_seen, "param", name, pos.location(("params", name), key=True)):
            merge.params[name] = float(value)
    for kpi_id, body in (data.get("kpis") or {}).items():
        if not _dupe(errors, merge.first_seen, "KPI", kpi_id, pos.location(("kpis", kpi_id), key=True)):
            merge.kpis[kpi_id] = _build_kpi(kpi_id, body, pos, errors)


def _dupe(errors: ErrorCollector, seen: dict[tuple[str, str], Location], what: str, name: str, loc: Location) -> bool:
    if (what, name) in seen:
        first = seen[(what, name)]
        errors.add(
            f"duplicate {what} `{name}`",
            loc,
            hint=f"first defined at {first.file}:{first.line}; names are unique across files",
        )
        return True
    seen[(what, name)] = loc
    return False


def _build_calendar(seen: Mapping[str, tuple[Any, Location]], errors: ErrorCollector) -> Calendar:
    tz = seen.get("timezone", ("UTC", None))[0]
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        errors.add(
            f"unknown time zone `{tz}`",
            seen["timezone"][1],
            expected="an IANA time zone such as Europe/Paris",
            hint=did_you_mean(tz, zoneinfo.available_timezones()),
        )
        tz = "UTC"
    week_start = WEEKDAYS.index(seen.get("week_start", ("monday", None))[0])
    fiscal = int(seen.get("fiscal_year_start", (1, None))[0])
    return Calendar(tz, week_start, fiscal)


def _build_kpi(kpi_id: str, body: Mapping[str, Any], pos: Positions, errors: ErrorCollector) -> KpiSpec:
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
        events=_events(body.get("events", ())),
        notes=tuple(body.get("notes", ())),
        target=target,
        review=review,
        locations=locations,
        formula_offset=_formula_column(pos, base + ("formula",)),
    )


_GRAIN_DAYS = {Grain.DAY: 1, Grain.WEEK: 7, Grain.MONTH: 28, Grain.QUARTER: 90, Grain.YEAR: 365}


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
        if _GRAIN_DAYS[to_date] <= _GRAIN_DAYS[grain]:
            errors.add(
                f"`window: {raw}` on a {grain} KPI covers no more than the period itself",
                locations.get("window"),
                expected=f"a period longer than a {grain}",
                hint=f"e.g. grain: day with window: {raw}, or no window",
            )
        return WindowSpec(to_date=to_date)
    return WindowSpec(days=int(raw.removesuffix("d")))


def _events(items: Iterable[Mapping[str, Any]]) -> tuple[Event, ...]:
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
