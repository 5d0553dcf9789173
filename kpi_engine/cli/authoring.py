"""Authoring commands: kpi test, docs and init."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import _ALLOW_OUTSIDE, _PATH, EXIT_BAD_INPUT, _handle_errors, main


@main.command("test")
@_PATH
@click.option(
    "--tests",
    "tests_path",
    type=click.Path(path_type=Path, exists=True),
    help="Test files or a folder of them (default: the *.test.yaml files below PATH).",
)
@_ALLOW_OUTSIDE
@_handle_errors
def test_command(path: Path, tests_path: Path | None, access: dict) -> None:
    """Run the KPI fixture tests (*.test.yaml) beside the specs; exit 1 on any failure.

    Tests read only the rows they give, never the sources' data: --data and --allow-outside are accepted
    so that the same options work for run, test and report.
    """
    from ..testing import run_tests

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
    from ..docs import render
    from ..output import atomic_write
    from ..plugins import default_registry
    from ..spec import load_project

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
    from ..api import today
    from ..plugins import default_registry
    from ..scaffold import init
    from ..spec import full_schema

    written = init(folder, today("UTC"), full_schema(default_registry().connector_schemas()), force)
    for path in written:
        click.echo(f"created {path}")
    click.echo(f"next: kpi validate {folder} && kpi run {folder} && kpi test {folder}", err=True)
