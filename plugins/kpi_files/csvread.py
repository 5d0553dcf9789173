"""Reading CSV exports as they come: separators, decimal commas, thousands marks, null markers, encodings.

Every field is read as text and typed here, by rules a user can predict: the first ``INFER_ROWS`` rows of a
column decide its type (integer, decimal, boolean, ISO date or timestamp, else text) and every later value
must fit it, or the read fails naming the file, line and value. Dates that are not ISO 8601 are read only
through a declared ``time_format``; nothing is guessed day-first.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kpi_engine import (
    ISO_DATE_RE,
    ISO_RE,
    Diagnostic,
    KpiError,
    SourceSpec,
    TimeOptions,
    explain_unread,
    parse_text,
)

INFER_ROWS = 10_000
POLARS_ENCODINGS = {"utf8": "utf8", "utf8-lossy": "utf8-lossy"}
PYTHON_ENCODINGS = {"latin1": "latin-1", "cp1252": "cp1252", "utf16": "utf-16"}
ENCODINGS = (*POLARS_ENCODINGS, *PYTHON_ENCODINGS)
_INT_RE = r"^[+-]?\d+$"
_BOOL_VALUES = ("true", "false")
DTYPES: dict[str, Any] = {
    "int": pl.Int64,
    "float": pl.Float64,
    "str": pl.String,
    "bool": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
}


@dataclass(frozen=True)
class CsvOptions:
    """The csv connector's options, with their defaults."""

    separator: str = ","
    quote_char: str | None = '"'
    skip_rows: int = 0
    encoding: str = "utf8"
    null_values: tuple[str, ...] = ()
    decimal: str = "point"
    thousands: str | None = None
    dtypes: Mapping[str, str] | None = None
    time: TimeOptions = TimeOptions()

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> CsvOptions:
        sep = options.get("separator", ",")
        return cls(
            separator="\t" if sep == "\\t" else sep,
            quote_char=options.get("quote_char", '"') or None,
            skip_rows=int(options.get("skip_rows", 0)),
            encoding=options.get("encoding", "utf8"),
            null_values=tuple(options.get("null_values") or ()),
            decimal=options.get("decimal", "point"),
            thousands=options.get("thousands"),
            dtypes=options.get("dtypes"),
            time=TimeOptions.of(options),
        )


def shown(path: Path, source: SourceSpec) -> str:
    """A data file's path as the user knows it: relative to the spec folder when it is below it."""
    try:
        return str(path.relative_to(source.base_dir.resolve()))
    except ValueError:
        return str(path)


def read_text_frame(path: Path, opts: CsvOptions, n_rows: int | None = None) -> pl.DataFrame:
    """One file's rows with every field as text (nulls where a null marker stands)."""
    if opts.encoding in PYTHON_ENCODINGS:
        data: Any = io.BytesIO(_recode(path, PYTHON_ENCODINGS[opts.encoding]))
        encoding = "utf8"
    else:
        data, encoding = path, POLARS_ENCODINGS[opts.encoding]
    return pl.read_csv(
        data,
        separator=opts.separator,
        quote_char=opts.quote_char,
        skip_rows=opts.skip_rows,
        encoding=encoding,
        null_values=list(opts.null_values) or None,
        infer_schema=False,
        n_rows=n_rows,
    )


def _recode(path: Path, codec: str) -> bytes:
    raw = path.read_bytes()
    if codec == "utf-16" and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec = "utf-16-le"
    return raw.decode(codec).lstrip("\ufeff").encode("utf-8")


def _number_text(col: pl.Expr, opts: CsvOptions) -> pl.Expr:
    """Numeric text in the engine's notation: thousands marks removed, a decimal comma made a point."""
    text = col.str.strip_chars()
    if opts.thousands:
        text = text.str.replace_all(opts.thousands, "", literal=True)
    if opts.decimal == "comma":
        text = text.str.replace_all(".", "\0", literal=True).str.replace(",", ".", literal=True)
    return text


_FLOAT_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def infer_type(values: pl.Series, opts: CsvOptions, is_time: bool) -> Any:
    """A column's type from its first rows' non-null text (see the module docstring for the rules)."""
    present = values.drop_nulls()
    if present.is_empty():
        return None
    if is_time and opts.time.formats:
        return pl.Date if opts.time.date_only else pl.Datetime("us")
    if is_time and opts.time.unit:
        return pl.Float64
    stripped = present.str.strip_chars()
    if stripped.str.to_lowercase().is_in(_BOOL_VALUES).all():
        return pl.Boolean
    numbers = pl.select(_number_text(pl.lit(present), opts)).to_series()
    if numbers.str.contains(_INT_RE).all():
        return pl.Int64 if numbers.cast(pl.Int64, strict=False).null_count() == 0 else pl.Float64
    if numbers.str.contains(_FLOAT_RE).all():
        return pl.Float64
    if stripped.str.contains(ISO_DATE_RE).all():
        return pl.Date
    if stripped.str.contains(ISO_RE).all():
        return pl.Datetime("us")
    return pl.String


