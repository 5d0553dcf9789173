"""First-party connectors for files: CSV, Parquet and NDJSON, read lazily by polars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from kpi_engine import (
    ISO_RE,
    Collated,
    Connector,
    Database,
    Diagnostic,
    Env,
    KpiError,
    ScanRequest,
    SourceSpec,
    TimeOptions,
    checked,
    data_error,
    hookimpl,
    parse_text,
    source_files,
)

from . import csvread, diagnose, sniff

_PATH = {
    "type": "string",
    "description": "A file, a glob (data/*.csv, data/**/*.csv) or a folder (every file of the connector's type "
    "below it), relative to the spec file.",
}
_DTYPES = {
    "type": "object",
    "description": "Column types to use instead of inferring them (int, float, str, bool, date, datetime).",
    "additionalProperties": {"enum": ["int", "float", "str", "bool", "date", "datetime"]},
}
_POLARS_TYPES: dict[str, Any] = csvread.DTYPES
CSV_SUFFIXES = (".csv", ".tsv", ".txt")


def _overrides(source: SourceSpec) -> dict[str, Any] | None:
    dtypes = source.options.get("dtypes")
    return {k: _POLARS_TYPES[v] for k, v in dtypes.items()} if dtypes else None


class CsvConnector(Connector):
    name = "csv"
    description = "Delimited text exports with a header row: any separator, decimal commas, null markers, encodings."
    options_schema = {
        "properties": {
            "path": _PATH,
            "separator": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2,
                "pattern": "^(.|\\\\t)$",
                "description": "Field separator, one character: , ; | or \\t for tabs (default ,).",
            },
            "quote_char": {
                "type": ["string", "null"],
                "maxLength": 1,
                "description": 'Quote character around fields holding the separator (default "; null: none).',
            },
            "skip_rows": {"type": "integer", "minimum": 0, "description": "Lines to skip before the header row."},
            "null_values": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Texts that mean 'no value', e.g. [NA, '-', 'n/a'] (an empty field always is).",
            },
            "decimal": {"enum": ["point", "comma"], "description": "Decimal mark of numbers: 1.5 or 1,5."},
            "thousands": {
                "enum": [",", ".", " ", "'", "\u00a0"],
                "description": "Thousands mark to ignore in numbers, e.g. . for 1.234,5 with decimal: comma.",
            },
            "dtypes": _DTYPES,
            "encoding": {
                "enum": list(csvread.ENCODINGS),
                "description": "Text encoding (default utf8; a byte-order mark is skipped). utf8-lossy replaces "
                "bad bytes; latin1, cp1252 (Excel on Windows) and utf16 are decoded before reading.",
            },
        },
        "required": ["path"],
    }

    def _files(self, source: SourceSpec, env: Env) -> list[Path]:
        return source_files(source, env, suffixes=CSV_SUFFIXES)

    def _read(self, source: SourceSpec, files: list[Path], n_rows: int | None) -> list[pl.DataFrame]:
        """Each file's rows as text (the first ``n_rows`` rows in all when set), headers checked."""
        opts = csvread.CsvOptions.of(source.options)
        frames: list[pl.DataFrame] = []
        left = n_rows
        for path in files:
            header = diagnose.header(path, opts)
            dupes = sorted({c for c in header if header.count(c) > 1})
            if dupes:
                raise KpiError(
                    Diagnostic(
                        f"cannot read source `{source.name}`: the header of {csvread.shown(path, source)} names "
                        f"column `{dupes[0]}` {header.count(dupes[0])} times",
                        source.loc("path"),
                        hint="rename the repeated column in the export: the engine will not pick one silently",
                    )
                )
            if frames and header != frames[0].columns:
                raise KpiError(
                    Diagnostic(
                        f"cannot read source `{source.name}`: {csvread.shown(path, source)} has columns "
                        f"{header}, but {csvread.shown(files[0], source)} has {frames[0].columns}",
                        source.loc("path"),
                        hint="the files of one source must share their header",
                    )
                )
            frames.append(csvread.read_text_frame(path, opts, left))
            if left is not None:
                left -= frames[-1].height
                if left <= 0:
                    break
        return frames

    def _guarded(self, source: SourceSpec, env: Env, read):  # type: ignore[no-untyped-def]
        try:
            return read()
        except KpiError:
            raise
        except (pl.exceptions.PolarsError, OSError, ValueError, UnicodeError) as exc:
            raise self.explain_error(source, env, exc) from None

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        """Types from the first rows (declared ``dtypes`` win); a header without rows must declare them."""
        opts = csvread.CsvOptions.of(source.options)
        files = self._files(source, env)
        frames = self._guarded(source, env, lambda: self._read(source, files, csvread.INFER_ROWS))
        sample = pl.concat(frames) if len(frames) > 1 else frames[0]
        if sample.height >= csvread.INFER_ROWS and csvread.sparse(sample):
            frames = self._guarded(source, env, lambda: self._read(source, files, None))
            sample = pl.concat(frames) if len(frames) > 1 else frames[0]
        types = csvread.types_of(sample, opts, source.time)
        unknown = [c for c, t in types.items() if t is None]
        if unknown:
            raise KpiError(
                Diagnostic(
                    f"data of source `{source.name}` has a header but no rows, so the types of "
                    f"{', '.join(f'`{c}`' for c in unknown)} cannot be inferred",
                    source.loc("path"),
                    hint="declare them, e.g. dtypes: {"
                    + ", ".join(f"{c}: {'datetime' if c == source.time else 'int'}" for c in unknown[:3])
                    + "}",
                )
            )
        if types.get(source.time) == pl.String:
            times = sample[source.time]
            odd = (times.is_not_null() & ~times.str.strip_chars().str.contains(ISO_RE)).arg_true()
            row = int(odd[0]) if not odd.is_empty() else 0
            values = times.filter(times.is_not_null() & ~times.str.strip_chars().str.contains(ISO_RE)).head(50)
            where = self.locate_row(source, env, row) or f"row {row + 1}"
            raise csvread.not_iso_error(source, where, values.to_list() or [times[row]])
        self._check_times(source, env, sample, types, opts)
        return pl.Schema(types)

    def _check_times(self, source: SourceSpec, env: Env, sample: pl.DataFrame, types: dict, opts: Any) -> None:
        """The sample's time values must all be read (a placeholder 9999-12-31 is found at validation)."""
        time = {source.time: types[source.time]} if source.time in types else {}
        text = sample.select(list(time))
        found = csvread.first_misfit(text, csvread.typed(text, time, opts, source.time), time) if time else None
        if found is not None:
            column, row, value = found
            where = self.locate_row(source, env, row) or f"row {row + 1}"
            raise csvread.misfit_error(source, where, column, value, time[column], True, opts)

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        """Every field of every file is read (a projected read would not notice ragged rows), then typed."""
        opts = csvread.CsvOptions.of(source.options)
        files = self._files(source, env)
        frames = self._guarded(source, env, lambda: self._read(source, files, None))
        frame = pl.concat(frames) if len(frames) > 1 else frames[0]
        types = csvread.types_of(frame, opts, source.time)
        wanted = {c: types[c] for c in request.columns if c in types} or types
        text = frame.select(list(wanted))
        out = csvread.typed(text, wanted, opts, source.time)
        found = csvread.first_misfit(text, out, wanted)
        if found is not None:
            column, row, value = found
            where = self.locate_row(source, env, row) or f"row {row + 1}"
            raise csvread.misfit_error(source, where, column, value, wanted[column], column == source.time, opts)
        return out.lazy()

    def sniff(self, path: Path) -> dict[str, Any] | None:
        """Separator, preamble, encoding, number marks, null markers and time format, from the first lines."""
        if not path.name.lower().endswith(CSV_SUFFIXES):
            return None
        return sniff.sniff_csv(path)

    def locate_row(self, source: SourceSpec, env: Env, row: int) -> str | None:
        """``file line N`` of the ``row``-th data row across the source's files."""
        opts = csvread.CsvOptions.of(source.options)
        for path in self._files(source, env):
            starts = csvread.record_lines(path, opts)
            if row < len(starts):
                return f"{csvread.shown(path, source)} line {starts[row]}"
            row -= len(starts)
        return None

    def explain_error(self, source: SourceSpec, env: Env, exc: BaseException) -> KpiError:
        """Name the file and line: the first non-UTF-8 byte or the first row with a wrong number of fields."""
        opts = csvread.CsvOptions.of(source.options)
        files = self._files(source, env)
        found = None
        if opts.encoding == "utf8":
            found = diagnose.not_utf8(source, files)
        if found is None and "fields" in str(exc):
            found = diagnose.ragged_row(source, files, opts.separator)
        return found or data_error(source, exc)


