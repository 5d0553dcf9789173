"""Loading polars frames into the databases the backend tests compare: a DuckDB file and PostgreSQL."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import polars as pl

_PG_TYPES = {
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Float64: "DOUBLE PRECISION",
    pl.String: "TEXT",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
}


def to_duckdb(path: Path, tables: dict[str, pl.DataFrame]) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        for name, frame in tables.items():
            con.register("frame", frame.to_arrow())
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
            con.unregister("frame")


def to_postgres(url: str, tables: dict[str, pl.DataFrame]) -> None:
    """Typed tables (TIMESTAMP, or TIMESTAMPTZ for zoned times), filled by COPY from CSV."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con, con.cursor() as cur:
        for name, frame in tables.items():
            cols = []
            for c, t in frame.schema.items():
                if isinstance(t, pl.Datetime):
                    cols.append(f'"{c}" ' + ("TIMESTAMPTZ" if t.time_zone else "TIMESTAMP"))
                else:
                    cols.append(f'"{c}" {_PG_TYPES[type(t)]}')
            cur.execute(f'CREATE TABLE "{name}" ({", ".join(cols)})')
            for chunk in frame.iter_slices(1_000_000):  # (the benchmark loads 10M rows per table)
                buffer = io.BytesIO()
                chunk.write_csv(buffer, include_header=False)
                with cur.copy(f'COPY "{name}" FROM STDIN (FORMAT csv)') as copy:
                    copy.write(buffer.getvalue())
            cur.execute(f'ANALYZE "{name}"')


def to_sqlite(path: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Typed columns; times as UTC text (SQLite has no time type), dates as text, booleans as 0/1."""
    types = {pl.Int64: "INTEGER", pl.Int32: "INTEGER", pl.Float64: "REAL", pl.String: "TEXT", pl.Boolean: "BOOLEAN"}
    con = sqlite3.connect(path)
    for name, frame in tables.items():
        cols, exprs = [], []
        for c, t in frame.schema.items():
            if isinstance(t, pl.Datetime):
                cols.append(f'"{c}" TIMESTAMP')
                utc = pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None) if t.time_zone else pl.col(c)
                exprs.append(utc.dt.strftime("%Y-%m-%d %H:%M:%S%.6f").alias(c))
            elif t == pl.Date:
                cols.append(f'"{c}" DATE')
                exprs.append(pl.col(c).dt.strftime("%Y-%m-%d"))
            else:
                cols.append(f'"{c}" {types[type(t)]}')
                exprs.append(pl.col(c).cast(pl.Int64) if t == pl.Boolean else pl.col(c))
        con.execute(f'CREATE TABLE "{name}" ({", ".join(cols)})')
        con.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(cols))})', frame.select(exprs).rows())
    con.commit()
    con.close()


def case_insensitive_postgres(url: str, tables: dict[str, tuple[str, ...]]) -> None:
    """Give these text columns ICU's case-insensitive, nondeterministic collation (``"Email" = "email"``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(
            "DO $$ BEGIN CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);"
            " EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        for table, columns in tables.items():
            for column in columns:
                con.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT COLLATE ci')


def case_insensitive_duckdb(path: Path, tables: dict[str, tuple[str, ...]]) -> None:
    """Declare these text columns ``COLLATE NOCASE``."""
    import duckdb

    with duckdb.connect(str(path)) as con:
        for table, columns in tables.items():
            for column in columns:
                con.execute(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE VARCHAR COLLATE NOCASE')


def case_insensitive_sqlite(path: Path, tables: dict[str, tuple[str, ...]]) -> None:
    """Declare these text columns ``COLLATE NOCASE`` (SQLite cannot alter a column: the tables are made again)."""
    with sqlite3.connect(path) as con:
        for table, columns in tables.items():
            sql = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            for column in columns:
                sql = sql.replace(f'"{column}" TEXT', f'"{column}" TEXT COLLATE NOCASE')
            con.execute(f'ALTER TABLE "{table}" RENAME TO kpi_old')
            con.execute(sql)
            con.execute(f'INSERT INTO "{table}" SELECT * FROM kpi_old')
            con.execute("DROP TABLE kpi_old")
