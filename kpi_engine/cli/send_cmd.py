"""`kpi send`: deliver the reviews falling due through the spec's channels, once each."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from .common import _ALLOW_OUTSIDE, _HISTORY, _PATH, EXIT_INTERNAL, _date, _handle_errors, main


@main.command("send")
@_PATH
@click.option("--as-of", callback=_date, help="Send the reviews due on this day (default: today).")
@click.option("--meeting", help="Only this meeting's reviews.")
@click.option("--owner", help="Only this owner's KPIs, to the owner's channels when `delivery: owners:` has them.")
@click.option("--cadence", "review_cadence", help="Only the KPIs with this review cadence (weekly, monthly...).")
@click.option(
    "--catch-up",
    type=click.IntRange(min=1, max=31),
    default=1,
    help="Also send reviews due in the N-1 days before, not sent yet (a missed run).",
)
@click.option("--dry-run", is_flag=True, help="Compose every message and print it; send and record nothing.")
@click.option("--force", is_flag=True, help="Send again reviews already sent for their period.")
@click.option(
    "--templates",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder of templates overriding the built-in ones by name.",
)
@_HISTORY
@_ALLOW_OUTSIDE
@_handle_errors
def send_command(
    path: Path,
    as_of: dt.date | None,
    meeting: str | None,
    owner: str | None,
    review_cadence: str | None,
    catch_up: int,
    dry_run: bool,
    force: bool,
    templates: Path | None,
    history_path: Path | None,
    access: dict,
) -> None:
    """Deliver every review falling due to its channels (e-mail, Slack, Teams, Google Chat, webhooks).

    A review already sent to a channel for its day, as the history store records, is not sent again
    (unless --force). Exit 0 when everything due was sent or had been, 1 when a channel failed (the others
    were sent; run again to retry only the failed ones), 2 on bad input.
    """
    from .. import deliver, history
    from ..api import load, today

    catalog = load(path, **access)
    as_of = as_of or today(catalog.project.calendar.timezone)
    items = deliver.digests(catalog.project, as_of, catch_up, meeting, owner, review_cadence)
    if not items:
        span = f"on {as_of}" if catch_up == 1 else f"from {as_of - dt.timedelta(days=catch_up - 1)} to {as_of}"
        click.echo(f"no review due {span}: nothing to send", err=True)
        return
    store = history_path or history.default_path(path)
    outcomes = deliver.deliver(catalog, items, store, force=force, dry_run=dry_run, templates=templates, log=_printer())
    failed = [o for o in outcomes if o.state == "failed"]
    sent = sum(o.state == "sent" for o in outcomes)
    skipped = sum(o.state == "skipped" for o in outcomes)
    if not dry_run:
        click.echo(f"{sent} sent, {skipped} already sent, {len(failed)} failed", err=True)
    if failed:
        sys.exit(EXIT_INTERNAL)


def _printer():  # type: ignore[no-untyped-def]
    """A log for one `kpi send`: each outcome on a line, a dry run's message printed once per review (its
    channels share it), whatever an earlier call in the same process printed."""
    shown: set[str] = set()

    def print_outcome(o) -> None:  # type: ignore[no-untyped-def]
        kind = o.channel
        if o.state == "dry-run":
            message = o.message
            click.echo(f"would send {o.digest.label} to {kind} ({o.detail})")
            if o.digest.key in shown:
                return
            shown.add(o.digest.key)
            click.echo(f"  subject: {message.subject}")
            for line in message.text.rstrip().splitlines():
                click.echo(f"  | {line}")
            for item in message.attachments:
                click.echo(f"  attachment: {item.filename} ({len(item.data):,} bytes)")
        elif o.state == "sent":
            click.echo(f"sent {o.digest.label} to {kind} ({o.detail})")
        elif o.state == "skipped":
            click.echo(f"skipped {o.digest.label} to {kind}: {o.detail}")
        else:
            click.echo(f"FAILED {o.digest.label} to {kind}: {o.detail}", err=True)

    return print_outcome
