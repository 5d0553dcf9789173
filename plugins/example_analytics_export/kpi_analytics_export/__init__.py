"""Connector `analytics_export`: a folder of daily CSV exports, one file per day, dated by its file name.

Web-analytics tools often export one file per day (``analytics_2026-04-01.csv``) with no date column
inside. This connector reads them all lazily and adds a ``date`` column parsed from each file name, so a
spec can say ``time: date``::

    sources:
      web: {connector: analytics_export, folder: exports/, time: date}
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

import kpi_engine
from kpi_engine import Connector, Diagnostic, Env, KpiError, ScanRequest, SourceSpec, data_error, source_path

DATE = r"(\d{4}-\d{2}-\d{2})"


class AnalyticsExport(Connector):
    name = "analytics_export"
    description = "Folder of daily analytics CSV exports; the date comes from each file name."
    options_schema = {
        "properties": {
            "folder": {"type": "string", "description": "Folder of exports, relative to the spec file."},
            "pattern": {"type": "string", "description": "File name glob (default analytics_*.csv)."},
        },
        "required": ["folder"],
    }

    def _files(self, source: SourceSpec, env: Env) -> str:
        folder = Path(source_path(source, env, key="folder", allow_dir=True))
        pattern = source.options.get("pattern", "analytics_*.csv")
        if not any(folder.glob(pattern)):
            raise KpiError(
                Diagnostic(
                    f"no file matches `{pattern}` in {folder}",
                    source.loc("folder"),
                    hint="export files are named like analytics_2026-04-01.csv",
                )
            )
        return str(folder / pattern)

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        frame = pl.scan_csv(self._files(source, env), include_file_paths="__file", infer_schema_length=10_000)
        return frame.with_columns(pl.col("__file").str.extract(DATE, 1).str.to_date("%Y-%m-%d").alias("date")).drop(
            "__file"
        )

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        try:
            return self._lazy(source, env).collect_schema()
        except pl.exceptions.PolarsError as exc:
            raise data_error(source, exc) from None

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        return self._lazy(source, env)


@kpi_engine.hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    register(AnalyticsExport())
