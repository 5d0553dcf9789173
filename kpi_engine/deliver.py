"""Delivering reviews: which review messages fall due, the channels each goes to, what each says, and the
record in the history store that keeps a review from being sent twice."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from . import history
from .channels import Attachment, ChannelError, Message, expand
from .content import Report, select
from .errors import Diagnostic, KpiError, Location, did_you_mean
from .model import NO_MEETING, KpiSpec, Project
from .report import review_report, slug, static_charts, write_report
from .review import due_reviews
from .units import format_date


@dataclass(frozen=True)
class Digest:
    """One review message: the KPIs of a meeting (or of one owner in it) due on a day, and its channels."""

    meeting: str
    day: dt.date
    kpis: tuple[KpiSpec, ...]
    channels: tuple[str, ...]
    owner: str | None = None

    @property
    def key(self) -> str:
        """What the history store remembers it by: the same review is never sent twice to a channel."""
        return f"{self.meeting}|{self.day.isoformat()}|" + (f"owner={self.owner}" if self.owner else "meeting")

    @property
    def label(self) -> str:
        who = f" for {self.owner}" if self.owner else ""
        return f"{self.meeting}{who}, review of {format_date(self.day)}"


def digests(
    project: Project,
    as_of: dt.date,
    catch_up: int = 1,
    meeting: str | None = None,
    owner: str | None = None,
    cadence: str | None = None,
) -> list[Digest]:
    """The review messages due from ``catch_up - 1`` days before ``as_of`` to ``as_of``, one per meeting and
    day (per owner with ``owner``), with the channels the spec's ``delivery:`` routes each to."""
    wanted = {k.id for k in select(project, meeting, cadence, owner)}
    grouped: dict[tuple[str, dt.date], dict[str, KpiSpec]] = {}
    start = as_of - dt.timedelta(days=catch_up - 1)
    for review in due_reviews(project, start, catch_up):
        if review.kpi.id in wanted:
            grouped.setdefault((review.meeting, review.day), {})[review.kpi.id] = review.kpi
    return [
        Digest(name, day, tuple(kpis.values()), routes(project, name, owner), owner)
        for (name, day), kpis in sorted(grouped.items(), key=lambda item: (item[0][1], item[0][0]))
    ]


def routes(project: Project, meeting: str, owner: str | None = None) -> tuple[str, ...]:
    """The channels a meeting's review (an owner's, with ``owner``) goes to: the owner's, else the meeting's,
    else the project's; none at all is an error saying where to declare them."""
    delivery = project.delivery
    found = delivery.route(meeting, owner)
    if not found:
        raise KpiError(
            Diagnostic(
                f"no channel to deliver `{meeting}` to",
                delivery.loc() if delivery.locations else Location(str(project.root)),
                expected="`delivery: {channels: [...]}` or `delivery: {meetings: {" + meeting + ": [...]}}`",
                hint=did_you_mean(meeting, delivery.meetings, "meetings with channels")
                or "declare channels under `channels:` and route them under `delivery:` (see docs/delivery.md)",
            )
        )
    return found


def review_message(
    catalog: Any, digest: Digest, history_path: Path | None = None, templates: Path | None = None
) -> Message:
    """The review of ``digest`` as a message: the ``email`` report format's text and HTML parts, the full
    HTML report as an attachment, and the same content as data for chat cards and webhooks."""
    report, _, _ = review_report(
        catalog, list(digest.kpis), digest.day, None if digest.meeting == NO_MEETING else digest.meeting, history_path
    )
    registry = catalog.registry
    with tempfile.TemporaryDirectory(prefix="kpi-send-") as tmp:
        text, html = f"{report.title}\n", None
        if "email" in registry.formats:
            eml = write_report(report, registry, "email", Path(tmp) / "review.eml", templates)[0]
            parsed = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
            text = _part(parsed, "plain") or text
            html = _part(parsed, "html")
        attachments: tuple[Attachment, ...] = ()
        if "html" in registry.formats:
            with static_charts():  # (mail clients preview attachments without running scripts)
                page = write_report(report, registry, "html", Path(tmp) / "review.html", templates)[0]
            name = f"{slug(digest.meeting)}-{digest.day.isoformat()}.html"
            attachments = (Attachment(name, "text/html", page.read_bytes()),)
    return Message(_subject(report, digest), text, html, review_summary(report, digest), attachments)


