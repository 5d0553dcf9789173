"""First-party `spark` connector: tables or Parquet files read through a SparkSession, for data that outgrows
one machine.

Spark aggregates the rows (pushdown): the engine compiles each group of the plan to Spark SQL and reads back
only the aggregates. What Spark cannot compute exactly as polars does is read as rows (projected, filtered to
the days). The session's master is ``master:`` on the source, else ``KPI_SPARK_MASTER``, else ``local[*]``;
a cluster URL (``spark://host:7077``) or Spark Connect (``sc://host:15002``) works the same. Needs
``pip install 'kpi-engine[spark]'`` and Java 17.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import polars as pl

from kpi_engine import (
    Connector,
    Database,
    Diagnostic,
    Env,
    KpiError,
    ScanRequest,
    SourceSpec,
    data_error,
    expand_env,
    hookimpl,
    redact,
    source_files,
)

_SESSIONS: dict[str, Any] = {}

#: Spark SQL types as polars reads them (timestamps with a zone are instants: UTC, the session's zone)
_TYPES = {
    "string": pl.String(),
    "bigint": pl.Int64(),
    "int": pl.Int32(),
    "smallint": pl.Int16(),
    "tinyint": pl.Int8(),
    "double": pl.Float64(),
    "float": pl.Float32(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "timestamp_ntz": pl.Datetime("us"),
    "timestamp": pl.Datetime("us", "UTC"),
}


def session(master: str) -> Any:
    """The process's SparkSession for ``master`` (made once): UTC session time zone, so that the engine's
    time-zone conversions are the only ones."""
    if master not in _SESSIONS:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise KpiError(
                Diagnostic("the spark connector needs pyspark", hint="pip install 'kpi-engine[spark]' (and Java 17)")
            ) from None
        builder = SparkSession.builder.appName("kpi-engine").config("spark.sql.session.timeZone", "UTC")
        if master.startswith("sc://"):
            builder = builder.remote(master)
        else:
            builder = builder.master(master).config("spark.ui.enabled", "false")
            builder = builder.config("spark.sql.shuffle.partitions", str(max(2, (os.cpu_count() or 2) * 2)))
        _SESSIONS[master] = builder.getOrCreate()
        if not master.startswith("sc://"):  # (Spark Connect has no local context)
            _SESSIONS[master].sparkContext.setLogLevel("ERROR")
    return _SESSIONS[master]


class SparkConnector(Connector):
    """Spark tables and Parquet files: aggregated by Spark SQL (``database``), or read as Arrow (``scan``)."""

    name = "spark"
    description = "A Spark table, or Parquet files read by Spark (local mode, a cluster, or Spark Connect)."
    options_schema = {
        "properties": {
            "table": {"type": "string", "description": "A table of the session's catalog (e.g. marketing.events)."},
            "path": {"type": "string", "description": "Parquet files, a glob or a folder, relative to the spec file."},
            "master": {
                "type": "string",
                "description": "local[*] (default, or $KPI_SPARK_MASTER), spark://host:7077, or sc://host:15002; "
                "${env:NAME} reads it from the environment",
            },
        },
        "required": [],
    }

    def _master(self, source: SourceSpec) -> str:
        raw = str(source.options.get("master") or os.environ.get("KPI_SPARK_MASTER") or "local[*]")
        return expand_env(raw, source, "master")

    def _frame(self, source: SourceSpec, env: Env) -> Any:
        """The source's rows as a Spark DataFrame."""
        opts = source.options
        if ("table" in opts) == ("path" in opts):
            raise KpiError(Diagnostic(f"source `{source.name}` needs exactly one of `table` or `path`", source.loc()))
        spark = session(self._master(source))
        try:
            if "table" in opts:
                return spark.table(str(opts["table"]))
            files = [str(f) for f in source_files(source, env, suffixes=(".parquet", ".pq"))]
            return spark.read.parquet(*files)
        except KpiError:
            raise
        except Exception as exc:
            raise data_error(source, exc) from None

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        """The Spark DataFrame's columns as polars types (nested types are left out: no formula reads them)."""
        frame = self._frame(source, env)
        columns = {}
        for name, spark_type in frame.dtypes:
            if spark_type not in _TYPES and not spark_type.startswith("decimal"):
                continue  # (arrays, maps, structs: not columns a formula can read)
            columns[name] = _TYPES.get(spark_type, pl.Float64())
        return pl.Schema(columns)

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        """The rows, projected and filtered to the days in Spark, brought into polars (Arrow)."""
        from pyspark.sql import functions as F

        frame = self._frame(source, env).select(*request.columns)
        time = F.col(f"`{request.time_column}`")
        day = dt.timedelta(days=1)
        if request.start is not None:
            frame = frame.where(time >= F.lit(_utc(request.start - day)))
        if request.end is not None:
            frame = frame.where(time < F.lit(_utc(request.end + day)))
        return _polars(frame.toArrow()).lazy()

    def database(self, source: SourceSpec, env: Env) -> Database | None:
        return _SparkDatabase(self, source, env)


class _SparkDatabase(Database):
    """Spark SQL over a temporary view of the source's rows."""

    dialect = "spark"

    def __init__(self, connector: SparkConnector, source: SourceSpec, env: Env) -> None:
        self.connector, self.source, self.env = connector, source, env
        self.view = f"kpi_{source.name}"

    def relation(self) -> Any:
        from sqlglot import exp

        self.connector._frame(self.source, self.env).createOrReplaceTempView(self.view)
        return exp.Table(this=exp.to_identifier(self.view, quoted=True))

    def fetch(self, sql: str, params: dict[str, Any]) -> pl.DataFrame:
        spark = session(self.connector._master(self.source))
        try:
            return _polars(spark.sql(sql, args=params or None).toArrow())
        except Exception as exc:
            raise data_error(self.source, exc, "cannot query") from None

    def where(self) -> str:
        return redact(f"Spark at {self.connector._master(self.source)}")


def _utc(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC).replace(tzinfo=None)


def _polars(table: Any) -> pl.DataFrame:
    """An Arrow table from Spark as polars: instants keep UTC, Spark's decimals (exact sums) stay exact."""
    return pl.from_arrow(table)  # type: ignore[return-value]


@hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    register(SparkConnector())
