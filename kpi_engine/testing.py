"""`kpi test`: fixture tests that spec authors keep beside their specs.

A ``*.test.yaml`` file gives a few rows per source and the values expected for named periods; the KPIs are
evaluated on those rows only (no real data is read), so a formula change can be reviewed like code.

    tests:
      ctr_is_clicks_over_impressions:
        as_of: 2026-04-30
        given:
          ads:
            - {ts: 2026-04-01T10:00:00, channel: search, impressions: 1000, clicks: 20}
        expect:
          ctr:
            - {period: 2026-W14, value: 2.0}                                  # the total row
            - {period: 2026-W14, dims: {channel: search}, value: 2.0}
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .errors import Diagnostic, ErrorCollector, KpiError, Location, did_you_mean
from .frame import by_dimension, totals
from .model import Project, SourceSpec
from .plugins import Registry, default_registry
from .schema import schema_errors
from .spec import load_project
from .yaml_loader import Positions, load_yaml

TEST_SUFFIXES = (".test.yaml", ".test.yml")
TEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tests"],
    "properties": {"tests": {"type": "object", "additionalProperties": {"$ref": "#/$defs/test"}}},
    "$defs": {
        "test": {
            "type": "object",
            "additionalProperties": False,
            "required": ["given", "expect"],
            "properties": {
                "description": {"type": "string"},
                "as_of": {"type": "string", "format": "date"},
                "given": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                },
                "expect": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/row"}},
                },
                "tolerance": {"type": "number", "minimum": 0},
            },
        },
        "row": {
            "type": "object",
            "additionalProperties": False,
            "required": ["period", "value"],
            "properties": {
                "period": {"type": "string"},
                "dims": {"type": "object"},
                "value": {"type": ["number", "null"]},
                "has_data": {"type": "boolean"},
            },
        },
    },
}


@dataclass
class Outcome:
    file: Path
    name: str
    failures: list[str] = field(default_factory=list)
    location: Location | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def test_files(path: Path) -> list[Path]:
    """The ``*.test.yaml`` files at ``path`` (a file or a folder searched recursively)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.name.endswith(TEST_SUFFIXES))


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows as a frame; text columns whose every value is an ISO date or timestamp become dates or timestamps."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    frame = pl.DataFrame([{c: row.get(c) for c in columns} for row in rows], infer_schema_length=None)
    parsed = []
    for name, dtype in frame.schema.items():
        text = frame[name]
        if dtype != pl.String or text.null_count() == len(text):
            continue
        for parse in (lambda t: t.str.to_datetime(strict=False, time_unit="us"), lambda t: t.str.to_date(strict=False)):
            try:
                attempt = parse(text)
            except pl.exceptions.PolarsError:  # no date format fits the first values: plain text
                continue
            if attempt.null_count() == text.null_count():
                parsed.append(attempt.alias(name))
                break
    return frame.with_columns(parsed) if parsed else frame


