"""Error-path diagnosis for file sources: which file and line broke a read (never called on success)."""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from kpi_engine import Diagnostic, KpiError, SourceSpec

CHUNK = 1 << 20


def files_of(path: str, suffix: str = "") -> list[Path]:
    """The files a source path names: itself, its glob matches, or a folder's files with ``suffix``."""
    p = Path(path)
    if glob.has_magic(path):
        return sorted(Path(m) for m in glob.glob(path, recursive=True) if Path(m).is_file())
    if p.is_dir():
        return sorted(f for f in p.rglob(f"*{suffix}") if f.is_file())
    return [p]


def _shown(path: Path, source: SourceSpec) -> str:
    try:
        return str(path.resolve().relative_to(source.base_dir.resolve()))
    except ValueError:
        return str(path)


def not_utf8(source: SourceSpec, files: list[Path]) -> KpiError | None:
    """The first byte that is not UTF-8, as file and line."""
    for path in files:
        line, tail = 1, b""
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                data = tail + chunk
                try:
                    data.decode("utf-8")
                    tail = b""
                except UnicodeDecodeError as exc:
                    if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                        line += data.count(b"\n", 0, exc.start)
                        tail = data[exc.start :]
                        continue
                    line += data.count(b"\n", 0, exc.start)
                    return _utf8_error(source, path, line, data[exc.start])
                line += data.count(b"\n")
        if tail:
            return _utf8_error(source, path, line, tail[0])
    return None


def _utf8_error(source: SourceSpec, path: Path, line: int, byte: int) -> KpiError:
    return KpiError(
        Diagnostic(
            f"cannot read source `{source.name}`: {_shown(path, source)} line {line} is not UTF-8 text "
            f"(byte 0x{byte:02x})",
            source.loc(),
            hint="save the file as UTF-8, or set `encoding: utf8-lossy` on the source to replace the bad bytes",
        )
    )


def _rows(path: Path, separator: str) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=separator)
        for row in reader:
            yield reader.line_num, row


def header(path: Path, opts) -> list[str]:  # type: ignore[no-untyped-def]
    """A CSV file's header fields exactly as written (polars renames a repeated name; this does not)."""
    from .csvread import PYTHON_ENCODINGS, _recode

    if opts.encoding in PYTHON_ENCODINGS:
        text = _recode(path, PYTHON_ENCODINGS[opts.encoding]).decode("utf-8")
        lines = iter(text.splitlines(keepends=True))
    else:
        fh = path.open(newline="", encoding="utf-8-sig", errors="replace")
        lines = iter(fh)
    try:
        for _ in range(opts.skip_rows):
            next(lines, None)
        quoting = csv.QUOTE_MINIMAL if opts.quote_char else csv.QUOTE_NONE
        reader = csv.reader(lines, delimiter=opts.separator, quotechar=opts.quote_char or '"', quoting=quoting)
        return [name.strip() for name in next(reader, [])]
    finally:
        if opts.encoding not in PYTHON_ENCODINGS:
            fh.close()


def ragged_row(source: SourceSpec, files: list[Path], separator: str) -> KpiError | None:
    """The first row whose number of fields differs from its file's header."""
    for path in files:
        header: list[str] | None = None
        for line, row in _rows(path, separator):
            if header is None:
                header = row
            elif row and len(row) != len(header):
                return KpiError(
                    Diagnostic(
                        f"cannot read source `{source.name}`: {_shown(path, source)} line {line} has "
                        f"{len(row)} fields, the header has {len(header)}",
                        source.loc(),
                        hint="quote values that contain the separator, or fix the row",
                    )
                )
    return None


def type_change(source: SourceSpec, files: list[Path]) -> KpiError | None:
    """The first column whose type in one Parquet file differs from the first file's."""
    first: pl.Schema | None = None
    for path in files:
        try:
            schema = pl.read_parquet_schema(path)
        except (pl.exceptions.PolarsError, OSError):
            continue
        if first is None:
            first, first_path = pl.Schema(schema), path
            continue
        for column, dtype in schema.items():
            if column in first and first[column] != dtype:
                return KpiError(
                    Diagnostic(
                        f"cannot read source `{source.name}`: column `{column}` is {first[column]} in "
                        f"{_shown(first_path, source)} but {dtype} in {_shown(path, source)}",
                        source.loc(),
                        hint="the files of one source must share column types; re-export the odd file",
                    )
                )
    return None
