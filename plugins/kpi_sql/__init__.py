"""First-party `sql` connector: SQLite (standard library), DuckDB, PostgreSQL, and any database polars reads
by URI.

SQLite, DuckDB and PostgreSQL aggregate their own rows: the engine compiles each group of the plan to SQL
(``Connector.database``) and reads back only the aggregates. When a KPI needs what the database cannot
compute, the rows are read instead: only the columns the plan needs, with the time window pushed into the
WHERE clause as query parameters (widened by a day, since the engine filters exactly afterwards).
Identifiers are quoted, never pasted in raw. ``url: ${env:NAME}`` reads the URL from the environment.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

import polars as pl

from kpi_engine import (
    Collated,
    Connector,
    Database,
    Diagnostic,
    Env,
    KpiError,
    ScanRequest,
    SourceSpec,
    TimeOptions,
    check_file,
    data_error,
    expand_env,
    hookimpl,
    redact,
    source_path,
    time_expr,
)

_SQLITE_TYPES = (
    ("INT", pl.Int64),
    ("BOOL", pl.Boolean),
    ("REAL", pl.Float64),
    ("FLOA", pl.Float64),
    ("DOUB", pl.Float64),
    ("NUM", pl.Float64),
    ("DEC", pl.Float64),
    ("TIMESTAMP", pl.Datetime("us")),
    ("DATETIME", pl.Datetime("us")),
    ("DATE", pl.Date),
    ("CHAR", pl.String),
    ("TEXT", pl.String),
    ("CLOB", pl.String),
)


def quote(name: str) -> str:
    """A SQL identifier, double-quoted with embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


