"""Load spec files: YAML with positions -> JSON Schema validation -> typed, frozen spec objects."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import Diagnostic, ErrorCollector, KpiError, Location, did_you_mean
from .schema import full_schema, schema_errors
from .yaml_loader import Positions, load_yaml

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SPEC_SUFFIXES = (".yaml", ".yml")


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Unit(StrEnum):
    PERCENT = "percent"
    CURRENCY = "currency"
    COUNT = "count"
    RATIO = "ratio"
    SCORE = "score"
    NUMBER = "number"
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"


@dataclass(frozen=True)
class Calendar:
    """The one calendar every KPI and source follows."""

    timezone: str = "UTC"
    week_start: int = 0  # 0 = Monday ... 6 = Sunday
    fiscal_year_start: int = 1  # month 1-12


@dataclass(frozen=True)
class SourceSpec:
    """A named data source: which connector reads it, with what options, and its time column."""

    name: str
    connector: str
    time: str
    options: Mapping[str, Any]
    base_dir: Path
    locations: Mapping[str, Location] = field(compare=False, repr=False)

    def loc(self, key: str = "") -> Location:
        return self.locations.get(key) or self.locations[""]


@dataclass(frozen=True)
class TargetSpec:
    direction: str
    objective: str | None = None
    value: float | None = None
    baseline: float | None = None
    start: dt.date | None = None
    deadline: dt.date | None = None
    tolerance: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ReviewSpec:
    cadence: str
    day: str | None = None
    meeting: str | None = None


@dataclass(frozen=True)
class KpiSpec:
    """One KPI as written; its formula is parsed and bound later (see ``resolve``)."""

    id: str
    name: str
    unit: Unit
    formula: str
    grain: Grain
    dimensions: tuple[str, ...] = ()
    description: str | None = None
    owner: str | None = None
    stakeholders: tuple[str, ...] = ()
    kind: str = "quantitative"
    key: bool = False
    target: TargetSpec | None = None
    review: ReviewSpec | None = None
    locations: Mapping[str, Location] = field(default_factory=dict, compare=False, repr=False)
    formula_offset: int | None = field(default=None, compare=False, repr=False)

    def loc(self, key: str = "") -> Location:
        return self.locations.get(key) or self.locations.get("") or Location()


@dataclass(frozen=True)
class Project:
    """Every spec file of a directory (or one file), merged: calendar, sources, params and KPIs."""

    calendar: Calendar
    sources: Mapping[str, SourceSpec]
    params: Mapping[str, float]
    kpis: Mapping[str, KpiSpec]
    files: tuple[Path, ...]
    root: Path
    spec_hash: str = ""


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


def load_project(path: str | Path, connector_schemas: Mapping[str, Mapping[str, Any]]) -> Project:
    """Load, validate and merge the spec files at ``path``; every problem is reported at once."""
    import hashlib

    root = Path(path)
    files = spec_files(root)
    errors = ErrorCollector()
    schema = full_schema(connector_schemas)
    calendar_seen: dict[str, tuple[Any, Location]] = {}
    sources: dict[str, SourceSpec] = {}
    params: dict[str, float] = {}
    kpis: dict[str, KpiSpec] = {}
    first_seen: dict[tuple[str, str], Location] = {}
    digest = hashlib.sha256()
    for file in files:
        display = str(file)
        try:
            raw = file.read_bytes()
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.add(f"file is not UTF-8 text (byte {exc.start})", Location(display), hint="save the file as UTF-8")
            continue
        except OSError as exc:
            errors.add(f"cannot read file: {exc.strerror}", Location(display))
            continue
        digest.update(display.encode() + b"\0" + raw)
        try:
            data, pos = load_yaml(text, display)
        except KpiError as exc:
            errors.extend(exc.diagnostics)
            continue
        if data is None:
            errors.add("spec file is empty", Location(display, 1, 1), hint="start it with `version: 1` and `kpis:`")
            continue
        problems = schema_errors(data, schema, pos)
        if problems:
            errors.extend(problems)
            continue
        for key in ("timezone", "week_start", "fiscal_year_start"):
            if key in data:
                loc = pos.location((key,))
                if key in calendar_seen and calendar_seen[key][0] != data[key]:
                    prev_value, prev_loc = calendar_seen[key]
                    errors.add(
                        f"`{key}: {data[key]}` disagrees with `{key}: {prev_value}` in {prev_loc.file}:{prev_loc.line}",
                        loc,
                        hint="all spec files share one calendar; set it once",
                    )
                calendar_seen.setdefault(key, (data[key], loc))
        base_dir = file.parent.resolve()
        for name, body in (data.get("sources") or {}).items():
            loc = pos.location(("sources", name), key=True)
            if _dupe(errors, first_seen, "source", name, loc):
                continue
            locations = {"": loc, **{k: pos.location(("sources", name, k)) for k in body}}
            options = {k: v for k, v in body.items() if k not in ("connector", "time", "description")}
            sources[name] = SourceSpec(name, body["connector"], body["time"], options, base_dir, locations)
        for name, value in (data.get("params") or {}).items():
            loc = pos.location(("params", name), key=True)
            if not _dupe(errors, first_seen, "param", name, loc):
                params[name] = float(value)
        for kpi_id, body in (data.get("kpis") or {}).items():
            loc = pos.location(("kpis", kpi_id), key=True)
            if _dupe(errors, first_seen, "KPI", kpi_id, loc):
                continue
            kpis[kpi_id] = _build_kpi(kpi_id, body, pos, errors)
    calendar = _build_calendar(calendar_seen, errors)
    for name in params.keys() & kpis.keys():
        errors.add(f"`{name}` is both a param and a KPI id", kpis[name].loc(), hint="rename one of them")
    errors.raise_if_any()
    if not kpis:
        raise KpiError(Diagnostic("no KPIs defined", Location(str(root)), hint="add a `kpis:` mapping to a spec file"))
    return Project(calendar, sources, params, kpis, tuple(files), root, digest.hexdigest()[:12])


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
    target = None
    if "target" in body:
        t = dict(body["target"])
        for key in ("start", "deadline"):
            if key in t:
                t[key] = dt.date.fromisoformat(t[key])
        target = TargetSpec(**t)
        if target.start and target.deadline and target.deadline <= target.start:
            errors.add(
                f"target deadline {target.deadline} is not after its start {target.start}",
                pos.location(base + ("target", "deadline")),
                hint="a time-bound target ends after it starts",
            )
        if target.direction in ("increase", "decrease") and target.value is None:
            errors.add(f"a target to {target.direction} needs a `value`", pos.location(base + ("target",)))
        if target.direction == "range" and (target.min is None or target.max is None):
            errors.add("a `range` target needs `min` and `max`", pos.location(base + ("target",)))
        if target.min is not None and target.max is not None and target.min > target.max:
            errors.add(f"target min {target.min} is above max {target.max}", pos.location(base + ("target", "min")))
    review = ReviewSpec(**body["review"]) if "review" in body else None
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
        key=bool(body.get("key", False)),
        target=target,
        review=review,
        locations=locations,
        formula_offset=_formula_column(pos, base + ("formula",)),
    )


def _formula_column(pos: Positions, path: tuple[str, ...]) -> int | None:
    """Column where the formula text starts on its line, when it is a one-line plain or quoted scalar."""
    style = pos.styles.get(path)
    line_col = pos.values.get(path)
    if line_col is None or style in ("|", ">"):
        return None
    return line_col[1] + (1 if style in ("'", '"') else 0)


def iter_kpis(project: Project, ids: Iterable[str] | None = None) -> list[KpiSpec]:
    """The KPIs to run: all of them, or the ids asked for (unknown ids are an error with a hint)."""
    if not ids:
        return list(project.kpis.values())
    out = []
    for kpi_id in ids:
        if kpi_id not in project.kpis:
            raise KpiError(Diagnostic(f"unknown KPI `{kpi_id}`", hint=did_you_mean(kpi_id, project.kpis, "KPIs")))
        out.append(project.kpis[kpi_id])
    return out
