"""Alerts between reviews: each KPI's conditions checked as of a day, and the notices they call for.

A condition that starts firing is notified once; a change of what fires (at risk -> off track) is notified
again; a condition that clears gets one resolved notice (only when its firing was notified). Notices found
in the project's quiet hours wait for the next run after them; ``renotify_hours`` repeats a firing notice.
The state lives in the history store, so that each run knows what the previous one said.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import history, periods
from .anomaly import PATTERNS, judge
from .channels import ChannelError, Message
from .content import ATTENTION
from .deliver import recipients, send
from .frame import complete_totals
from .history import AlertState
from .model import AlertSettings, AlertSpec, Grain, KpiSpec, Project
from .units import format_date, format_value


@dataclass(frozen=True)
class Check:
    """A condition judged as of a day: whether it fires, why (plain language), and what fires (``state``)."""

    kpi: KpiSpec
    condition: AlertSpec
    firing: bool
    why: str
    state: str = "firing"

    @property
    def key(self) -> str:
        return f"{self.kpi.id}|{self.condition}"


@dataclass(frozen=True)
class Notice:
    """One notification to send: ``kind`` firing, changed, reminder or resolved."""

    check: Check
    kind: str
    id: str  # what the history store remembers per channel (a re-run after a failure does not repeat it)
    channels: tuple[str, ...]
    next_state: AlertState

    @property
    def line(self) -> str:
        label = {"firing": "NEW", "changed": "CHANGED", "reminder": "STILL", "resolved": "RESOLVED"}[self.kind]
        return f"{label} {self.check.kpi.name} ({self.check.condition}): {self.check.why}"


def conditions(project: Project) -> list[tuple[KpiSpec, AlertSpec]]:
    """Every (KPI, condition) to check: the KPI's own ``alerts:`` and the project's ``every_kpi`` (``status``
    only where the KPI has a target)."""
    out = []
    for kpi in project.kpis.values():
        mine = list(kpi.alerts) + [c for c in project.alerts.every_kpi if c.kind != "status" or kpi.target]
        out += [(kpi, c) for c in dict.fromkeys(mine)]
    return out


def run_checks(catalog: Any, as_of: dt.date, cache: Any = None) -> list[Check]:
    """Evaluate the KPIs that have conditions as of ``as_of`` (one run, incremental with a ``cache``) and judge
    each condition."""
    from .targets import assess, span_requests

    todo = conditions(catalog.project)
    ids = list(dict.fromkeys(k.id for k, _ in todo))
    if not ids:
        return []
    spans = [(k, s) for k, s in span_requests(catalog.project, as_of) if k in ids]
    by_day = list(dict.fromkeys(k.id for k, c in todo if c.kind == "anomaly" and c.by == "day"))
    wider, names = daily(catalog, by_day) if by_day else (catalog, {})
    result = wider.evaluate(as_of, kpis=ids + list(names.values()), spans=spans, cache=cache)
    days = {k: result.series.pop(name) for k, name in names.items() if name in result.series}
    assessments = assess(result)
    out = []
    for kpi, cond in todo:
        if kpi.id not in result.series:
            continue  # a failed plugin: reported by the run, not an alert
        if cond.kind == "anomaly":
            frame = days.get(kpi.id) if cond.by == "day" else result.series[kpi.id]
            out.append(_anomaly(kpi, cond, frame, "day" if cond.by == "day" else kpi.grain.value))
        elif cond.kind == "status":
            a = (assessments.get(kpi.id) or [None])[0]
            if a is not None:
                out.append(Check(kpi, cond, a.status in ATTENTION, a.why, a.status))
        elif cond.kind == "stale":
            out.append(_stale(kpi, cond, catalog, result, as_of))
        else:
            out.append(_value_check(kpi, cond, result.series[kpi.id], catalog.project))
    return out


def _stale(kpi: KpiSpec, cond: AlertSpec, catalog: Any, result: Any, as_of: dt.date) -> Check:
    days = int(cond.value or 0)
    late = []
    for source in sorted(catalog.bound[kpi.id].sources):
        last = result.freshness.get(source)
        if last is None or (as_of - last).days >= days:
            late.append(f"`{source}` has no data" + (f" after {format_date(last)}" if last else " at all"))
    why = "; ".join(late) + f" (alert at {days} days without new data)" if late else "every source has recent data"
    return Check(kpi, cond, bool(late), why)


def _anomaly(kpi: KpiSpec, cond: AlertSpec, frame: pl.DataFrame | None, grain: str) -> Check:
    """The last complete period (or day) against the robust baseline of the ones before it."""
    pattern = PATTERNS.get(grain)
    if frame is None or pattern is None or (kpi.window is not None and kpi.window.days is None):
        return Check(
            kpi, cond, False, "not judged: anomalies need a day, week or month series without a to-date window"
        )
    rows = frame.filter(pl.col("is_total") & pl.col("complete")).sort("start")
    if rows.height == 0:
        return Check(kpi, cond, False, "no complete period yet")
    values = np.array([np.nan if v is None else v for v in rows["value"].to_list()], dtype=float)
    values[~rows["has_data"].to_numpy()] = np.nan
    verdict = judge(values, len(values) - 1, pattern)
    threshold = cond.value or pattern.threshold
    last = rows.row(-1, named=True)
    when = format_date(last["start"]) if grain == "day" else last["period"]
    if verdict.z is None or verdict.expected is None:
        return Check(kpi, cond, False, f"not enough history before {when} to know its usual value")
    side = "above" if verdict.z > 0 else "below"
    usual = format_value(verdict.expected, kpi.shown)
    weekday = f" for a {last['start'].strftime('%A')}" if pattern.season == 7 else ""
    why = (
        f"{format_value(verdict.value, kpi.shown)} {'on' if grain == 'day' else 'in'} {when} is "
        f"{abs(verdict.z):.1f} typical deviations {side} its usual {usual}{weekday} (alert at {threshold:g})"
    )
    return Check(kpi, cond, verdict.unusual(threshold), why)


def _value_check(kpi: KpiSpec, cond: AlertSpec, frame: pl.DataFrame, project: Project) -> Check:
    """``above``/``below``/``change`` on the latest complete period with data (never the running one)."""
    rows = complete_totals(frame).filter(pl.col("has_data")).sort("start")
    if rows.height == 0:
        return Check(kpi, cond, False, "no complete period with data yet")
    last = rows.row(-1, named=True)
    value, text = last["value"], f"{format_value(last['value'], kpi.shown)} in {last['period']}"
    if cond.kind in ("above", "below"):
        fires = value is not None and (value > cond.value if cond.kind == "above" else value < cond.value)
        side = "above" if cond.kind == "above" else "below"
        rel = side if fires else f"not {side}"
        return Check(kpi, cond, fires, f"{text} is {rel} {format_value(cond.value, kpi.shown)}")
    if cond.vs == "year":
        start = periods.year_earlier_span(periods.Span(last["start"], last["end"]), project.calendar).start
    else:
        start = periods.shift(last["start"], kpi.grain, -1)
    other = rows.filter(pl.col("start") == start)
    if other.height == 0 or value is None or other["value"][0] is None:
        return Check(kpi, cond, False, f"{text}; nothing to compare with")
    base = other.row(0, named=True)
    move = (
        value - base["value"]
        if cond.points
        else (100 * (value - base["value"]) / abs(base["value"]) if base["value"] else None)
    )
    if move is None:
        return Check(kpi, cond, False, f"{text}; the {cond.vs} period is 0, so a % change is undefined")
    limit = cond.value or 0.0
    fires = abs(move) >= abs(limit) if cond.both else (move <= limit if limit < 0 else move >= limit)
    unit = "pp" if cond.points else "%"
    against = "the previous period" if cond.vs == "previous" else "a year earlier"
    why = f"{text}, {move:+.1f}{unit} against {against} ({format_value(base['value'], kpi.shown)} in {base['period']})"
    return Check(kpi, cond, fires, why)


def daily(catalog: Any, ids: list[str]) -> tuple[Any, dict[str, str]]:
    """A copy of ``catalog`` that also evaluates each KPI by day and in total (id ``<kpi>~daily``), for
    anomaly conditions: a weekly KPI's unusual day shows in its daily series first."""
    extra: dict[str, Any] = {}
    for kpi_id in ids:
        b = catalog.bound.get(kpi_id)
        if b is None or b.spec.cohort:
            continue
        spec = replace(b.spec, id=f"{kpi_id}~daily", grain=Grain.DAY, dimensions=(), target=None, review=None)
        extra[spec.id] = replace(b, spec=spec, uses=())
    return catalog.with_kpis(extra), {k.removesuffix("~daily"): k for k in extra}


