"""The spec model: typed, frozen objects every layer reads (grains, units, calendar, sources, KPIs, targets).

Only the model: loading and validating spec files is ``spec.py``'s job. Imports nothing of the engine but
``errors``, so that every module can depend on it without a cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import Diagnostic, KpiError, Location, did_you_mean

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SPEC_SUFFIXES = (".yaml", ".yml")
NO_MEETING = "(no meeting)"  # how the reviews of KPIs without a `review: {meeting:}` are grouped


class Grain(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


#: the days the engine reads: rows outside are refused, and a span from MIN_DATE holds all of a source's days
MIN_DATE = dt.date(1900, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)

MONTHS_PER = {Grain.MONTH: 1, Grain.QUARTER: 3, Grain.YEAR: 12}
#: the most days a period of each grain holds: orders grains by length, and bounds how far back one reaches
MAX_DAYS = {Grain.DAY: 1, Grain.WEEK: 7, Grain.MONTH: 31, Grain.QUARTER: 92, Grain.YEAR: 366}


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
class Money:
    """The money of a ``unit: currency`` KPI: an ISO 4217 code, and the CLDR locale its numbers are written in
    (``GBP`` in ``en``: £2,481,206.59; ``EUR`` in ``de_DE``: 2.481.206,59 €)."""

    code: str
    locale: str = "en"


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
    roots: tuple[Path, ...] = ()  # more folders its data may be read from (the spec file's `data_root`)
    entities: Mapping[str, str] = field(default_factory=dict)  # entity name -> key column
    lookups: tuple[str, ...] = ()  # lookup tables joined to its rows
    key: str = ""  # a lookup table's key (a lookup has no time column: ``time`` is "")

    def loc(self, key: str = "") -> Location:
        return self.locations.get(key) or self.locations[""]


@dataclass(frozen=True)
class Revision:
    """A target change effective from a date: periods before it are judged by the earlier target."""

    start: dt.date
    value: float
    reason: str | None = None


@dataclass(frozen=True)
class TargetSpec:
    """A SMART target as written (see ``targets`` for what it means at a date)."""

    direction: str
    objective: str | None = None
    value: float | None = None
    change: float | None = None  # relative to baseline: 0.2 for "+20%"
    baseline: float | None = None
    baseline_auto: bool = False
    baseline_period: tuple[dt.date, dt.date] | None = None
    start: dt.date | None = None
    deadline: dt.date | None = None
    measure: str = "latest"
    pace: str = "linear"
    tolerance: float | None = None
    min: float | None = None
    max: float | None = None
    path: tuple[tuple[dt.date, float], ...] = ()
    revisions: tuple[Revision, ...] = ()
    by: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    at_risk: float = 0.1


@dataclass(frozen=True)
class Event:
    """A dated annotation (a campaign launch, a price change) shown on charts."""

    date: dt.date
    label: str


@dataclass(frozen=True)
class ReviewSpec:
    """How often a KPI is reviewed, on which day, in which meeting."""

    cadence: str
    day: str | None = None
    meeting: str | None = None
    anchor: dt.date | None = None


@dataclass(frozen=True)
class WindowSpec:
    """What each period of a KPI covers beyond itself (``window:``): the ``days`` days ending on its last day
    (``28d``), its ``to_date`` period so far (``month_to_date`` on a daily KPI), or every day ``since`` a date
    (a running total; from the first row when ``since`` is None)."""

    days: int | None = None
    to_date: Grain | None = None
    since: dt.date | None = None
    months: int | None = None  # ``2mo``: from the same day two months before the period's end (excluded)

    def __str__(self) -> str:
        if self.days is not None:
            return f"{self.days}d"
        if self.months is not None:
            return f"{self.months}mo"
        if self.to_date is not None:
            return f"{self.to_date}_to_date"
        return f"since {self.since}" if self.since else "all_time"


@dataclass(frozen=True)
class AlertSpec:
    """One alert condition: ``status``, ``above``/``below`` a threshold, ``change`` against the previous
    period or a year earlier (``value`` signed: -20 a drop of 20, +20 a rise; ``both`` either way; ``points``
    for pp instead of %), or ``stale`` (no new data for ``value`` days)."""

    kind: str  # status | above | below | change | stale | anomaly
    value: float | None = None  # the threshold, % or pp, days, or (anomaly) deviations; None: the default
    vs: str = "previous"  # previous | year (change only)
    both: bool = False
    points: bool = False
    by: str = "period"  # anomaly: judge the KPI's own period, or its last day

    def __str__(self) -> str:
        if self.kind in ("above", "below"):
            return f"{self.kind} {self.value:g}"
        if self.kind == "change":
            sign = "±" if self.both else ("+" if (self.value or 0) > 0 else "")
            return f"change {sign}{self.value:g}{'pp' if self.points else '%'} vs {self.vs}"
        if self.kind == "stale":
            return f"stale {self.value:g} days"
        if self.kind == "anomaly":
            return "anomaly" + (f" {self.value:g}" if self.value else "") + (" by day" if self.by == "day" else "")
        return self.kind


@dataclass(frozen=True)
class AlertSettings:
    """Project-wide alerting (``alerts:``): conditions for every KPI, quiet hours, re-notification."""

    every_kpi: tuple[AlertSpec, ...] = ()
    quiet_hours: tuple[dt.time, dt.time] | None = None
    renotify_hours: float | None = None


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
    role: str = "target"  # target | diagnostic (explains other KPIs; no target of its own)
    key: bool = False
    missing: str | None = None  # zero | null | None (default handling)
    window: WindowSpec | None = None  # each period covers more than its own days (rolling, to-date, running)
    cohort: int | None = None  # periods of a cohort matrix: the formula's active(1) becomes active(2)...
    target: TargetSpec | None = None
    review: ReviewSpec | None = None
    events: tuple[Event, ...] = ()
    notes: tuple[str, ...] = ()
    alerts: tuple[AlertSpec, ...] = ()
    top: int | None = None  # dimension values the report shows before "other" (None: the default, 10)
    currency: Money | None = None  # its own ``currency:``, else the project's (unit: currency only)
    locations: Mapping[str, Location] = field(default_factory=dict, compare=False, repr=False)
    formula_offset: int | None = field(default=None, compare=False, repr=False)

    def loc(self, key: str = "") -> Location:
        return self.locations.get(key) or self.locations.get("") or Location()

    @property
    def money(self) -> Money | None:
        """Its money: the currency of a ``unit: currency`` KPI, when the spec names one."""
        return self.currency if self.unit is Unit.CURRENCY else None

    @property
    def shown(self) -> Unit | Money:
        """What its values are written in: its money when it has one, else its unit."""
        return self.money or self.unit


@dataclass(frozen=True)
class ChannelSpec:
    """A configured delivery channel (``channels:``): its name, its kind, its options as written, and where."""

    name: str
    type: str
    options: Mapping[str, Any]
    locations: Mapping[str, Location] = field(default_factory=dict, compare=False, repr=False)

    def loc(self, key: str = "") -> Location:
        return self.locations.get(key) or self.locations.get("") or Location()


@dataclass(frozen=True)
class DeliverySpec:
    """Where reviews and alerts go (``delivery:``): the project's channels, a meeting's or an owner's instead."""

    channels: tuple[str, ...] = ()
    meetings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    owners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    locations: Mapping[str, Location] = field(default_factory=dict, compare=False, repr=False)

    def loc(self, key: str = "") -> Location:
        return self.locations.get(key) or self.locations.get("") or Location()

    def route(self, meeting: str | None, owner: str | None = None) -> tuple[str, ...]:
        """The channels a message goes to: the owner's, else the meeting's, else the project's (may be none)."""
        return self.owners.get(owner or "", ()) or self.meetings.get(meeting or "", ()) or self.channels


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
    events: tuple[Event, ...] = ()
    #: KPIs and sources dropped for errors already reported: a reference to one is not reported again
    unchecked: frozenset[str] = frozenset()
    lookups: Mapping[str, SourceSpec] = field(default_factory=dict)
    channels: Mapping[str, ChannelSpec] = field(default_factory=dict)
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    alerts: AlertSettings = field(default_factory=AlertSettings)


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
