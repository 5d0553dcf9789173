"""The core commands: validate, run, schema, plugins."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from ..formats import FILE_FORMATS, RUN_FORMATS
from .common import (
    _ALLOW_OUTSIDE,
    _HISTORY,
    _PATH,
    EXIT_INTERNAL,
    _date,
    _default_history,
    _evaluate_with_targets,
    _exit_on_plugin_errors,
    _handle_errors,
    _record,
    main,
)


@main.command()
@_PATH
@_ALLOW_OUTSIDE
@_handle_errors
def validate(path: Path, access: dict) -> None:
    """Check spec files (PATH: a file or a directory) and report every problem at once.

    Data outside the folders it may be read from is not read (its columns are then not checked): validating
    a spec never needs --allow-outside. A connector that declares its columns is not read at all.
    """
    from ..api import load

    catalog = load(path, skip_outside=True, offline=True, **access)
    for line in catalog.notes:
        click.echo(f"note: {line}", err=True)
    project = catalog.project
    for failure in catalog.failures:
        click.echo(f"error: {failure.message()}", err=True)
    if catalog.failures:
        sys.exit(EXIT_INTERNAL)
    click.echo(
        f"ok: {len(project.kpis)} KPIs, {len(project.sources)} sources, {len(project.params)} params "
        f"in {len(project.files)} file(s)"
    )


@main.command()
@_PATH
@click.option(
    "--format",
    "fmt",
    type=click.Choice(RUN_FORMATS),
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
@click.option(
    "--all-time",
    is_flag=True,
    help="One value per KPI over every day up to as-of (ratios recomputed from all-time sums), not a series.",
)
@click.option("--explain", is_flag=True, help="Print the plan (scans, groups, aggregates) instead of running it.")
@click.option("--streaming", is_flag=True, help="Use polars' streaming engine (larger-than-memory data).")
@click.option("--record", is_flag=True, help="Append this review's snapshot to the history store.")
@_HISTORY
@_ALLOW_OUTSIDE
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
    all_time: bool,
    explain: bool,
    streaming: bool,
    record: bool,
    history_path: Path | None,
    access: dict,
) -> None:
    """Evaluate KPIs over their data and print or write every KPI's series (or its all-time value)."""
    from .. import __version__
    from ..api import data_warnings, load, stale_sources, today, trim_stale
    from ..output import write_result
    from ..periods import all_time as all_time_span
    from ..plan import Window
    from ..spec import iter_kpis

    if all_time and record:
        raise click.UsageError("--all-time values are not a review: leave out --record")
    catalog = load(path, **access)
    if explain:
        as_of = as_of or today(catalog.project.calendar.timezone)
        spans = [(k.id, all_time_span(as_of)) for k in iter_kpis(catalog.project, kpis)] if all_time else ()
        click.echo(catalog.explain(Window(as_of, start, end), kpis, spans, series=not all_time))
        return
    if fmt is None:
        suffix = output.suffix.lower().lstrip(".") if output else ""
        fmt = suffix if suffix in FILE_FORMATS else "table"
    if all_time:  # targets are met per period, never over all time: no status
        result = catalog.evaluate(as_of, start=start, end=end, kpis=kpis, streaming=streaming, all_time=True)
        assessments: dict = {}
    else:
        result, assessments = _evaluate_with_targets(
            catalog, as_of, start=start, end=end, kpis=kpis, streaming=streaming, moves=fmt == "json"
        )
    if end is None and stale_sources(result) and trim_stale(result):
        result.warnings = data_warnings(result, trimmed=True)
    if last_periods is None and start is None:
        last_periods = 12
    from ..lint import lint

    smart = {k: v.as_json() for k, v in lint(catalog.project, result, list(result.series)).items()}
    text = write_result(
        result, fmt, output, __version__, last_periods=last_periods, assessments=assessments, smart=smart
    )
    if text is not None:
        click.echo(text, nl=False)
    elif output is not None:
        click.echo(f"wrote {output}", err=True)
    if record:
        _record(history_path or _default_history(path), result, assessments)
    _exit_on_plugin_errors(result)


@main.command()
@_handle_errors
def schema() -> None:
    """Print the JSON Schema of spec files, with the options of every installed connector and channel type."""
    import json

    from ..plugins import default_registry
    from ..spec import full_schema

    registry = default_registry()
    click.echo(json.dumps(full_schema(registry.connector_schemas(), registry.channel_schemas()), indent=2))


@main.command()
@_handle_errors
def plugins() -> None:
    """List installed plugins with their connectors, functions, report formats and delivery channels."""
    from ..plugins import default_registry

    reg = default_registry()
    for name, items in sorted(reg.plugins.items()):
        click.echo(f"{name}: {', '.join(items) if items else '(registers nothing)'}")
    for name, c in sorted(reg.connectors.items()):
        click.echo(f"  connector {name}: {c.description}")
    for name, f in sorted(reg.functions.items()):
        click.echo(f"  function {name}(): {f.doc}")
    for name, ch in sorted(reg.channels.items()):
        click.echo(f"  channel {name}: {ch.description}")
    for failure in reg.failures:
        click.echo(f"FAILED {failure.plugin} ({failure.stage}): {failure.error}", err=True)
    if reg.failures:
        sys.exit(EXIT_INTERNAL)  # a plugin that failed to load is not a clean bill of health