def quiet(settings: AlertSettings, now: dt.datetime) -> bool:
    """Whether ``now`` (in the project's zone) falls in the quiet hours (which may span midnight)."""
    if settings.quiet_hours is None:
        return False
    start, end = settings.quiet_hours
    t = now.time()
    return start <= t < end if start <= end else (t >= start or t < end)


def decide(check: Check, before: AlertState | None, now: dt.datetime, settings: AlertSettings) -> str | None:
    """The notice ``check`` calls for given the previous run's state: firing, changed, reminder, resolved or None."""
    if not check.firing:
        return "resolved" if before is not None and before.firing and before.notified_at else None
    if before is None or not before.firing or before.notified_at is None:
        return "firing"
    if check.state != before.notified_state:
        return "changed"
    if settings.renotify_hours and now - dt.datetime.fromisoformat(before.notified_at) >= dt.timedelta(
        hours=settings.renotify_hours
    ):
        return "reminder"
    return None


def routes(project: Project, kpi: KpiSpec) -> tuple[str, ...]:
    """A KPI's alerts go to its owner's channels, else its meeting's, else the project's."""
    return project.delivery.route(kpi.review.meeting if kpi.review else None, kpi.owner)


def notices(project: Project, checks: list[Check], states: dict[str, AlertState], now: dt.datetime) -> list[Notice]:
    """What to notify now, with each condition's state after it is sent (held back in quiet hours)."""
    out = []
    hush = quiet(project.alerts, now)
    stamp = now.isoformat(timespec="seconds")
    for check in checks:
        before = states.get(check.key)
        kind = decide(check, before, now, project.alerts)
        since = before.since if before is not None and before.firing else stamp
        idle = AlertState(check.key, check.firing, check.state, since if check.firing else None, why=check.why)
        if before is not None and before.firing and check.firing:
            idle = replace(idle, notified_at=before.notified_at, notified_state=before.notified_state)
        if kind is None or hush:
            if not (hush and kind == "resolved"):  # a resolved notice held back keeps the condition firing
                out.append(Notice(check, "none", "", (), idle))
            continue
        after = replace(idle, notified_at=stamp, notified_state=check.state) if check.firing else idle
        previous_notice = before.notified_at if before is not None else None
        nid = f"{check.key}|{kind}|{since}|{check.state}|{previous_notice if kind == 'reminder' else ''}"
        out.append(Notice(check, kind, nid, routes(project, check.kpi), after))
    return out