class _FileConnector(Connector):
    """A connector whose lazy frame polars builds from the checked list of files."""

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        raise NotImplementedError

    def schema(self, source: SourceSpec, env: Env) -> pl.Schema:
        try:
            return self._lazy(source, env).collect_schema()
        except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
            raise self.explain_error(source, env, exc) from None

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        return self._lazy(source, env)


class ParquetConnector(_FileConnector):
    name = "parquet"
    description = "Apache Parquet files or a folder/glob of them (a dataset)."
    options_schema = {
        "properties": {
            "path": _PATH,
            "hive_partitioning": {"type": "boolean"},
            "engine": {
                "enum": ["polars", "duckdb"],
                "description": "What aggregates the rows: polars (default) or DuckDB (read_parquet, in process; "
                "needs `pip install duckdb`). Both give the same numbers.",
            },
        },
        "required": ["path"],
    }

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        files = source_files(source, env, suffixes=(".parquet", ".pq"))
        return pl.scan_parquet(files, hive_partitioning=source.options.get("hive_partitioning"))

    def files(self, source: SourceSpec, env: Env) -> list[Path] | None:
        """Parquet files carry their column types, so any subset reads with the types of the whole (but a
        hive-partitioned dataset, whose columns come from the folder names)."""
        if source.options.get("hive_partitioning"):
            return None
        return source_files(source, env, suffixes=(".parquet", ".pq"))

    def scan(self, source: SourceSpec, request: ScanRequest, env: Env) -> pl.LazyFrame:
        if request.files is not None:
            return pl.scan_parquet(list(request.files))
        return self._lazy(source, env)

    def database(self, source: SourceSpec, env: Env) -> Database | None:
        """With ``engine: duckdb``, DuckDB aggregates the files in process (``read_parquet``)."""
        if source.options.get("engine", "polars") != "duckdb":
            return None
        files = [str(f) for f in source_files(source, env, suffixes=(".parquet", ".pq"))]
        return _DuckDBFiles(source, files, bool(source.options.get("hive_partitioning")))

    def sniff(self, path: Path) -> dict[str, Any] | None:
        """Parquet carries its types: only the time column is to be chosen."""
        if not path.name.lower().endswith((".parquet", ".pq")):
            return None
        schema = pl.read_parquet_schema(path)
        return {"options": {}, "time": _first_temporal(schema)}

    def explain_error(self, source: SourceSpec, env: Env, exc: BaseException) -> KpiError:
        """Name the two files when a column's type changes between the files of a dataset."""
        files = source_files(source, env, suffixes=(".parquet", ".pq"))
        return (len(files) > 1 and diagnose.type_change(source, files)) or data_error(source, exc)


