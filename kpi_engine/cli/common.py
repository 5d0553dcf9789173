"""What every kpi command shares: the `main` group, options, exit codes, error handling and the review run.

Commands live in the sibling modules and import from here; ``cli/__init__`` imports them all to register
them on ``main``. Nothing here imports a command module, so the CLI has no import cycle.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..spec_dates import out_of_range

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input prints its diagnostics and exits 2; a bug prints one line and exits 1 (traceback with KPI_DEBUG=1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import KpiError

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
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"`{value}` is not a date; expected YYYY-MM-DD, e.g. 2026-06-30") from None
    problem = out_of_range(day)
    if problem:
        raise click.BadParameter(problem)
    return day


_PATH = click.argument("path", type=click.Path(path_type=Path))


def _ALLOW_OUTSIDE(command: Callable[..., Any]) -> Callable[..., Any]:  # noqa: N802 - used like the options
    """``--data DIR`` (repeatable) and ``--allow-outside``: where data may be read from, given to the command as
    ``access`` (keyword arguments for ``kpi_engine.load``)."""

    @functools.wraps(command)
    def wrapper(*args: Any, data_dirs: tuple[Path, ...], allow_outside: bool, **kwargs: Any) -> Any:
        return command(*args, access={"allow_outside": allow_outside, "data_dirs": data_dirs}, **kwargs)

    wrapper = click.option("--allow-outside", is_flag=True, help="Read data from anywhere (trust the spec like code).")(
        wrapper
    )
    return click.option(
        "--data",
        "data_dirs",
        multiple=True,
        type=click.Path(path_type=Path, file_okay=False, exists=True),
        help="A folder data may also be read from (repeatable), besides the spec folder and its data_root.",
    )(wrapper)


_HISTORY = click.option(
    "--history",
    "history_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="History store (default: .kpi/history.sqlite in the spec folder).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kpi-engine", prog_name="kpi")
def main() -> None:
    """kpi-engine: define marketing KPIs once in YAML, compute them right, review them on time."""


def _exit_on_plugin_errors(result) -> None:  # type: ignore[no-untyped-def]
    """Warnings about the data, one line each; then a plugin that failed is reported by name after the
    partial result, and the exit code is 1."""
    for line in result.warnings:
        click.echo(f"warning: {line}", err=True)
    errors = result.errors()
    if errors:
        click.echo("errors (partial result):", err=True)
        for line in errors:
            click.echo(f"  {line}", err=True)
        sys.exit(EXIT_INTERNAL)


def _default_history(path: Path) -> Path:
    from .. import history

    return history.default_path(path)


def _record(store: Path, result, assessments) -> None:  # type: ignore[no-untyped-def]
    """Append the review snapshot of ``result`` to the history store and say so."""
    from .. import __version__, history

    rows = _snapshot_rows(result, assessments)
    snapshot = history.record(store, result.as_of, result.project.spec_hash, __version__, rows)
    click.echo(f"recorded review snapshot {snapshot} ({len(rows)} KPIs) in {store}", err=True)


def _snapshot_rows(result, assessments) -> dict:  # type: ignore[no-untyped-def]
    """One history row per KPI: the assessed value and status when it has a target, else its latest value."""
    from ..frame import complete_totals
    from ..history import SnapshotRow
    from ..output import target_json

    rows = {}
    for kpi_id, frame in result.series.items():
        spec = result.project.kpis[kpi_id]
        a = assessments.get(kpi_id, [None])[0]
        if a is not None:
            rows[kpi_id] = SnapshotRow(
                period=a.period,
                value=a.value,
                target=a.target,
                expected=a.expected,
                status=a.status,
                why=a.why,
                forecast=a.forecast.value if a.forecast else None,
                target_spec=target_json(spec),
            )
            continue
        done = complete_totals(frame)
        last = done.row(-1, named=True) if done.height else None
        rows[kpi_id] = SnapshotRow(period=last["period"] if last else None, value=last["value"] if last else None)
    return rows


def _evaluate_with_targets(catalog, as_of, **kwargs):  # type: ignore[no-untyped-def]
    """``targets.evaluate_with_targets``, imported when a command runs (start-up stays light)."""
    from ..targets import evaluate_with_targets

    return evaluate_with_targets(catalog, as_of, **kwargs)
