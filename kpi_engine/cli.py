"""The `kpi` command: parse arguments, call the library, print. Exit 0 ok, 2 bad input, 1 internal error."""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input prints its diagnostics and exits 2; a bug prints one line and exits 1 (traceback with KPI_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import KpiError

        try:
            return func(*args, **kwargs)
        except KpiError as exc:
            click.echo(exc.render(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            sys.exit(EXIT_INTERNAL)
        except Exception as exc:
            if os.environ.get("KPI_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "  this is a bug in kpi-engine; rerun with KPI_DEBUG=1 for the traceback",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)

    return wrapper


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"`{value}` is not a date; expected YYYY-MM-DD, e.g. 2026-06-30") from None


_PATH = click.argument("path", type=click.Path(path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kpi-engine", prog_name="kpi")
def main() -> None:
    """kpi-engine: define marketing KPIs once in YAML, compute them right, review them on time."""


@main.command()
@_PATH
@click.option("--allow-outside", is_flag=True, help="Allow data paths outside the spec folder.")
@_handle_errors
def validate(path: Path, allow_outside: bool) -> None:
    """Check spec files (PATH: a file or a directory) and report every problem at once."""
    from .api import load

    catalog = load(path, allow_outside=allow_outside)
    project = catalog.project
    click.echo(
        f"ok: {len(project.kpis)} KPIs, {len(project.sources)} sources, {len(project.params)} params "
        f"in {len(project.files)} file(s)"
    )


@main.command()
@_PATH
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "parquet"]),
    default=None,
    help="Output format (default: from the -o suffix, else table).",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to FILE (default: stdout)."
)
@click.option("--kpi", "kpis", multiple=True, metavar="ID", help="Evaluate only this KPI (repeatable).")
@click.option("--as-of", callback=_date, help="Use data up to the end of this day (default: today).")
@click.option("--from", "start", callback=_date, help="First day of the periods shown.")
@click.option("--to", "end", callback=_date, help="Last day of the periods shown.")
@click.option(
    "--periods",
    "last_periods",
    type=click.IntRange(min=1),
    default=None,
    help="Table format: show only the latest N periods per KPI (default 12; all with --from).",
)
@click.option("--explain", is_flag=True, help="Print the plan (scans, groups, aggregates) instead of running it.")
@click.option("--streaming", is_flag=True, help="Use polars' streaming engine (larger-than-memory data).")
@click.option("--record", is_flag=True, help="Append this review's snapshot to the history store.")
@click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="History store (default: .kpi/history.sqlite in the spec folder).",
)
@click.option("--allow-outside", is_flag=True, help="Allow data paths outside the spec folder.")
@_handle_errors
def run(
    path: Path,
    fmt: str | None,
    output: Path | None,
    kpis: tuple[str, ...],
    as_of: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
    last_periods: int | None,
    explain: bool,
    streaming: bool,
    record: bool,
    history_path: Path | None,
    allow_outside: bool,
) -> None:
    """Evaluate KPIs over their data and print or write every KPI's series."""
    from . import __version__
    from .api import load, today
    from .output import write_result
    from .plan import Window

    catalog = load(path, allow_outside=allow_outside)
    if explain:
        as_of = as_of or today(catalog.project.calendar.timezone)
        click.echo(catalog.plan(Window(as_of, start, end), kpis).describe())
        return
    if fmt is None:
        suffix = output.suffix.lower().lstrip(".") if output else ""
        fmt = suffix if suffix in ("json", "csv", "parquet") else "table"
    result, assessments = _evaluate_with_targets(catalog, as_of, start=start, end=end, kpis=kpis, streaming=streaming)
    if last_periods is None and start is None:
        last_periods = 12
    from .lint import lint

    smart = {k: v.as_json() for k, v in lint(catalog.project, result, list(result.series)).items()}
    text = write_result(
        result, fmt, output, __version__, last_periods=last_periods, assessments=assessments, smart=smart
    )
    if text is not None:
        click.echo(text, nl=False)
    elif output is not None:
        click.echo(f"wrote {output}", err=True)
    if record:
        from . import history

        store = history_path or history.default_path(path)
        rows = _snapshot_rows(result, assessments)
        snapshot = history.record(store, result.as_of, catalog.project.spec_hash, __version__, rows)
        click.echo(f"recorded review snapshot {snapshot} ({len(rows)} KPIs) in {store}", err=True)


def _snapshot_rows(result, assessments) -> dict:  # type: ignore[no-untyped-def]
    """One history row per KPI: the assessed value and status when it has a target, else its latest value."""
    import polars as pl

    from .output import target_json

    rows = {}
    for kpi_id, frame in result.series.items():
        spec = result.project.kpis[kpi_id]
        a = assessments.get(kpi_id, [None])[0]
        if a is not None:
            rows[kpi_id] = {
                "period": a.period,
                "value": a.value,
                "target": a.target,
                "expected": a.expected,
                "status": a.status,
                "why": a.why,
                "forecast": a.forecast.value if a.forecast else None,
                "target_spec": target_json(spec),
            }
            continue
        done = frame.filter(pl.col("is_total") & pl.col("complete"))
        last = done.row(-1, named=True) if done.height else None
        rows[kpi_id] = {"period": last["period"] if last else None, "value": last["value"] if last else None}
    return rows


def _evaluate_with_targets(catalog, as_of, **kwargs):  # type: ignore[no-untyped-def]
    """Evaluate and assess targets in one run (window and baseline spans share the scans)."""
    from .api import today
    from .targets import assess, span_requests

    as_of = as_of or today(catalog.project.calendar.timezone)
    wanted = set(kwargs.get("kpis") or catalog.project.kpis)
    spans = [(k, s) for k, s in span_requests(catalog.project, as_of) if k in wanted]
    result = catalog.evaluate(as_of, spans=spans, **kwargs)
    return result, assess(result)


@main.command()
@_PATH
@click.option("--as-of", callback=_date, help="Judge the targets on this day (default: today).")
@click.option("--kpi", "kpis", multiple=True, metavar="ID", help="Check only this KPI (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--allow-outside", is_flag=True, help="Allow data paths outside the spec folder.")
@_handle_errors
def check(path: Path, as_of: dt.date | None, kpis: tuple[str, ...], fmt: str, allow_outside: bool) -> None:
    """Judge key KPIs against their targets; exit 0 all on track, 1 any at risk, 3 any off track/missed/no data.

    Key KPIs are those marked `key: true`; when none is, every KPI with a target is checked.
    """
    import json

    from .api import load
    from .targets import assessments_json, overall

    catalog = load(path, allow_outside=allow_outside)
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
        click.echo(json.dumps(doc, indent=2, default=str))
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
@click.option("--allow-outside", is_flag=True, help="Allow data paths outside the spec folder.")
@_handle_errors
def due(path: Path, as_of: dt.date | None, days: int, fmt: str, allow_outside: bool) -> None:
    """List KPI reviews falling due, by meeting and owner, with the period each covers and its comparisons."""
    import json

    from .api import load, today
    from .review import covered_periods, due_reviews, span_requests, with_values
    from .targets import assess
    from .targets import span_requests as target_spans
    from .units import format_change, format_date, format_value

    catalog = load(path, allow_outside=allow_outside)
    project = catalog.project
    as_of = as_of or today(project.calendar.timezone)
    reviews = due_reviews(project, as_of, days)
    if not reviews:
        click.echo(f"no review due on {as_of}" + (f" or the {days - 1} days after" if days > 1 else ""), err=True)
        if fmt == "json":
            click.echo(json.dumps({"as_of": as_of.isoformat(), "reviews": []}))
        return
    ids = sorted({r.kpi.id for r in reviews})
    spans = span_requests(reviews) + [(k, s) for k, s in target_spans(project, as_of) if k in ids]
    result = catalog.evaluate(as_of, kpis=ids, spans=spans)
    reviews = with_values(reviews, result.spans, result.series, project.calendar)
    statuses = assess(result)
    if fmt == "json":
        doc = {"as_of": as_of.isoformat(), "reviews": [_review_json(r, project, statuses) for r in reviews]}
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    meeting = owner = None
    for r in reviews:
        unit = r.kpi.unit
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
            click.echo(f"      vs {c.label} ({c.span}): {format_value(c.value, unit)}{move}{sig}")
        for a in statuses.get(r.kpi.id, [])[:1]:
            click.echo(f"      {a.why}")


def _review_json(r, project, statuses) -> dict:  # type: ignore[no-untyped-def]
    from .review import covered_periods
    from .targets import assessments_json

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
@click.option("--allow-outside", is_flag=True, help="Allow data paths outside the spec folder.")
@_handle_errors
def lint_command(path: Path, as_of: dt.date | None, strict: bool, fmt: str, allow_outside: bool) -> None:
    """Score every KPI on the SMART letters, with the reason for each miss."""
    import json

    from .api import load
    from .lint import LETTERS, lint, meeting_warnings

    catalog = load(path, allow_outside=allow_outside)
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
        click.echo(json.dumps(doc, indent=2))
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
@click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="History store (default: .kpi/history.sqlite in the spec folder).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_handle_errors
def history_command(path: Path, kpi_id: str, history_path: Path | None, fmt: str) -> None:
    """Print a KPI's recorded review snapshots and what changed between them (PATH: the spec folder)."""
    import dataclasses
    import json

    from . import history
    from .errors import KpiError, did_you_mean

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
        click.echo(json.dumps({"kpi": kpi_id, "snapshots": out}, indent=2))
        return
    for item in out:
        value = "-" if item["value"] is None else f"{item['value']:.6g}"
        click.echo(
            f"#{item['id']} as of {item['as_of']} (recorded {item['recorded_at']}, spec {item['spec_hash']}): "
            f"{item['period'] or '-'} = {value}, status {item['status'] or '-'}"
        )
        for change in item["changes"]:
            click.echo(f"    {change}")


@main.command("test")
@_PATH
@click.option(
    "--tests",
    "tests_path",
    type=click.Path(path_type=Path, exists=True),
    help="Test files or a folder of them (default: the *.test.yaml files below PATH).",
)
@_handle_errors
def test_command(path: Path, tests_path: Path | None) -> None:
    """Run the KPI fixture tests (*.test.yaml) beside the specs; exit 1 on any failure."""
    from .testing import run_tests

    outcomes = run_tests(path, tests_path)
    if not outcomes:
        click.echo("no KPI tests found (*.test.yaml)", err=True)
        sys.exit(EXIT_BAD_INPUT)
    failed = [o for o in outcomes if not o.passed]
    for o in outcomes:
        click.echo(f"{'PASS' if o.passed else 'FAIL'} {o.file}::{o.name}")
        for failure in o.failures:
            click.echo(f"    {failure}")
    click.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    if failed:
        sys.exit(1)


@main.command("docs")
@_PATH
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write to FILE (default: stdout)."
)
@click.option("--check", is_flag=True, help="Exit 1 if FILE is not what would be generated (for CI).")
@_handle_errors
def docs_command(path: Path, output: Path | None, check: bool) -> None:
    """Generate the KPI dictionary (Markdown) from the specs."""
    from .docs import render
    from .output import atomic_write
    from .plugins import default_registry
    from .spec import load_project

    project = load_project(path, default_registry().connector_schemas())
    text = render(project)
    if check:
        if output is None:
            raise click.UsageError("--check needs -o FILE")
        current = output.read_text("utf-8") if output.exists() else ""
        if current != text:
            click.echo(f"{output} is out of date: run `kpi docs {path} -o {output}`", err=True)
            sys.exit(1)
        click.echo(f"{output} is up to date", err=True)
        return
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
    click.echo(f"wrote {output}", err=True)