class _DuckDBFiles(Database):
    """Parquet files aggregated by an in-memory DuckDB: the checked file list is a query parameter."""

    dialect = "duckdb"

    def __init__(self, source: SourceSpec, files: list[str], hive: bool) -> None:
        self.source, self.files, self.hive = source, files, hive

    def relation(self) -> Any:
        from sqlglot import exp

        args: list[exp.Expression] = [exp.Placeholder(this="files")]
        if self.hive:
            args.append(exp.EQ(this=exp.column("hive_partitioning"), expression=exp.true()))
        return exp.Table(this=exp.Anonymous(this="read_parquet", expressions=args))

    def fetch(self, sql: str, params: dict[str, Any]) -> pl.DataFrame:
        try:
            import duckdb
        except ImportError:
            raise KpiError(
                Diagnostic(
                    f"source `{self.source.name}` says `engine: duckdb`, which needs DuckDB",
                    self.source.loc("engine"),
                    hint="pip install 'kpi-engine[duckdb]', or remove `engine: duckdb`",
                )
            ) from None
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            return con.sql(sql, params={**params, "files": self.files}).pl()

    def where(self) -> str:
        """The files, named: the engine joins a lookup in the query only where it is, and the lookup's
        ``$files`` would be this source's (a lookup in other files is joined in polars)."""
        more = f" and {len(self.files) - 1} more Parquet file(s)" if len(self.files) > 1 else ""
        return f"{self.files[0]}{more} via DuckDB" if self.files else "no Parquet file, via DuckDB"

    def collated(self) -> Collated:
        return Collated(frozenset(), frozenset())  # Parquet's strings have no collation: DuckDB compares bytes