def convert(col: str, dtype: Any, opts: CsvOptions, is_time: bool) -> pl.Expr:
    """Text column ``col`` as ``dtype``; a value that does not fit becomes null (see ``unfit``)."""
    c = pl.col(col)
    if dtype == pl.String or dtype is None:
        return c
    if dtype == pl.Boolean:
        low = c.str.strip_chars().str.to_lowercase()
        return pl.when(low == "true").then(True).when(low == "false").then(False)
    if dtype in (pl.Int64, pl.Float64):
        text = _number_text(c, opts)
        pattern = _INT_RE if dtype == pl.Int64 else _FLOAT_RE
        return pl.when(text.str.contains(pattern)).then(text.cast(dtype, strict=False))
    time_opts = opts.time if is_time else TimeOptions(zone=opts.time.zone)
    return parse_text(c, time_opts, date_only=dtype == pl.Date)


def declared(opts: CsvOptions, column: str) -> Any:
    return DTYPES[opts.dtypes[column]] if opts.dtypes and column in opts.dtypes else None


def types_of(frame: pl.DataFrame, opts: CsvOptions, time_column: str) -> dict[str, Any]:
    """Each column's type: declared in ``dtypes``, else inferred from the first ``INFER_ROWS`` rows, or from
    every row for a column with no value in those; a column with no value at all is text, and None when the
    file has no rows."""
    out = {}
    for name in frame.columns:
        is_time = name == time_column
        head = frame[name].head(INFER_ROWS)
        values = head if head.null_count() < head.len() else frame[name]
        inferred = infer_type(values, opts, is_time)
        out[name] = declared(opts, name) or (pl.String if inferred is None and frame.height else inferred)
    return out


def sparse(sample: pl.DataFrame) -> bool:
    """Whether some column has no value in the sample (its type then needs every row)."""
    return any(sample[c].null_count() == sample.height for c in sample.columns)


def typed(frame: pl.DataFrame, types: Mapping[str, Any], opts: CsvOptions, time_column: str) -> pl.DataFrame:
    """``frame`` (all text) with each column converted to its type; a value that does not fit becomes null,
    which ``first_misfit`` finds."""
    return frame.with_columns(
        convert(name, dtype, opts, name == time_column).alias(name)
        for name, dtype in types.items()
        if name in frame.columns
    )


def first_misfit(text: pl.DataFrame, converted: pl.DataFrame, types: Mapping[str, Any]) -> tuple[str, int, str] | None:
    """The first (column, row, value) whose text did not survive ``typed``: present before, null after."""
    found = None
    for name, dtype in types.items():
        if name not in text.columns or dtype in (pl.String, None):
            continue
        bad = (text[name].is_not_null() & converted[name].is_null()).arg_true()
        if not bad.is_empty() and (found is None or int(bad[0]) < found[1]):
            found = (name, int(bad[0]), text[name][int(bad[0])])
    return found


def record_lines(path: Path, opts: CsvOptions) -> list[int]:
    """The line each data record of a file starts on (quoted fields may span lines)."""
    if opts.encoding in PYTHON_ENCODINGS:
        handle: Any = io.StringIO(_recode(path, PYTHON_ENCODINGS[opts.encoding]).decode("utf-8"), newline="")
    else:
        handle = path.open(newline="", encoding="utf-8-sig", errors="replace")
    with handle as fh:
        for _ in range(opts.skip_rows):
            fh.readline()
        quoting = csv.QUOTE_MINIMAL if opts.quote_char else csv.QUOTE_NONE
        reader = csv.reader(fh, delimiter=opts.separator, quotechar=opts.quote_char or '"', quoting=quoting)
        starts, previous = [], 0
        for n, _row in enumerate(reader):
            if n:  # the header is record 0
                starts.append(previous + 1 + opts.skip_rows)
            previous = reader.line_num
    return starts


def misfit_error(
    source: SourceSpec, where: str, column: str, value: str, dtype: Any, is_time: bool, opts: CsvOptions
) -> KpiError:
    """The error for a value that does not fit its column, naming the file and line."""
    if dtype in (pl.Date, pl.Datetime("us")):
        what, hint = explain_unread(value, opts.time if is_time else TimeOptions())
        subject = "time" if is_time else f"column `{column}`"
        key = "time_format" if is_time and opts.time.formats else "time" if is_time else "path"
        message = f"cannot read source `{source.name}`: {where}: {subject} {what}"
        return KpiError(Diagnostic(message, source.loc(key), hint=hint))
    kind = {pl.Int64: "integers", pl.Float64: "numbers", pl.Boolean: "true/false", pl.Date: "ISO dates"}.get(
        dtype, "ISO timestamps"
    )
    how = "declared" if declared(opts, column) else f"read as {kind} from its first rows"
    return KpiError(
        Diagnostic(
            f"cannot read source `{source.name}`: {where}: column `{column}` holds `{value}`, but it is {how}",
            source.loc("dtypes" if declared(opts, column) else "path"),
            hint=f"add `{value}` to null_values if it means 'no value', declare dtypes: {{{column}: str}}, "
            "or fix the row",
        )
    )


def not_iso_error(source: SourceSpec, where: str, values: Sequence[str]) -> KpiError:
    """The time column is text that is not ISO 8601 and no time_format says how to read it."""
    what, hint = explain_unread(values[0], TimeOptions(), sample=values)
    return KpiError(
        Diagnostic(f"cannot read source `{source.name}`: {where}: time {what}", source.loc("time"), hint=hint)
    )