def run_test(
    project: Project, registry: Registry, file: Path, name: str, body: dict[str, Any], pos: Positions
) -> Outcome:
    """Evaluate one test's KPIs on its given rows and compare with what it expects."""
    from .api import Catalog
    from .connectors import Env
    from .resolve import Binder

    outcome = Outcome(file, name, location=pos.location(("tests", name), key=True))
    wanted = list(body["expect"])
    unknown = [k for k in wanted if k not in project.kpis]
    if unknown:
        raise KpiError(
            Diagnostic(
                f"test `{name}` expects unknown KPI `{unknown[0]}`",
                pos.location(("tests", name, "expect", unknown[0]), key=True),
                hint=did_you_mean(unknown[0], project.kpis, "KPIs"),
            )
        )
    reads = Binder(project, {}, registry.functions)  # no schemas: binds names only, to learn which sources
    needed = set().union(*(b.sources for k in wanted if (b := reads.bind(k)) is not None))
    missing = sorted(needed - set(body["given"]))
    if missing:
        raise KpiError(
            Diagnostic(
                f"test `{name}` gives no rows for source `{missing[0]}`, which its KPIs read",
                pos.location(("tests", name, "given")),
                hint=f"add `{missing[0]}:` with a few rows under `given:`",
            )
        )
    frames, sources = {}, dict(project.sources)
    for source_name, rows in body["given"].items():
        if source_name not in project.sources:
            raise KpiError(
                Diagnostic(
                    f"test `{name}` gives rows for unknown source `{source_name}`",
                    pos.location(("tests", name, "given", source_name), key=True),
                    hint=did_you_mean(source_name, project.sources, "sources"),
                )
            )
        spec: SourceSpec = project.sources[source_name]
        frames[source_name] = _frame(rows)
        sources[source_name] = dataclasses.replace(spec, connector="dataframe", options={})
    test_project = dataclasses.replace(project, sources=sources)
    env = Env(frames)
    schemas = {s: frames[s].schema for s in frames}
    binder = Binder(test_project, schemas, registry.functions)
    bound = {k: binder.bind(k) for k in wanted}
    if binder.errors:
        raise KpiError(binder.errors.diagnostics)
    catalog = Catalog(test_project, registry, env, schemas, {k: v for k, v in bound.items() if v is not None})
    as_of = (
        dt.date.fromisoformat(body["as_of"])
        if "as_of" in body
        else max(f[project.sources[s].time].max() for s, f in frames.items()).date()
    )  # type: ignore[union-attr]
    result = catalog.evaluate(as_of, kpis=wanted)
    tolerance = float(body.get("tolerance", 1e-9))
    for kpi_id, rows in body["expect"].items():
        frame = result[kpi_id]
        for row in rows:
            outcome.failures += _compare(kpi_id, frame, row, tolerance)
    return outcome


def _compare(kpi_id: str, frame: pl.DataFrame, row: dict[str, Any], tolerance: float) -> list[str]:
    dims = row.get("dims") or {}
    where = f"{kpi_id} {row['period']}" + "".join(f" [{k}={v}]" for k, v in dims.items())
    match = frame.filter(pl.col("period") == row["period"])
    match = by_dimension(match) if dims else totals(match)
    for k, v in dims.items():
        if k not in frame.columns:
            return [f"{where}: `{k}` is not a dimension of {kpi_id}"]
        match = match.filter(pl.col(k) == v)
    if not match.height:
        periods = ", ".join(dict.fromkeys(frame["period"].to_list())) or "none"
        return [f"{where}: expected {row['value']}, but there is no such row (periods: {periods})"]
    got = match.row(0, named=True)
    out = []
    want = row["value"]
    value = got["value"]
    if (want is None) != (value is None) or (
        want is not None and not math.isclose(value, want, rel_tol=tolerance, abs_tol=tolerance)
    ):
        out.append(f"{where}: expected {want}, got {value}")
    if "has_data" in row and row["has_data"] != got["has_data"]:
        out.append(f"{where}: expected has_data {row['has_data']}, got {got['has_data']}")
    return out


def run_tests(spec_path: Path, test_path: Path | None = None, registry: Registry | None = None) -> list[Outcome]:
    """Run every test file below ``test_path`` (default: the spec folder) against the specs at ``spec_path``."""
    registry = registry or default_registry()
    project = load_project(spec_path, registry.connector_schemas())
    files = test_files(test_path or spec_path)
    errors = ErrorCollector()
    outcomes = []
    for file in files:
        try:
            data, pos = load_yaml(file.read_text("utf-8"), str(file))
        except KpiError as exc:
            errors.extend(exc.diagnostics)
            continue
        problems = (
            schema_errors(data, TEST_SCHEMA, pos)
            if data is not None
            else [Diagnostic("test file is empty", Location(str(file), 1, 1))]
        )
        if problems:
            errors.extend(problems)
            continue
        for name, body in data["tests"].items():
            try:
                outcomes.append(run_test(project, registry, file, name, body, pos))
            except KpiError as exc:
                errors.extend(exc.diagnostics)
    errors.raise_if_any()
    return outcomes