class NdjsonConnector(_FileConnector):
    name = "ndjson"
    description = "Newline-delimited JSON: one object per line (JSON Lines)."
    options_schema = {"properties": {"path": _PATH, "dtypes": _DTYPES}, "required": ["path"]}
    suffixes = (".ndjson", ".jsonl", ".json")

    def _lazy(self, source: SourceSpec, env: Env) -> pl.LazyFrame:
        """Declared date and datetime columns are read as text and parsed like the time column (never guessed)."""
        overrides = _overrides(source) or {}
        temporal = {c: t for c, t in overrides.items() if t in (pl.Date, pl.Datetime("us"))}
        overrides = {c: (pl.String if c in temporal else t) for c, t in overrides.items()}
        if temporal.get(source.time) != pl.Date or "time_format" in source.options:
            # the engine parses the time column with the source's time options; declared a date (ISO), it is
            # a date column here (no hour, never a midnight in some zone)
            temporal.pop(source.time, None)
        files = source_files(source, env, suffixes=self.suffixes)
        lf = pl.scan_ndjson(files, infer_schema_length=10_000, schema_overrides=overrides or None)
        opts = TimeOptions(zone=source.options.get("time_zone"))
        return lf.with_columns(
            checked(pl.col(c), parse_text(pl.col(c), opts, t == pl.Date), t == pl.Date).alias(c)
            for c, t in temporal.items()
        )

    def sniff(self, path: Path) -> dict[str, Any] | None:
        """JSON has no dates: a text column named like a time is the time column (ISO 8601, or declare it)."""
        if not path.name.lower().endswith(self.suffixes):
            return None
        schema = pl.read_ndjson(path, n_rows=1000).schema
        named = [c for c, t in schema.items() if sniff.TIME_NAMES.search(c) and t in (pl.String, pl.Datetime)]
        return {"options": {}, "time": _first_temporal(schema) or (named[0] if named else None)}

    def locate_row(self, source: SourceSpec, env: Env, row: int) -> str | None:
        """``file line N``: each non-blank line is one row."""
        for path in source_files(source, env, suffixes=self.suffixes):
            with path.open("rb") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        if row == 0:
                            return f"{csvread.shown(path, source)} line {number}"
                        row -= 1
        return None


def _first_temporal(schema: Any) -> str | None:
    return next((c for c, t in schema.items() if isinstance(t, pl.Date | pl.Datetime)), None)


@hookimpl
def register_connectors(register) -> None:  # type: ignore[no-untyped-def]
    for connector in (CsvConnector(), ParquetConnector(), NdjsonConnector()):
        register(connector)
