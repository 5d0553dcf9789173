"""Load spec files: YAML with positions -> JSON Schema validation -> typed, frozen spec objects."""

from __future__ import annotations

import dataclasses
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import source_options
from .errors import Diagnostic, ErrorCollector, KpiError, Location, did_you_mean
from .model import (  # re-exported: plugins import SourceSpec and friends from here
    SPEC_SUFFIXES,
    WEEKDAYS,
    AlertSettings,
    Calendar,
    ChannelSpec,
    DeliverySpec,
    Event,
    Grain,
    KpiSpec,
    Project,
    ReviewSpec,
    Revision,
    SourceSpec,
    TargetSpec,
    Unit,
    iter_kpis,
)
from .schema import error_paths, full_schema, salvage, schema_errors
from .spec_delivery import check_delivery, read_alert_settings, read_channels, read_delivery
from .spec_kpis import build_kpi, events
from .units import money_of
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
    lookups: dict[str, SourceSpec] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    kpis: dict[str, KpiSpec] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    channels: dict[str, ChannelSpec] = field(default_factory=dict)
    channel_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    delivery: DeliverySpec | None = None
    alerts: AlertSettings | None = None
    first_seen: dict[tuple[str, str], Location] = field(default_factory=dict)


def load_project(
    path: str | Path,
    connector_schemas: Mapping[str, Mapping[str, Any]],
    errors: ErrorCollector | None = None,
    channel_schemas: Mapping[str, Mapping[str, Any]] | None = None,
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
    merge.channel_schemas = channel_schemas or {}
    schema = full_schema(connector_schemas, channel_schemas)
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
    _with_money(merge)
    for source in merge.sources.values():
        for name in source.lookups:
            if name not in merge.lookups:
                merge.errors.add(
                    f"source `{source.name}` joins unknown lookup `{name}`",
                    source.loc("lookups"),
                    hint=did_you_mean(name, merge.lookups, "lookups") or "declare it under `lookups:`",
                )
    for name in merge.params.keys() & merge.kpis.keys():
        merge.errors.add(f"`{name}` is both a param and a KPI id", merge.kpis[name].loc(), hint="rename one of them")
    if merge.delivery is not None:
        meetings = {k.review.meeting for k in merge.kpis.values() if k.review and k.review.meeting}
        check_delivery(merge.delivery, merge.channels, meetings, merge.errors, merge.unchecked)
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
        merge.lookups,
        merge.channels,
        merge.delivery or DeliverySpec(),
        merge.alerts or AlertSettings(),
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
    for key in ("timezone", "week_start", "fiscal_year_start", "currency"):
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
        options = {k: v for k, v in body.items() if k not in _COMMON}
        merge.sources[name] = SourceSpec(
            name,
            body["connector"],
            body["time"],
            options,
            base_dir,
            locations,
            roots,
            body.get("entities") or {},
            tuple(body.get("lookups") or ()),
        )
    for name, body in (data.get("lookups") or {}).items():
        loc = pos.location(("lookups", name), key=True)
        if _dupe(errors, merge.first_seen, "lookup", name, loc):
            continue
        locations = {"": loc, **{k: pos.location(("lookups", name, k)) for k in body}}
        options = {k: v for k, v in body.items() if k not in _COMMON}
        merge.lookups[name] = SourceSpec(
            name, body["connector"], "", options, base_dir, locations, roots, key=body["key"]
        )
    merge.events.extend(events(data.get("events", ())))
    read_channels(data, pos, merge.channel_schemas, merge.channels, errors)
    if "delivery" in data and merge.delivery is not None:
        first = merge.delivery.loc()
        errors.add(
            "duplicate `delivery:`", pos.location(("delivery",), key=True), hint=f"first at {first.file}:{first.line}"
        )
    else:
        merge.delivery = read_delivery(data, pos, merge.delivery)
    if "alerts" in data and merge.alerts is not None:
        errors.add("duplicate project-wide `alerts:`", pos.location(("alerts",), key=True), hint="set it in one file")
    else:
        merge.alerts = read_alert_settings(data, merge.alerts)
    for name, value in (data.get("params") or {}).items():
        if not _dupe(errors, merge.first_seen, "param", name, pos.location(("params", name), key=True)):
            merge.params[name] = float(value)
    for kpi_id, body in (data.get("kpis") or {}).items():
        if not _dupe(errors, merge.first_seen, "KPI", kpi_id, pos.location(("kpis", kpi_id), key=True)):
            merge.kpis[kpi_id] = build_kpi(kpi_id, body, pos, errors)


_COMMON = ("connector", "time", "description", "entities", "lookups", "key")  # not connector options


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


def _with_money(merge: _Merge) -> None:
    """Give each ``unit: currency`` KPI without its own ``currency:`` the project's."""
    if "currency" not in merge.calendar_seen:
        return
    raw, loc = merge.calendar_seen["currency"]
    money = money_of(raw, loc, merge.errors)
    for kpi_id, kpi in merge.kpis.items():
        if kpi.unit is Unit.CURRENCY and kpi.currency is None and money is not None:
            merge.kpis[kpi_id] = dataclasses.replace(kpi, currency=money)


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
