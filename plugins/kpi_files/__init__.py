"""First-party connectors for files: CSV, Parquet and NDJSON, read lazily by polars."""

from __future__ import annotations

from typing import Any

import polars as pl

from kpi_engine import hookimpl
from kpi_engine.connectors import Connector, Env, ScanRequest, data_error, source_path
from kpi_engine.errors import Diagnostic, KpiError
from kpi_engine.spec import SourceSpec

from . import diagnose

_PATH = {"type": "string", "description": "File, directory or glob, relative to the spec file."}
_DTYPES = {
    "type": "object",
    "description": "Column types to use instead of inferring them (int, float, str, bool, date, datetime).",
    "additionalProperties": {"enum": ["int", "float", "str", "bool", "date", "datetime"]},
}
_POLARS_TYPES: dict[str, Any] = {
    "int": pl.Int64,
    "float": pl.Float64,
    "str": pl.String,
    "bool": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
}


def _overrides(source: SourceSpec) -> dict[str, Any] | None:
    dtypes = source.options.get("dtypes")
    return {k: _POLARS_TYPES[v] for k, v in dtypes.items()} if dtypes else None


class _FileConnector(Connector):
    allow_dir = False

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        raise NotImplementedError

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        try:
            return self._lazy(source, env).collect_schema()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise data_error(source, exc) from None

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        return self._lazy(source, env)


class CsvConnector(_FileConnector):
    name = "csv"
    description = "Comma-separated (or other delimiter) text files, with a header row."
    options_schema = {
        "properties": {
            "path": _PATH,
            "separator": {"type": "string", "minLength": 1, "maxLength": 1},
            "null_values": {"type": "array", "items": {"type": "string"}},
            "dtypes": _DTYPES,
            "encoding": {"enum": ["utf8", "utf8-lossy"]},
        },
        "required": ["path"],
    }

    def _options(self, source: SourceSpec) -> dict[str, Any]:
        opts = source.options
        return {
            "separator": opts.get("separator", ","),
            "null_values": opts.get("null_values"),
            "schema_overrides": _overrides(source),
            "try_parse_dates": True,
            "infer_schema_length": 10_000,
            "encoding": opts.get("encoding", "utf8"),
        }

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        return pl.scan_csv(source_path(source, env), **self._options(source))

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        """Column types come from the data: a file with a header and no rows must declare them in ``dtypes``."""
        schema = super().schema(source, env)
        undeclared = [c for c in schema if c not in (source.options.get("dtypes") or {})]
        try:
            empty = (
                bool(undeclared)
                and pl.scan_csv(source_path(source, env), **self._options(source)).head(1).collect().is_empty()
            )
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise self.explain_error(source, env, exc) from None
        if empty:
            raise KpiError(
                Diagnostic(
                    f"data of source `{source.name}` has a header but no rows, so the types of "
                    f"{', '.join(f'`{c}`' for c in undeclared)} cannot be inferred",
                    source.loc("path"),
                    hint="declare them, e.g. dtypes: {"
                    + ", ".join(f"{c}: {'datetime' if c == source.time else 'int'}" for c in undeclared[:3])
                    + "}",
                )
            )
        return schema

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        """Every column is parsed: a lazy scan projected to a few columns would not notice ragged rows."""
        try:
            return pl.read_csv(source_path(source, env), **self._options(source)).lazy()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise self.explain_error(source, env, exc) from None

    def explain_error(self, source: SourceSpec, env: Env, exc: BaseException) -> KpiError:
        """Name the file and line: the first non-UTF-8 byte or the first row with a wrong number of fields."""
        files = diagnose.files_of(source_path(source, env))
        found = None
        if source.options.get("encoding", "utf8") == "utf8":
            found = diagnose.not_utf8(source, files)
        if found is None and "fields" in str(exc):
            found = diagnose.ragged_row(source, files, source.options.get("separator", ","))
        return found or data_error(source, exc)


class ParquetConnector(_FileConnector):
    name = "parquet"
    description = "Apache Parquet files or a folder/glob of them (a dataset)."
    options_schema = {"properties": {"path": _PATH, "hive_partitioning": {"type": "boolean"}}, "required": ["path"]}

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        return pl.scan_parquet(
            source_path(source, env, allow_dir=True), hive_partitioning=source.options.get("hive_partitioning")
        )

    def explain_error(self, source: SourceSpec, env: Env, exc: BaseException) -> KpiError:
        """Name the two files when a column's type changes between the files of a dataset."""
        files = diagnose.files_of(source_path(source, env, allow_dir=True), ".parquet")
        return (len(files) > 1 and diagnose.type_change(source, files)) or data_error(source, exc)


class NdjsonConnector(_FileConnector):
    name = "ndjson"
    description = "Newline-delimited JSON: one object per line (JSON Lines)."
    options_schema = {"properties": {"path": _PATH, "dtypes": _DTYPES}, "required": ["path"]}

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        return pl.scan_ndjson(source_path(source, env), infer_schema_length=10_000, schema_overrides=_overrides(source))


@hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    for connector in (CsvConnector(), ParquetConnector(), NdjsonConnector()):
        register(connector)
