"""Writing results: the stable JSON shape, long CSV/Parquet tables, and terminal tables; always atomically."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import glob
import io
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

from .api import Result
from .errors import Diagnostic, KpiError, Location
from .frame import by_dimension, totals
from .jsonout import json_text
from .model import KpiSpec, Unit
from .series import QUALITATIVE, SERIES_COLUMNS
from .units import format_value


def _failpoint(name: str) -> None:
    """Testing aid: KPI_ENGINE_FAILPOINT=name:seconds pauses here, so a test can kill the run mid-write."""
    spec = os.environ.get("KPI_ENGINE_FAILPOINT", "")
    if spec.startswith(name + ":"):
        import time

        time.sleep(float(spec.split(":", 1)[1]))


def cache_dir() -> Path:
    """Where the engine keeps what it can rebuild (the demo's generated data, the chart runtime):
    ``$KPI_ENGINE_CACHE``, by default ``~/.cache/kpi-engine``."""
    return Path(os.environ.get("KPI_ENGINE_CACHE") or Path.home() / ".cache" / "kpi-engine")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temp file in the same folder, then rename: a killed run never leaves half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc.errno, exc.strerror or str(exc)) from None
    try:
        write(Path(tmp))
        _failpoint("output.replace")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs get the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(path, exc.errno, exc.strerror or str(exc)) from None
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_cause(exc)  # writers in compiled code (polars' Parquet) wrap the OS error
        if cause is None:
            raise
        raise write_error(path, cause, os.strerror(cause)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sweep_temporaries(path: Path) -> list[Path]:
    """Remove temporary files of ``path`` left by writers that died (SIGKILL, power loss) before renaming.

    A temporary file names its writer's process id; one whose process is gone is stale. A live writer's file
    (another run writing the same output right now) is left alone.
    """
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # exists but is another user's
    return True


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def write_error(path: Path, code: int | None, reason: str) -> KpiError:
    """A failed output write: what the system said and, for a full disk, that the previous file is unchanged."""
    hint = (
        "the disk is full (or a quota or file size limit applies): free some space or write elsewhere; "
        "the previous file, if any, is unchanged"
        if code in _FULL
        else "check the folder exists and is writable; the previous file, if any, is unchanged"
    )
    return KpiError(Diagnostic(f"cannot write {path}: {reason}", Location(str(path)), hint=hint))


def _os_cause(exc: BaseException) -> int | None:
    """The errno of an OS write error wrapped in another library's exception (matched on its message)."""
    text = str(exc).lower()
    for code in (*_FULL, errno.EACCES, errno.EROFS):
        if os.strerror(code).lower() in text:
            return code
    return None


def _number(value: float | None, unit: Unit) -> float | int | None:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return None
    if unit is Unit.COUNT and float(value).is_integer():
        return int(value)
    return value


def target_json(spec: KpiSpec) -> dict[str, Any] | None:
    """A KPI's target block as written, with dates as ISO strings."""
    t = spec.target
    if t is None:
        return None
    out: dict[str, Any] = {}
    for f in dataclasses.fields(t):
        value = getattr(t, f.name)
        if value in (None, (), {}) or (f.name == "baseline_auto" and not value):
            continue
        if f.name == "path":
            value = [{"date": d.isoformat(), "value": v} for d, v in value]
        elif f.name == "revisions":
            value = [{"from": r.start.isoformat(), "value": r.value, "reason": r.reason} for r in value]
        elif f.name == "baseline_period":
            value = {"start": value[0].isoformat(), "end": value[1].isoformat()}
        elif isinstance(value, dt.date):
            value = value.isoformat()
        out[f.name] = value
    return out


def cohort_json(result: Result, kpi_id: str) -> dict[str, Any]:
    """A KPI's cohort matrix: per cohort period (total rows), its value 1, 2, ... periods later."""
    columns = result.cohorts[kpi_id]
    offsets = sorted(columns)
    unit = result.project.kpis[kpi_id].unit
    values: dict[str, dict[int, Any]] = {}
    starts: dict[str, str] = {}
    for k in offsets:
        for row in columns[k].filter(pl.col("is_total")).iter_rows(named=True):
            values.setdefault(row["period"], {})[k] = _number(row["value"], unit)
            starts[row["period"]] = row["start"].isoformat()
    rows = [{"period": p, "start": starts[p], "values": [values[p].get(k) for k in offsets]} for p in values]
    return {"periods_ahead": offsets, "rows": rows}


def to_json_dict(
    result: Result,
    engine_version: str = "",
    assessments: Mapping[str, Any] | None = None,
    smart: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The documented JSON shape of `kpi run --format json`."""
    from .targets import assessments_json

    kpis = []
    for kpi_id, frame in result.series.items():
        spec = result.project.kpis[kpi_id]
        series = []
        for row in frame.iter_rows(named=True):
            dims = {} if row["is_total"] else {d: row[d] for d in spec.dimensions}
            series.append(
                {
                    "period": row["period"],
                    "start": row["start"].isoformat(),
                    "end": row["end"].isoformat(),
                    "complete": row["complete"],
                    "has_data": row["has_data"],
                    "coverage": round(row["coverage"], 4),
                    **{c: row[c] for c in ("sample_size", "ci_low", "ci_high") if c in row},
                    "dims": dims,
                    "value": _number(row["value"], spec.shown),
                }
            )
        kpis.append(
            {
                "id": kpi_id,
                "name": spec.name,
                "description": spec.description,
                "owner": spec.owner,
                "unit": spec.unit.value,
                **({"currency": spec.money.code} if spec.money else {}),
                "grain": "all_time" if result.all_time else spec.grain.value,
                "dimensions": list(spec.dimensions),
                "formula": spec.formula.strip(),
                "key": spec.key,
                "target": target_json(spec),
                "status": assessments_json(assessments[kpi_id]) if assessments and kpi_id in assessments else None,
                "smart": (smart or {}).get(kpi_id),
                "series": series,
                **({"cohort": cohort_json(result, kpi_id)} if kpi_id in result.cohorts else {}),
                **({"moved": moved_json(result, spec)} if spec.dimensions and not result.all_time else {}),
            }
        )
    return {
        "as_of": result.as_of.isoformat(),
        "timezone": result.project.calendar.timezone,
        "engine_version": engine_version,
        "spec_hash": result.project.spec_hash,
        "sources": {name: (d.isoformat() if d else None) for name, d in result.freshness.items()},
        "errors": result.errors(),
        "warnings": result.warnings,
        "kpis": kpis,
    }


def moved_json(result: Result, spec: KpiSpec) -> dict[str, list[dict[str, Any]]]:
    """Why the latest complete period moved, against the previous period and a year earlier, per dimension."""
    from .moved import latest

    return {against: [m.as_json() for m in found] for against, found in latest(result, spec).items()}


def long_frame(result: Result, text_values: bool = False) -> pl.DataFrame:
    """All KPIs in one long table: kpi, period, start, end, complete, has_data, is_total, dims..., value.

    Integer KPIs (counts, integer sums) stay exact: ``value`` is Int64 when every KPI is an integer; else it
    is Float64 and ``value_int`` holds the integer KPIs' exact values, or, with ``text_values`` (CSV),
    ``value`` is text in which integers print as integers.
    """
    parts = [
        frame.with_columns(pl.lit(kpi_id).alias("kpi"), pl.lit(result.project.kpis[kpi_id].unit.value).alias("unit"))
        for kpi_id, frame in result.series.items()
    ]
    integer = [p.schema["value"].is_integer() for p in parts]
    mixed = any(integer) and not all(integer)
    if text_values:
        parts = [p.with_columns(pl.col("value").cast(pl.String)) for p in parts]
    elif mixed:
        parts = [
            p.with_columns(pl.col("value").alias("value_int") if i else pl.lit(None, pl.Int64).alias("value_int"))
            for p, i in zip(parts, integer, strict=True)
        ]
    frame = pl.concat(parts, how="diagonal_relaxed")
    fixed = ("kpi", "unit", *SERIES_COLUMNS)
    extra = [c for c in QUALITATIVE if c in frame.columns]
    values = ["value", "value_int"] if mixed and not text_values else ["value"]
    dims = sorted(set(frame.columns) - {*fixed, *extra, *values})
    return frame.select(*fixed, *dims, *extra, *values)


def write_result(
    result: Result,
    fmt: str,
    output: Path | None,
    engine_version: str = "",
    console_width: int | None = None,
    last_periods: int | None = None,
    assessments: Mapping[str, Any] | None = None,
    smart: Mapping[str, Any] | None = None,
) -> str | None:
    """Write ``result`` as ``fmt`` to ``output`` (atomically) or return the text for stdout."""
    if fmt == "json":
        doc = to_json_dict(result, engine_version, assessments, smart)
        text = json_text(doc, default=_default) + "\n"
    elif fmt == "csv":
        text = long_frame(result, text_values=True).write_csv()
    elif fmt == "parquet":
        if output is None:
            raise KpiError(Diagnostic("parquet output needs a file", hint="add -o results.parquet"))
        buffer = io.BytesIO()  # written by Python, not polars: a full disk then surfaces as an OSError
        long_frame(result).write_parquet(buffer)
        atomic_write(output, lambda p: p.write_bytes(buffer.getvalue()))
        return None
    else:
        text = render_table(result, console_width, last_periods, assessments)
    if output is None:
        return text
    atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
    return None


def _default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def render_table(
    result: Result,
    width: int | None = None,
    last_periods: int | None = None,
    assessments: Mapping[str, Any] | None = None,
) -> str:
    """Terminal tables, one per KPI: periods down, dimension values across, total last.

    With ``last_periods``, only the latest periods are shown and a line says how many were left out.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(width=width or 120, record=True, force_terminal=False, color_system=None, file=io.StringIO())
    for kpi_id, frame in result.series.items():
        spec = result.project.kpis[kpi_id]
        heading = spec.name if spec.name == kpi_id else f"{spec.name} ({kpi_id})"
        grain = "all time" if result.all_time else f"per {spec.grain.value}"
        console.print(f"{heading} · {spec.money.code if spec.money else spec.unit.value} · {grain}", markup=False)
        for a in (assessments or {}).get(kpi_id, []):
            prefix = ", ".join(f"{k}={v}" for k, v in a.dims.items())
            console.print(f"  {prefix + ': ' if prefix else ''}{a.why}", markup=False)
        starts = frame["start"].unique().sort()
        if last_periods and len(starts) > last_periods:
            hidden = len(starts) - last_periods
            frame = frame.filter(pl.col("start") >= starts[hidden])
            console.print(f"({hidden} earlier periods not shown: use --from, --periods or --format json)", markup=False)
        table = Table()
        table.add_column("period")
        if spec.dimensions:
            labels = by_dimension(frame).select(spec.dimensions).unique().sort(spec.dimensions, nulls_last=True)
            keys = [tuple(r) for r in labels.iter_rows()]
            if len(keys) > WIDE:
                wide, note = _values_down(frame, spec, keys)
                console.print(wide)
                if note:
                    console.print(note, markup=False)
                console.print()
                continue
            for key in keys:
                table.add_column(" / ".join("∅" if v is None else str(v) for v in key), justify="right")
            table.add_column("total", justify="right", style="bold")
        else:
            keys = []
            table.add_column("value", justify="right")
        for (period,), rows in frame.group_by(["period"], maintain_order=True):
            by_key = {tuple(r[d] for d in spec.dimensions): r for r in by_dimension(rows).iter_rows(named=True)}
            total = totals(rows).row(0, named=True)
            mark = "" if total["complete"] else " (partial)"
            if not total["has_data"]:
                mark += " (no data)"
            cells = [format_value(by_key[k]["value"], spec.shown) if k in by_key else "" for k in keys]
            table.add_row(f"{period}{mark}", *cells, format_value(total["value"], spec.shown))
        console.print(table)
        console.print()
    return console.export_text()


WIDE = 8  # more dimension values than this: they go down the rows and the periods across
WIDE_ROWS, WIDE_PERIODS = 20, 6


def _values_down(frame: pl.DataFrame, spec: Any, keys: list[tuple]) -> tuple[Any, str]:
    """Many dimension values: one row per value (the largest in the latest period first, at most 20), the
    latest 6 periods across, then the total; what is left out is counted, never squeezed into ``…``."""
    from rich.table import Table

    starts = frame["start"].unique().sort()[-WIDE_PERIODS:]
    shown = frame.filter(pl.col("start").is_in(starts.to_list()))
    heads = totals(shown).sort("start")
    notes = [f"the latest {WIDE_PERIODS} periods"] if len(frame["start"].unique()) > WIDE_PERIODS else []
    if len(keys) > WIDE_ROWS:
        notes.append(f"the {WIDE_ROWS} largest of {len(keys)} values; --format json or csv lists them all")
    table = Table()
    table.add_column(" / ".join(spec.dimensions))
    for row in heads.iter_rows(named=True):
        table.add_column(row["period"] + ("" if row["complete"] else " (partial)"), justify="right")
    cells: dict[tuple, dict] = {}
    for r in by_dimension(shown).iter_rows(named=True):
        cells.setdefault(tuple(r[d] for d in spec.dimensions), {})[r["start"]] = r["value"]
    latest = heads["start"][-1] if heads.height else None
    order = sorted(keys, key=lambda k: (cells.get(k, {}).get(latest) is None, -(cells.get(k, {}).get(latest) or 0)))
    for key in order[:WIDE_ROWS]:
        label = " / ".join("∅" if v is None else str(v) for v in key)
        table.add_row(label, *[format_value(cells.get(key, {}).get(s), spec.shown) for s in heads["start"]])
    table.add_row("total", *[format_value(v, spec.shown) for v in heads["value"]], style="bold")
    return table, f"({'; '.join(notes)})" if notes else ""
