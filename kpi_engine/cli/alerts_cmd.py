"""`kpi alerts` and `kpi watch`: check the alert conditions once, or again and again (on a timer, and at once
when a spec or data file changes)."""

from __future__ import annotations

import datetime as dt
import queue
import sys
import threading
from pathlib import Path

import click

from .common import _ALLOW_OUTSIDE, _HISTORY, _PATH, EXIT_INTERNAL, _handle_errors, main

_NOW = click.option(
    "--now",
    "now_text",
    metavar="YYYY-MM-DDTHH:MM",
    help="Check as at this time in the spec's time zone (default: now): data up to the day before.",
)
_DRY_RUN = click.option("--dry-run", is_flag=True, help="Print what would be notified; send and record nothing.")
_CACHE = click.option(
    "--cache/--no-cache",
    default=True,
    help="Keep each period's aggregates in .kpi/cache (beside the history store) and aggregate again only the "
    "periods new or changed rows reach (default: on).",
)


@main.command("alerts")
@_PATH
@_NOW
@_DRY_RUN
@_HISTORY
@_CACHE
@_ALLOW_OUTSIDE
@_handle_errors
def alerts_command(
    path: Path, now_text: str | None, dry_run: bool, history_path: Path | None, cache: bool, access: dict
) -> None:
    """Check every KPI's alert conditions once and notify what changed since the last check.

    A condition that starts firing is notified once, a change in what fires again, and its clearing once
    (resolved). Exit 0 when every notice was delivered (or none was due), 1 when a channel failed (the next
    run sends it again), 2 on bad input.
    """
    if check_once(path, now_text, dry_run, history_path, access, cache):
        sys.exit(EXIT_INTERNAL)


def check_once(
    path: Path, now_text: str | None, dry_run: bool, history_path: Path | None, access: dict, cache: bool = False
) -> int:
    """One check: load the specs, judge every condition, send what changed; returns how many notices failed."""
    import zoneinfo

    from .. import alerts, history
    from ..api import load
    from ..errors import KpiError
    from ..increment import Cache

    catalog = load(path, **access)
    project = catalog.project
    zone = zoneinfo.ZoneInfo(project.calendar.timezone)
    try:
        now = dt.datetime.fromisoformat(now_text) if now_text else dt.datetime.now(zone)
    except ValueError:
        raise KpiError(f"--now `{now_text}` is not a time", hint="write it like 2026-06-01T09:00") from None
    now = now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)
    todo = alerts.conditions(project)
    if not todo:
        click.echo("no KPI has alert conditions (`alerts:` on a KPI, or `alerts: every_kpi:`)", err=True)
        return 0
    unrouted = sorted({k.id for k, _ in todo if not alerts.routes(project, k)})
    if unrouted:
        raise KpiError(
            f"KPIs {', '.join(unrouted)} have alerts but no channel to send them to",
            hint="route them under `delivery:` (channels, or the owner's or meeting's); see docs/delivery.md",
        )
    store = history_path or history.default_path(path)
    kept = Cache(store.parent / "cache") if cache else None
    checks = alerts.run_checks(catalog, now.date() - dt.timedelta(days=1), kept)  # what has finished: not today
    if kept is not None:
        click.echo(kept.line(), err=True)
    items = alerts.notices(project, checks, history.alert_states(store), now)
    due = [n for n in items if n.kind != "none"]
    for n in due:
        click.echo(n.line)
    if alerts.quiet(project.alerts, now) and any(c.firing for c in checks):
        click.echo("quiet hours: notices wait until they end", err=True)
    failed = alerts.dispatch(catalog, items, store, now, dry_run=dry_run, log=_print_alert)
    firing = sum(c.firing for c in checks)
    click.echo(f"{len(checks)} conditions checked, {firing} firing, {len(due)} notices", err=True)
    return failed


def _print_alert(state: str, channel: str, detail: str) -> None:
    if state == "failed":
        click.echo(f"FAILED alerts to {channel}: {detail}", err=True)
    else:
        click.echo(f"{'would send' if state == 'dry-run' else 'sent'} to {channel}: {detail}", err=True)


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        number, unit = (float(value[:-1]), value[-1]) if value[-1] in units else (float(value), "s")
    except (ValueError, IndexError):
        raise click.BadParameter(f"`{value}` is not a duration; write 30s, 15m or 1h") from None
    if number <= 0:
        raise click.BadParameter("the interval must be positive")
    return number * units[unit]