def alert_message(items: list[Notice], project: Project, now: dt.datetime) -> Message:
    """One message per channel and run: new and changed first, then reminders, then resolved."""
    order = ("firing", "changed", "reminder", "resolved")
    titles = {"firing": "New", "changed": "Changed", "reminder": "Still firing", "resolved": "Resolved"}
    groups = {k: [n for n in items if n.kind == k] for k in order}
    counts = {k: len(v) for k, v in groups.items() if v}
    subject = "KPI alerts: " + ", ".join(f"{n} {titles[k].lower()}" for k, n in counts.items())
    sections = [
        {
            "title": f"{titles[k]} ({len(v)})",
            "items": [f"{n.check.kpi.name} ({n.check.condition}): {n.check.why}" for n in v],
        }
        for k, v in groups.items()
        if v
    ]
    text = subject + "\n\n" + "\n\n".join(s["title"] + "\n" + "\n".join(f"- {i}" for i in s["items"]) for s in sections)
    import html as _html

    body = "".join(
        f"<h2>{_html.escape(s['title'])}</h2><ul>"
        + "".join(f"<li>{_html.escape(i)}</li>" for i in s["items"])
        + "</ul>"
        for s in sections
    )
    summary = {
        "kind": "alert",
        "title": subject,
        "at": now.isoformat(timespec="seconds"),
        "lead": f"Checked {now.strftime('%d %b %Y %H:%M')} ({project.calendar.timezone})",
        "alerts": [
            {
                "kpi": n.check.kpi.id,
                "name": n.check.kpi.name,
                "owner": n.check.kpi.owner,
                "condition": str(n.check.condition),
                "notice": n.kind,
                "state": n.check.state,
                "why": n.check.why,
            }
            for n in items
        ],  # fmt: skip
        "sections": sections,
    }
    return Message(subject, text + "\n", f"<html><body><h1>{escape(subject)}</h1>{body}</body></html>", summary)


def dispatch(
    catalog: Any,
    items: list[Notice],
    store: Path,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    log: Callable[[str, str, str], None] = lambda *_: None,
) -> int:
    """Send the notices (one message per channel), then save each condition's state; a notice whose channel
    failed keeps its old state, so the next run sends it again (only to the channels that missed it)."""
    project = catalog.project
    by_channel: dict[str, list[Notice]] = {}
    for n in items:
        for channel in n.channels:
            if dry_run or history.delivered(store, "alert", n.id, channel) is None:
                by_channel.setdefault(channel, []).append(n)
    failed: set[str] = set()
    for channel, group in by_channel.items():
        message = alert_message(group, project, now)
        if dry_run:
            log("dry-run", channel, f"{message.subject} ({recipients(catalog, channel)})")
            continue
        try:
            send(catalog, channel, message)
        except ChannelError as exc:
            failed.update(n.id for n in group)
            log("failed", channel, str(exc))
            continue
        for n in group:
            history.record_delivery(store, "alert", n.id, channel, now.date(), message.subject)
        log("sent", channel, message.subject)
    if not dry_run:
        for n in items:
            if n.id not in failed:
                history.save_alert_state(store, n.next_state)
    return len(failed)