@main.command("init")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite the scaffold's files if they exist.")
@_handle_errors
def init_command(folder: Path, force: bool) -> None:
    """Create a spec folder with one documented KPI, sample data and a fixture test."""
    from .api import today
    from .plugins import default_registry
    from .scaffold import init
    from .spec import full_schema

    written = init(folder, today("UTC"), full_schema(default_registry().connector_schemas()), force)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"next: kpi validate {folder} && kpi run {folder} && kpi test {folder}", err=True)


@main.command()
@_handle_errors
def schema() -> None:
    """Print the JSON Schema of spec files, with the options of every installed connector."""
    import json

    from .plugins import default_registry
    from .spec import full_schema

    click.echo(json.dumps(full_schema(default_registry().connector_schemas()), indent=2))


@main.command()
@_handle_errors
def plugins() -> None:
    """List installed plugins with their connectors, functions and report formats."""
    from .plugins import default_registry

    reg = default_registry()
    for name, items in sorted(reg.plugins.items()):
        click.echo(f"{name}: {', '.join(items) if items else '(registers nothing)'}")
    for name, c in sorted(reg.connectors.items()):
        click.echo(f"  connector {name}: {c.description}")
    for name, f in sorted(reg.functions.items()):
        click.echo(f"  function {name}(): {f.doc}")
    for failure in reg.failures:
        click.echo(f"FAILED {failure.plugin} ({failure.stage}): {failure.error}", err=True)


if __name__ == "__main__":
    main()