@main.command("watch")
@_PATH
@click.option("--every", default="15m", callback=_seconds, help="Check this often (30s, 15m, 1h; default 15m).")
@click.option(
    "--on-change/--no-on-change", default=True, help="Also check as soon as a spec or data file changes (default)."
)
@click.option("--runs", type=click.IntRange(min=1), help="Stop after this many checks (default: until Ctrl-C).")
@_NOW
@_DRY_RUN
@_HISTORY
@_CACHE
@_ALLOW_OUTSIDE
@_handle_errors
def watch_command(
    path: Path,
    every: float,
    on_change: bool,
    runs: int | None,
    now_text: str | None,
    dry_run: bool,
    history_path: Path | None,
    cache: bool,
    access: dict,
) -> None:
    """Run `kpi alerts` every --every, and at once when a spec or data file changes (until Ctrl-C).

    A spec error or an unreachable channel is printed and the watch goes on: the next check tries again.
    The files are watched from before the first check, so a file that changes while a check runs triggers
    the next one at once. Only spec files (YAML) and the sources' data count: a log written beside them,
    or the checks' own history store and cache, never triggers a check.
    """
    import time

    from .. import history
    from ..errors import KpiError

    store = history_path or history.default_path(path)
    changes: queue.Queue[set[tuple[object, str]]] = queue.Queue()
    inputs = _Inputs((str(store), str(store.parent / "cache")))
    watching: tuple[list[Path], threading.Event] | None = None
    done = 0
    try:
        while runs is None or done < runs:
            if on_change:  # (again before each check: a spec edit may add a source, or its folder)
                inputs.data = _data(path)
                folders = _watched(path, inputs.data)
                if watching is None or watching[0] != folders:
                    if watching is not None:
                        watching[1].set()
                    watching = (folders, _follow(folders, inputs, changes))
            try:
                check_once(path, now_text, dry_run, history_path, access, cache)
            except KpiError as exc:
                click.echo(exc.render(), err=True)
            done += 1
            if runs is not None and done >= runs:
                break
            try:
                if on_change:
                    changed = _changes(changes, every)
                    if changed:
                        click.echo(f"changed: {', '.join(sorted({Path(p).name for _, p in changed}))}", err=True)
                else:
                    time.sleep(every)
            except KeyboardInterrupt:
                break
    finally:
        if watching is not None:
            watching[1].set()


class _Inputs:
    """Which changed paths call for a check: spec files (YAML) and the sources' data (``data``: files,
    folders or globs, as the specs name them), never the check's ``own`` files."""

    def __init__(self, own: tuple[str, ...]) -> None:
        import watchfiles

        self.usual = watchfiles.DefaultFilter(
            ignore_dirs=(*watchfiles.DefaultFilter.ignore_dirs, ".kpi"), ignore_paths=own
        )
        self.data: list[Path] = []

    def __call__(self, change: object, path: str) -> bool:
        import fnmatch

        if not self.usual(change, path):  # type: ignore[arg-type]
            return False
        changed = Path(path)
        if changed.suffix in (".yaml", ".yml"):
            return True
        return any(
            changed == where or where in changed.parents or fnmatch.fnmatch(path, str(where)) for where in self.data
        )


def _data(path: Path) -> list[Path]:
    """The sources' data locations (none while the specs do not load: then only a spec fix calls a check)."""
    from ..api import data_locations

    return data_locations(path) or []


def _follow(folders: list[Path], inputs: _Inputs, changes: queue.Queue) -> threading.Event:
    """Watch ``folders`` in a thread of its own, putting each batch of changes that ``inputs`` keeps in
    ``changes``, until the event returned is set."""
    import watchfiles

    stop = threading.Event()

    def follow() -> None:
        for batch in watchfiles.watch(*folders, watch_filter=inputs, stop_event=stop, raise_interrupt=False):
            changes.put(batch)

    threading.Thread(target=follow, name="kpi-watch", daemon=True).start()
    return stop


def _changes(changes: queue.Queue, seconds: float) -> set:
    """The changes seen until one arrives or ``seconds`` pass (empty then), with any others already queued."""
    try:
        found = set(changes.get(timeout=seconds))
    except queue.Empty:
        return set()
    while True:
        try:
            found |= changes.get_nowait()
        except queue.Empty:
            return found


def _watched(path: Path, data: list[Path]) -> list[Path]:
    """The spec folder (or file) and the folders of the sources' ``data`` that exist (a broken spec has none:
    its folder, so that its fix triggers a check)."""
    found = [path]
    for location in data:
        folder = location.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if folder.exists() and not any(folder.is_relative_to(p) for p in found):
            found.append(folder)
    return found