class SqlConnector(Connector):
    name = "sql"
    description = "A table or query of a SQL database: SQLite file, DuckDB file, or any URI polars reads."
    options_schema = {
        "properties": {
            "path": {"type": "string", "description": "SQLite (or .duckdb) database file, relative to the spec file."},
            "url": {
                "type": "string",
                "description": "Database URI, e.g. sqlite:///crm.db, duckdb:///x.duckdb, postgresql://...; "
                "${env:NAME} reads it (or a part) from the environment, so that no password sits in a spec",
            },
            "table": {"type": "string"},
            "query": {"type": "string", "description": "A SELECT whose rows are the source (instead of `table`)."},
        },
        "required": [],
    }

    # -- connection -------------------------------------------------------------------------------
    def _target(self, source: SourceSpec, env: Env) -> tuple[str, str]:
        opts = source.options
        if ("path" in opts) == ("url" in opts):
            raise KpiError(Diagnostic(f"source `{source.name}` needs exactly one of `path` or `url`", source.loc()))
        if ("table" in opts) == ("query" in opts):
            raise KpiError(
                Diagnostic(
                    f"source `{source.name}` needs exactly one of `table` or `query`",
                    source.loc(),
                    hint="table: orders   or   query: SELECT ... FROM orders",
                )
            )
        if "path" in opts:
            path = source_path(source, env)
            return ("duckdb" if path.endswith((".duckdb", ".ddb")) else "sqlite"), path
        url = expand_env(str(opts["url"]), source, "url")
        if url.startswith(("postgresql://", "postgres://")):
            return "postgres", url
        for scheme in ("sqlite", "duckdb"):
            if url.startswith(f"{scheme}:///"):
                raw = url[len(scheme) + 4 :]
                path = Path(raw) if Path(raw).is_absolute() else source.base_dir / raw
                # the same rule as a `path:`: below the spec folder (or a data root), links resolved
                real = check_file(path, raw, source, env, "url")
                if not real.is_file():
                    raise KpiError(
                        Diagnostic(f"database file `{raw}` of source `{source.name}` does not exist", source.loc("url"))
                    )
                return scheme, str(real)
        return "uri", url

    def _from(self, source: SourceSpec) -> str:
        opts = source.options
        return quote(opts["table"]) if "table" in opts else f"({opts['query']}) AS kpi_src"

    def _read(self, source: SourceSpec, env: Env, sql: str, params: list[Any] | dict[str, Any]) -> pl.DataFrame:
        kind, target = self._target(source, env)
        try:
            if kind == "sqlite":
                con = _sqlite(target)
                try:
                    cur = con.execute(sql, params)
                    names = [d[0] for d in cur.description]
                    rows = cur.fetchall()
                finally:
                    con.close()
                return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
            if kind == "duckdb":
                duckdb = _duckdb()
                # queries read this database only: no read_csv('../x.csv'), no httpfs, no ATTACH of other files
                config = {"enable_external_access": False}
                with duckdb.connect(target, read_only=True, config=config) as con:
                    return con.sql(sql, params=params or None).pl()
            if kind == "postgres":
                return _postgres(target, sql, params)
            if params:
                raise AssertionError("URI databases get no parameters")
            return pl.read_database_uri(sql, target)
        except KpiError:
            raise
        except Exception as exc:
            raise data_error(source, exc, "cannot query") from None

    # -- connector API ----------------------------------------------------------------------------
    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        kind, target = self._target(source, env)
        if kind == "sqlite" and "table" in source.options:
            con = _sqlite(target)
            try:
                info = con.execute(f"PRAGMA table_info({quote(source.options['table'])})").fetchall()
            except sqlite3.Error as exc:
                raise data_error(source, exc, "cannot query") from None
            finally:
                con.close()
            if not info:
                raise KpiError(
                    Diagnostic(f"table `{source.options['table']}` not found in {target}", source.loc("table"))
                )
            return pl.Schema({row[1]: _sqlite_type(row[2]) for row in info})
        sample = self._read(source, env, f"SELECT * FROM {self._from(source)} LIMIT 1000", [])
        return sample.schema

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        kind, _ = self._target(source, env)
        cols = ", ".join(quote(c) for c in request.columns) or "*"
        sql = f"SELECT {cols} FROM {self._from(source)}"
        params: list[Any] = []
        # SQLite's column may hold Unix times or text in another format whatever its declared type: compared
        # with an ISO bound they sort apart (a number before any text), so only ISO text is windowed there
        not_iso = kind == "sqlite" and ("time_unit" in source.options or "time_format" in source.options)
        if kind != "uri" and not not_iso:
            clauses = []
            day = dt.timedelta(days=1)
            mark = "%s" if kind == "postgres" else "?"
            column = quote(request.time_column)
            for bound, op, shift in ((request.start, ">=", -day), (request.end, "<", day)):
                if bound is None:
                    continue
                test = f"{column} {op} {mark}"  # (SQLite: a value that is not text is read, and checked)
                clauses.append(f"(typeof({column}) <> 'text' OR {test})" if kind == "sqlite" else test)
                params.append(_sql_time(bound + shift, kind))
            if clauses:
                sql += " WHERE " + " AND ".join(clauses)
        frame = self._read(source, env, sql, params)
        schema = self.schema(source, env) if kind == "sqlite" else None
        if schema is not None:
            frame = _coerce(frame, schema, source)
        return frame.lazy()

    def database(self, source: SourceSpec, env: Env) -> Database | None:
        kind, target = self._target(source, env)
        return None if kind == "uri" else _SqlDatabase(self, source, env, kind, target)


