"""What a connector plugin implements, and the request the engine hands it for each source."""

from __future__ import annotations

import datetime as dt
import glob
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from .errors import Diagnostic, KpiError
from .spec import SourceSpec


@dataclass(frozen=True)
class ScanRequest:
    """What the plan needs from one source: these columns, rows with ``start <= time < end`` (UTC instants).

    A connector may push both down (a SQL connector does); the engine applies them again, so ignoring them is
    always correct, only slower.
    """

    columns: tuple[str, ...]
    time_column: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass
class Env:
    """Run-time context shared by connectors: in-memory frames for the Python API and path policy."""

    frames: Mapping[str, pl.DataFrame | pl.LazyFrame] = field(default_factory=dict)
    allow_outside: bool = False


class Connector:
    """Base class of data connectors. Subclasses set ``name`` and ``options_schema`` and implement both methods."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: JSON Schema fragment for the connector's own options: {"properties": {...}, "required": [...]}
    options_schema: ClassVar[dict[str, Any]] = {"properties": {}, "required": []}

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        """Column names and types of the source, read without reading the data (metadata or a sample)."""
        raise NotImplementedError

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        """A lazy frame of the source's rows; it should at least hold ``request.columns``."""
        raise NotImplementedError

    def explain_error(self, source: SourceSpec, env: Env, exc: BaseException) -> KpiError:
        """The error shown when reading the source failed: override to name the file, line or column at fault.

        Called on the error path only, so it may re-read the data.
        """
        return data_error(source, exc)


def source_path(source: SourceSpec, env: Env, key: str = "path", allow_dir: bool = False) -> str:
    """The source's ``path`` option resolved against its spec file's folder, checked to exist.

    Glob patterns (``data/*.parquet``) must match at least one file.
    """
    raw = str(source.options[key])
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = source.base_dir / path
    loc = source.loc(key)
    if not env.allow_outside and not _inside(path, source.base_dir):
        raise KpiError(
            Diagnostic(
                f"path `{raw}` of source `{source.name}` is outside the spec folder",
                loc,
                hint="move the data below the spec folder, or pass --allow-outside",
            )
        )
    if glob.has_magic(str(path)):
        if not glob.glob(str(path), recursive=True):
            raise KpiError(
                Diagnostic(
                    f"no file matches `{raw}` for source `{source.name}`",
                    loc,
                    hint=f"paths are relative to {source.base_dir}",
                )
            )
        return str(path)
    if not path.exists():
        siblings = sorted(p.name for p in path.parent.glob("*")) if path.parent.is_dir() else []
        from .errors import did_you_mean

        hint = did_you_mean(path.name, siblings) or f"paths are relative to the spec file's folder ({source.base_dir})"
        raise KpiError(Diagnostic(f"data file `{raw}` of source `{source.name}` does not exist", loc, hint=hint))
    if path.is_dir() and not allow_dir:
        raise KpiError(
            Diagnostic(
                f"`{raw}` of source `{source.name}` is a directory, not a file",
                loc,
                hint="name a file, or a glob such as data/*.csv",
            )
        )
    return str(path)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def data_error(source: SourceSpec, exc: BaseException, what: str = "cannot read") -> KpiError:
    """A one-screen error for a data problem found while reading a source (never a traceback)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    hint = None
    low = first.lower()
    if "could not parse" in low or "conversion" in low:
        hint = "check the column's values, or declare its type in the source's `dtypes`"
    elif "found more fields" in low or "expected" in low and "fields" in low:
        hint = "a row has a different number of fields than the header"
    elif "parquet" in low or "magic" in low or "eof" in low:
        hint = "the file looks truncated or is not Parquet; regenerate or re-export it"
    return KpiError(Diagnostic(f"{what} source `{source.name}`: {first}", source.loc(), hint=hint))
