"""kpi inspect: how the engine would read a data file, and a source block ready to paste into a spec."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from .common import _handle_errors, main


@main.command("inspect")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--name", help="The source's name in the printed block (default: from the file name).")
@_handle_errors
def inspect_command(file: Path, name: str | None) -> None:
    """Sniff a data FILE: the columns and types the engine reads from it with the options it guessed
    (separator, decimal comma, null markers, date format...), then a `sources:` block to paste.

    Dates that read both day-first and month-first are refused with the reason, never guessed.
    """
    from ..connectors import Env
    from ..errors import Diagnostic, KpiError, Location
    from ..model import SourceSpec
    from ..plugins import default_registry

    registry = default_registry()
    found = next(((c, r) for c in registry.connectors.values() if (r := c.sniff(file)) is not None), None)
    if found is None:
        kinds = ", ".join(sorted(registry.connectors))
        raise KpiError(
            Diagnostic(f"no connector reads `{file.name}`", Location(str(file)), hint=f"connectors: {kinds}")
        )
    connector, sniffed = found
    time = sniffed["time"]
    name = name or (re.sub(r"[^0-9a-z]+", "_", file.stem.lower()).strip("_") or "data")
    if not name[0].isalpha():
        name = f"s_{name}"
    options: dict[str, Any] = {"path": file.name, **sniffed["options"]}
    source = SourceSpec(name, connector.name, time or "", options, file.parent.resolve(), {"": Location(str(file))})
    schema = connector.schema(source, Env())

    click.echo(f"{file}: read by connector `{connector.name}`")
    for key, value in sniffed["options"].items():
        click.echo(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    width = max(len(c) for c in schema) if schema else 0
    click.echo("columns:")
    for column, kind in _type_words(schema):
        mark = "  <- time" if column == time else ""
        click.echo(f"  {column.ljust(width)}  {kind}{mark}")
    click.echo("\nsources:")
    click.echo(f"  {name}:")
    block = {"connector": connector.name, "path": str(file), "time": time, **sniffed["options"]}
    for key, value in block.items():
        if value is None:
            click.echo(f"    # {key}: which column places each row in a period?")
        else:
            click.echo(f"    {key}: {json.dumps(value, ensure_ascii=False)}")


def _type_words(schema: Any) -> list[tuple[str, str]]:
    """Column names with the formula language's words for their types."""
    from ..ir import kind_of

    words = {"num": "number", "str": "text", "bool": "true/false", "date": "date", "datetime": "timestamp"}
    return [(name, words.get(kind_of(dtype), str(dtype))) for name, dtype in schema.items()]