class _SqlDatabase(Database):
    """The source's database, running the engine's aggregation queries (``kind``: sqlite, duckdb, postgres)."""

    def __init__(self, connector: SqlConnector, source: SourceSpec, env: Env, kind: str, target: str) -> None:
        self.connector, self.source, self.env, self.kind, self.target = connector, source, env, kind, target
        self.dialect = kind

    def relation(self) -> Any:
        from sqlglot import exp, parse_one

        opts = self.source.options
        if "table" in opts:
            return exp.Table(this=exp.to_identifier(str(opts["table"]), quoted=True))
        try:
            query = parse_one(str(opts["query"]), read=self.dialect)
        except Exception as exc:  # the user's SQL, which the database itself may still read: say so plainly
            raise KpiError(
                Diagnostic(
                    f"source `{self.source.name}`: cannot read its `query` as {self.dialect} SQL: {exc}",
                    self.source.loc("query"),
                    hint="write one SELECT statement",
                )
            ) from None
        return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("kpi_src", quoted=True)))

    def fetch(self, sql: str, params: dict[str, Any]) -> pl.DataFrame:
        return self.connector._read(self.source, self.env, sql, params)  # type: ignore[arg-type]

    def where(self) -> str:
        return redact(self.target)

    def collated(self) -> Collated:
        """A table's collations from its database's catalog; unknown for a query, and in SQLite (where
        ``COLLATE BINARY`` costs nothing)."""
        table = self.source.options.get("table")
        if table is None or self.kind not in ("postgres", "duckdb"):
            return Collated()
        if self.kind == "postgres":  # ordering follows the database's locale, equality only these columns'
            loose = self.fetch(_PG_NONDETERMINISTIC, {"t": quote(str(table))})["name"].to_list()
            return Collated(loose=frozenset(loose))
        found = self.fetch("SELECT sql FROM duckdb_tables() WHERE table_name = $t", {"t": str(table)})
        if found.height == 0:  # a view: its columns' collations are its query's
            return Collated()
        named = _duckdb_collated(found["sql"].to_list())
        return Collated(loose=named, ordered=named)


#: a PostgreSQL table's columns whose collation finds text equal that differs in its bytes
_PG_NONDETERMINISTIC = (
    "SELECT a.attname AS name FROM pg_attribute AS a JOIN pg_collation AS c ON c.oid = a.attcollation "
    "WHERE a.attrelid = CAST(%(t)s AS REGCLASS) AND a.attnum > 0 AND NOT c.collisdeterministic"
)


def _duckdb_collated(statements: list[str]) -> frozenset[str]:
    """The columns that DuckDB's ``CREATE TABLE`` statements declare with a collation (``COLLATE NOCASE``)."""
    from sqlglot import exp, parse_one

    return frozenset(
        column.name
        for sql in statements
        for column in parse_one(sql, read="duckdb").find_all(exp.ColumnDef)
        if any(isinstance(c.kind, exp.CollateColumnConstraint) for c in column.constraints)
    )


def _duckdb() -> Any:
    """The duckdb module, or a clear error saying how to install it (a .duckdb file needs it)."""
    try:
        import duckdb
    except ImportError:
        raise KpiError(
            Diagnostic("reading a DuckDB database needs the duckdb package", hint="pip install 'kpi-engine[duckdb]'")
        ) from None
    return duckdb


def _postgres(url: str, sql: str, params: list[Any] | dict[str, Any]) -> pl.DataFrame:
    """Rows of one query on a PostgreSQL server (psycopg 3), typed by polars from the values."""
    try:
        import psycopg
    except ImportError:
        raise KpiError(
            Diagnostic(
                "reading PostgreSQL needs the psycopg driver",
                hint="pip install 'kpi-engine[postgres]' (or: pip install 'psycopg[binary]')",
            )
        ) from None
    with psycopg.connect(url, autocommit=True) as con, con.cursor() as cur:
        cur.execute(sql, params or None)
        described = [(d.name, d.type_code) for d in cur.description or ()]
        rows = cur.fetchall()
    frame = pl.DataFrame(rows, schema=[name for name, _ in described], orient="row", infer_schema_length=None)
    # no rows, or NULLs only, leave polars nothing to infer from: the server's column type says it
    typed = [
        pl.col(name).cast(_PG_TYPES[oid])
        for name, oid in described
        if frame.schema[name] == pl.Null and oid in _PG_TYPES
    ]
    return frame.with_columns(typed) if typed else frame


