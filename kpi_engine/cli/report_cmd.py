"""`kpi report`: the review-meeting report in HTML, Markdown, PDF or e-mail."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from .common import _ALLOW_OUTSIDE, _HISTORY, _PATH, EXIT_INTERNAL, _date, _handle_errors, main


@main.command("report")
@_PATH
@click.option("--as-of", callback=_date, help="Review date: data up to the end of this day (default: today).")
@click.option("--meeting", help="Only the KPIs reviewed in this meeting.")
@click.option("--cadence", "review_cadence", help="Only the KPIs with this review cadence (weekly, monthly...).")
@click.option("--owner", help="Only the KPIs of this owner.")
@click.option("--format", "fmt", default=None, help="html (default), md, pdf, email, or a plugin's format.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to FILE (default: reports/out/<meeting>-<as-of>.<ext>); parent folders are created.",
)
@click.option(
    "--templates",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder of templates overriding the built-in ones by name.",
)
@click.option(
    "--notes",
    "notes_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="YAML file of agenda notes and actions: {kpi_id: [note, ...]}.",
)
@click.option("--record", is_flag=True, help="Also append this review's snapshot to the history store.")
@_HISTORY
@_ALLOW_OUTSIDE
@_handle_errors
def report_command(
    path: Path,
    as_of: dt.date | None,
    meeting: str | None,
    review_cadence: str | None,
    owner: str | None,
    fmt: str | None,
    output: Path | None,
    templates: Path | None,
    notes_path: Path | None,
    record: bool,
    history_path: Path | None,
    access: dict,
) -> None:
    """Render the review report: needs attention first, scorecard, then a section per KPI."""
    from .. import content, history
    from ..api import load, today
    from ..errors import KpiError, did_you_mean
    from ..report import review_report, slug
    from .common import _exit_on_plugin_errors, _record

    catalog = load(path, **access)
    project = catalog.project
    registry = catalog.registry
    as_of = as_of or today(project.calendar.timezone)
    kpis = content.select(project, meeting, review_cadence, owner)
    if not kpis:
        meetings = {k.review.meeting for k in project.kpis.values() if k.review and k.review.meeting}
        owners = {k.owner for k in project.kpis.values() if k.owner}
        hint = did_you_mean(meeting, meetings, "meetings") if meeting else did_you_mean(owner or "", owners, "owners")
        raise KpiError("no KPI matches the selection", hint=hint)
    if fmt is None and output is not None:  # from the output's suffix, among the registered formats
        by_suffix = {f".{f.extension}": f.name for f in reversed(list(registry.formats.values()))}
        fmt = by_suffix.get(output.suffix.lower())
        if fmt is None:
            raise KpiError(
                f"cannot tell which report format `{output.name}` is",
                hint=f"pass --format ({', '.join(sorted(registry.formats))}) or name the file "
                + ", ".join(sorted({f".{f.extension}" for f in registry.formats.values()})),
            )
    fmt = fmt or "html"
    if fmt not in registry.formats:
        clash = registry.clash("format", fmt)
        raise KpiError(clash or f"unknown report format `{fmt}`", hint=did_you_mean(fmt, registry.formats, "formats"))
    notes = _read_notes(notes_path, project) if notes_path else {}
    store = history_path or history.default_path(path)
    with _progress(len(kpis)) as step:
        report, result, assessments = review_report(catalog, kpis, as_of, meeting, store, notes)
        step("evaluated")
        if output is None:
            name = slug(meeting or review_cadence or owner or "review")
            output = Path("reports") / "out" / f"{name}-{as_of}.{registry.formats[fmt].extension}"
        written = _write(report, registry, fmt, output, templates)
        step("rendered")
    for file in written[:1]:
        click.echo(f"wrote {file}" + (f" (and {len(written) - 1} chart files)" if len(written) > 1 else ""), err=True)
    if record:
        _record(store, result, assessments)
    _exit_on_plugin_errors(result)


def _write(report, registry, fmt: str, output: Path, templates: Path | None) -> list[Path]:  # type: ignore[no-untyped-def]
    """Write the report; a format plugin that fails is named, with exit 1 (it is not the spec's fault)."""
    from ..report import PluginFormatError, write_report

    try:
        return write_report(report, registry, fmt, output, templates)
    except PluginFormatError as exc:
        plugin = registry.formats[fmt].plugin or "?"
        click.echo(f"error: report format `{fmt}` (plugin `{plugin}`) failed: {exc}", err=True)
        sys.exit(EXIT_INTERNAL)


def _read_notes(path: Path, project) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    from ..errors import KpiError, Location, did_you_mean
    from ..yaml_loader import load_yaml

    data, pos = load_yaml(path.read_text("utf-8"), str(path))
    if not isinstance(data, dict):
        raise KpiError("a notes file maps KPI ids to lists of notes", location=Location(str(path), 1, 1))
    out = {}
    for kpi_id, items in data.items():
        if kpi_id not in project.kpis:
            raise KpiError(
                f"notes for unknown KPI `{kpi_id}`",
                location=pos.location((kpi_id,), key=True),
                hint=did_you_mean(kpi_id, project.kpis, "KPIs"),
            )
        out[kpi_id] = [str(i) for i in (items if isinstance(items, list) else [items])]
    return out


class _progress:
    """A rich progress bar on a terminal; silence when stderr is not one (CI, pipes)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if sys.stderr.isatty():
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"report of {self.total} KPIs", total=2)
        return self.step

    def step(self, what: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=what)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