def _part(message: Any, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    return body.get_content() if body is not None else None


def _subject(report: Report, digest: Digest) -> str:
    attention = len(report.attention)
    state = f"{attention} need{'s' if attention == 1 else ''} attention" if attention else "nothing needs attention"
    who = f" ({digest.owner})" if digest.owner else ""
    return f"{digest.meeting}{who}: review of {format_date(digest.day)}, {state}"


def review_summary(report: Report, digest: Digest) -> dict[str, Any]:
    """The review as data: what chat cards show and a webhook receives."""
    attention = [
        {"id": k.id, "name": k.name, "owner": k.owner, "status": k.status, "status_label": k.status_label,
         "why": k.why, "value": k.value, "value_text": k.value_text}
        for k in report.attention
    ]  # fmt: skip
    kpis = [
        {"id": k.id, "name": k.name, "owner": k.owner, "period": k.period, "value": k.value,
         "value_text": k.value_text, "target_text": k.target_text, "status": k.status,
         "status_label": k.status_label, "change_previous": k.change_previous, "change_year": k.change_year}
        for k in report.kpis
    ]  # fmt: skip
    sections = [
        {
            "title": f"Needs attention ({len(attention)})",
            "items": [f"{a['name']}: {a['status_label']}. {a['why']}" for a in attention]
            or ["Every KPI is achieved, on track or not started."],
        },
        {
            "title": "Scorecard",
            "items": [f"{k['name']}: {k['value_text']} (target {k['target_text']}), {k['status_label']}" for k in kpis],
        },
    ]
    return {
        "kind": "review",
        "title": report.title,
        "meeting": digest.meeting,
        "owner": digest.owner,
        "review_day": digest.day.isoformat(),
        "as_of": report.as_of.isoformat(),
        "period": report.period,
        "lead": f"Period under review: {report.period}",
        "counts": dict(report.counts),
        "needs_attention": attention,
        "kpis": kpis,
        "sections": sections,
    }


def send(catalog: Any, channel: str, message: Message) -> None:
    """Deliver ``message`` through the spec's channel ``channel`` (its secrets read from the environment now)."""
    spec = catalog.project.channels[channel]
    kind = catalog.registry.channels.get(spec.type)
    if kind is None:
        raise KpiError(Diagnostic(f"channel `{channel}` is of unknown type `{spec.type}`", spec.loc("type")))
    options = expand(spec)
    try:
        kind.send(message, options)
    except ChannelError:
        raise
    except KpiError:
        raise
    except Exception as exc:  # a plugin's bug is that channel's failure, named, not a crash of the whole run
        raise ChannelError(f"channel type `{spec.type}` failed: {type(exc).__name__}: {exc}") from exc


def check_channels(catalog: Any, names: Iterable[str]) -> None:
    """Every environment variable the channels read is set, before anything is sent (all or nothing)."""
    for name in dict.fromkeys(names):
        expand(catalog.project.channels[name])


@dataclass(frozen=True)
class Outcome:
    """What happened to one message on one channel: sent, skipped (sent before), failed, or dry-run."""

    digest: Digest
    channel: str
    state: str  # sent | skipped | failed | dry-run
    detail: str = ""
    message: Message | None = None


def deliver(
    catalog: Any,
    items: list[Digest],
    store: Path,
    *,
    force: bool = False,
    dry_run: bool = False,
    templates: Path | None = None,
    log: Callable[[Outcome], None] = lambda _: None,
) -> list[Outcome]:
    """Send each digest to each of its channels not yet sent to (all of them with ``force``), recording every
    success at once; a failing channel is reported and the others still go out. ``dry_run`` composes every
    message and sends and records nothing."""
    if not dry_run:
        check_channels(catalog, (c for d in items for c in d.channels))
    out = []
    for digest in items:
        pending = []
        for channel in digest.channels:
            when = None if force or dry_run else history.delivered(store, "review", digest.key, channel)
            if when is not None:
                out.append(Outcome(digest, channel, "skipped", f"sent {when}; --force sends it again"))
                log(out[-1])
            else:
                pending.append(channel)
        if not pending:
            continue
        message = review_message(catalog, digest, store, templates)
        for channel in pending:
            if dry_run:
                out.append(Outcome(digest, channel, "dry-run", recipients(catalog, channel), message))
            else:
                try:
                    send(catalog, channel, message)
                except ChannelError as exc:
                    out.append(Outcome(digest, channel, "failed", str(exc)))
                else:
                    history.record_delivery(store, "review", digest.key, channel, digest.day, message.subject)
                    out.append(Outcome(digest, channel, "sent", recipients(catalog, channel), message))
            log(out[-1])
    return out


def recipients(catalog: Any, channel: str) -> str:
    """Who a channel reaches, for ``--dry-run`` and the log: addresses, or the webhook's host (never its path)."""
    spec = catalog.project.channels[channel]
    options: Mapping[str, Any] = spec.options
    if "to" in options:
        return ", ".join(options["to"])
    url = str(options.get("url", ""))
    if url.startswith("${env:"):
        return f"the URL in {url[6:-1]}"
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url