#: PostgreSQL type OIDs (pg_type) as polars types, for columns whose values say nothing
_PG_TYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    700: pl.Float32(),
    701: pl.Float64(),
    1700: pl.Float64(),
    18: pl.String(),
    25: pl.String(),
    1042: pl.String(),
    1043: pl.String(),
    1082: pl.Date(),
    1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
    1186: pl.Duration("us"),
}


def _sqlite(path: str) -> sqlite3.Connection:
    """A read-only connection to the database file at ``path``: the path is percent-quoted in the URI, so a
    file named ``a%2F..%2Fb.db`` is that file, not ``a/../b.db``."""
    return sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)


def _sql_time(instant: dt.datetime, kind: str) -> Any:
    naive = instant.astimezone(dt.UTC).replace(tzinfo=None)
    return naive.strftime("%Y-%m-%d %H:%M:%S") if kind == "sqlite" else naive


def _sqlite_type(declared: str) -> pl.DataType:
    upper = declared.upper()
    for marker, dtype in _SQLITE_TYPES:
        if marker in upper:
            return dtype  # type: ignore[return-value]
    return pl.String()


def _coerce(frame: pl.DataFrame, schema: pl.Schema, source: SourceSpec) -> pl.DataFrame:
    """SQLite stores dates as text or numbers and lets any column hold any value: give each column its
    declared type, reading times like every other connector (ISO 8601, ``time_format``, ``time_unit``), and
    name the table, column and row of a value that does not fit."""
    opts = TimeOptions.of(source.options)
    exprs = []
    for name in frame.columns:
        want, have = schema.get(name), frame.schema[name]
        if want is None or have == want:
            continue
        if have == pl.Null:  # no rows, or only NULLs: nothing to read, only a type to give
            exprs.append(frame[name].cast(want))
            continue
        if isinstance(want, pl.Datetime | pl.Date):
            date_only = isinstance(want, pl.Date) and have == pl.String
            expr = time_expr(pl.col(name), have, opts, date_only)
            if expr is None:
                raise _misfit(frame, source, name, want, have, None)
            if isinstance(want, pl.Date) and not date_only:
                expr = expr.dt.date()
        else:
            expr = pl.col(name).cast(want, strict=False)
        converted = frame.select(expr.alias(name)).to_series()
        if converted.null_count() != frame[name].null_count():
            raise _misfit(frame, source, name, want, have, converted)
        exprs.append(converted)
    return frame.with_columns(exprs) if exprs else frame


def _sql_name(dtype: pl.DataType) -> str:
    for marker, polars_type in _SQLITE_TYPES:
        if dtype == polars_type:
            return {"INT": "INTEGER", "FLOA": "FLOAT", "DOUB": "DOUBLE", "NUM": "NUMERIC", "DEC": "DECIMAL"}.get(
                marker, marker
            )
    return str(dtype)


def _misfit(
    frame: pl.DataFrame, source: SourceSpec, name: str, want: pl.DataType, have: pl.DataType, converted: Any
) -> KpiError:
    values = frame[name]
    bad = values.is_not_null() & (converted.is_null() if converted is not None else True)
    row = int(bad.arg_true()[0])
    what = f"table `{source.options.get('table', 'query')}`"
    if have.is_numeric() and isinstance(want, pl.Datetime | pl.Date):
        hint = "if these are Unix epoch times, declare their unit on the source: time_unit: s (or ms, us, ns)"
    elif isinstance(want, pl.Datetime | pl.Date):
        hint = 'timestamps must be ISO 8601 (2026-04-01T09:30:00+02:00), or declare time_format: "%d/%m/%Y %H:%M"'
    else:
        hint = "fix the row, or declare the column with a type that fits its values"
    return KpiError(
        Diagnostic(
            f"cannot read source `{source.name}`: {what} column `{name}` is declared {_sql_name(want)} "
            f"but row {row + 1} holds {values[row]!r}",
            source.loc(),
            hint=hint,
        )
    )


@hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    register(SqlConnector())
