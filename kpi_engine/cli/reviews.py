"""Review commands: kpi check, due, lint and history."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ..jsonout import json_text
from .common import _ALLOW_OUTSIDE, _HISTORY, _PATH, EXIT_BAD_INPUT, _date, _evaluate_with_targets, _handle_errors, main


@main.command()
@_PATH
@click.option("--as-of", callback=_date, help="Judge the targets on this day (default: today).")
@click.option("--kpi", "kpis", multiple=True, metavar="ID", help="Check only this KPI (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_ALLOW_OUTSIDE
@_handle_errors
def check(path: Path, as_of: dt.date | None, kpis: tuple[str, ...], fmt: str, access: dict) -> None:
    """Judge key KPIs against their targets; exit 0 all on track, 1 any at risk, 3 any off track/missed/no data.

    Key KPIs are those marked `key: true`; when none is, every KPI with a target is checked.
    """

    from ..api import load
    from ..targets import assessments_json, overall

    catalog = load(path, **access)
    project = catalog.project
    ids = (
        list(kpis)
        or [k.id for k in project.kpis.values() if k.key and k.target]
        or [k.id for k in project.kpis.values() if k.target]
    )
    if not ids:
        click.echo("no KPI has a target: nothing to check", err=True)
        return
    result, assessments = _evaluate_with_targets(catalog, as_of, kpis=ids)
    code = overall(assessments, ids)
    if fmt == "json":
        doc = {
            "as_of": result.as_of.isoformat(),
            "exit_code": code,
            "kpis": [{"id": i, **assessments_json(assessments[i])} for i in ids if i in assessments],
        }
        click.echo(json_text(doc))
    else:
        for kpi_id in ids:
            for a in assessments.get(kpi_id, []):
                dims = "".join(f" [{k}={v}]" for k, v in a.dims.items())
                click.echo(f"{a.status.upper():<12} {kpi_id}{dims}: {a.why}")
    sys.exit(code)


@main.command()
@_PATH
@click.option("--as-of", callback=_date, help="The day to list reviews for (default: today).")
@click.option(
    "--days", type=click.IntRange(min=1, max=366), default=1, help="Also list reviews due in the next N-1 days."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_ALLOW_OUTSIDE
@_handle_errors
def due(path: Path, as_of: dt.date | None, days: int, fmt: str, access: dict) -> None:
    """List KPI reviews falling due, by meeting and owner, with the period each covers and its comparisons."""

    from ..api import load, today
    from ..review import covered_periods, due_reviews, span_requests, with_values
    from ..targets import assess
    from ..targets import span_requests as target_spans
    from ..units import format_change, format_date, format_value

    catalog = load(path, **access)
    project = catalog.project
    as_of = as_of or today(project.calendar.timezone)
    reviews = due_reviews(project, as_of, days)
    if not reviews:
        click.echo(f"no review due on {as_of}" + (f" or the {days - 1} days after" if days > 1 else ""), err=True)
        if fmt == "json":
            click.echo(json_text({"as_of": as_of.isoformat(), "reviews": []}, indent=None))
        return
    ids = sorted({r.kpi.id for r in reviews})
    spans = span_requests(reviews) + [(k, s) for k, s in target_spans(project, as_of) if k in ids]
    result = catalog.evaluate(as_of, kpis=ids, spans=spans)
    reviews = with_values(reviews, result.spans, result.series, project.calendar)
    statuses = assess(result)
    if fmt == "json":
        doc = {"as_of": as_of.isoformat(), "reviews": [_review_json(r, project, statuses) for r in reviews]}
        click.echo(json_text(doc))
        return
    meeting = owner = None
    for r in reviews:
        unit = r.kpi.shown
        if r.meeting != meeting:
            meeting, owner = r.meeting, None
            click.echo(f"\n{meeting}")
        if r.owner != owner:
            owner = r.owner
            click.echo(f"  {owner}")
        covers = ", ".join(covered_periods(r, project.calendar))
        partial = " (to date)" if r.partial else ""
        click.echo(
            f"    {r.kpi.name} [{r.kpi.id}] on {format_date(r.day)}: {covers}{partial} = {format_value(r.value, unit)}"
        )
        for c in r.comparisons:
            move = (
                ""
                if c.change is None
                else f", change {format_change(c.change, unit)}"
                + (f" ({c.change_pct:+.1f}%)" if c.change_pct is not None else "")
            )
            sig = {True: ", significant", False: ", not significant (intervals overlap)"}.get(c.significant, "")
            warn = f" [{c.warning}]" if c.warning else ""
            click.echo(f"      vs {c.label} ({c.span}): {format_value(c.value, unit)}{move}{sig}{warn}")
        for a in statuses.get(r.kpi.id, [])[:1]:
            click.echo(f"      {a.why}")


def _review_json(r, project, statuses) -> dict:  # type: ignore[no-untyped-def]
    from ..review import covered_periods
    from ..targets import assessments_json

    return {
        "meeting": r.meeting,
        "owner": r.owner,
        "kpi": r.kpi.id,
        "name": r.kpi.name,
        "review_day": r.day.isoformat(),
        "covers": {
            "start": r.span.start.isoformat(),
            "end": r.span.end.isoformat(),
            "partial": r.partial,
            "periods": covered_periods(r, project.calendar),
        },
        "value": r.value,
        "comparisons": [
            {
                "label": c.label,
                "start": c.span.start.isoformat(),
                "end": c.span.end.isoformat(),
                "value": c.value,
                "change": c.change,
                "change_pct": c.change_pct,
                "significant": c.significant,
                "coverage": c.coverage,
                "warning": c.warning,
            }
            for c in r.comparisons
        ],
        "status": assessments_json(statuses[r.kpi.id]) if r.kpi.id in statuses else None,
    }


@main.command("lint")
@_PATH
@click.option("--as-of", callback=_date, help="Judge data-based rules with data up to this day (default: today).")
@click.option("--strict", is_flag=True, help="Exit 2 when any KPI fails a SMART letter.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_ALLOW_OUTSIDE
@_handle_errors
def lint_command(path: Path, as_of: dt.date | None, strict: bool, fmt: str, access: dict) -> None:
    """Score every KPI on the SMART letters, with the reason for each miss."""

    from ..api import load
    from ..lint import LETTERS, lint, meeting_warnings

    catalog = load(path, skip_outside=True, **access)  # lint never needs --allow-outside: see validate
    for line in catalog.notes:
        click.echo(f"note: {line}", err=True)
    result, _ = _evaluate_with_targets(catalog, as_of)
    report = lint(catalog.project, result)
    warnings = meeting_warnings(catalog.project)
    failing = [k for k, r in report.items() if r.score < len(LETTERS)]
    if fmt == "json":
        doc = {
            "as_of": result.as_of.isoformat(),
            "kpis": {k: r.as_json() for k, r in report.items()},
            "warnings": warnings,
        }
        click.echo(json_text(doc))
    else:
        for kpi_id, r in report.items():
            marks = " ".join(letter if ok else "·" for letter, ok in r.letters.items())
            click.echo(f"{marks}  {r.score}/5  {kpi_id}")
            for f in r.findings:
                click.echo(f"             {f.letter}: {f.message}")
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
        click.echo(f"{len(report) - len(failing)} of {len(report)} KPIs are SMART", err=True)
    if strict and failing:
        sys.exit(EXIT_BAD_INPUT)


@main.command("history")
@_PATH
@click.argument("kpi_id")
@_HISTORY
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_handle_errors
def history_command(path: Path, kpi_id: str, history_path: Path | None, fmt: str) -> None:
    """Print a KPI's recorded review snapshots and what changed between them (PATH: the spec folder)."""
    import dataclasses

    from .. import history
    from ..errors import KpiError, did_you_mean

    store = history_path or history.default_path(path)
    if not store.exists():
        raise KpiError(f"no history store at {store}", hint="record reviews with `kpi run --record`")
    snaps = history.snapshots(store, kpi_id)
    if not snaps:
        with history.connect(store) as con:
            known = [r[0] for r in con.execute("SELECT DISTINCT kpi FROM kpi_snapshots")]
        raise KpiError(f"no snapshot of KPI `{kpi_id}` in {store}", hint=did_you_mean(kpi_id, known, "recorded KPIs"))
    previous = None
    out = []
    for snap in snaps:
        out.append({**dataclasses.asdict(snap), "changes": history.changes(previous, snap)})
        previous = snap
    if fmt == "json":
        click.echo(json_text({"kpi": kpi_id, "snapshots": out}))
        return
    for item in out:
        value = "-" if item["value"] is None else f"{item['value']:.6g}"
        click.echo(
            f"#{item['id']} as of {item['as_of']} (recorded {item['recorded_at']}, spec {item['spec_hash']}): "
            f"{item['period'] or '-'} = {value}, status {item['status'] or '-'}"
        )
        for change in item["changes"]:
            click.echo(f"    {change}")
