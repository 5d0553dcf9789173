"""Sniffing a CSV export (``kpi inspect``): encoding, separator, preamble, decimal and thousands marks, null
markers and the time column's format, as csv connector options a user can paste and then read exactly.

Only the options are guessed here, from the first lines; the types shown are what the connector itself then
reads with them. A date format that reads both day-first and month-first is not guessed: it is refused.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from pathlib import Path
from typing import Any

from kpi_engine import CANDIDATE_FORMATS, ISO_RE, Diagnostic, KpiError, Location, formats_reading

_RANK = {f: i for i, f in enumerate(CANDIDATE_FORMATS)}

SAMPLE_BYTES = 256 * 1024
SEPARATORS = ",;\t|"
NULL_MARKERS = ("NA", "N/A", "n/a", "na", "-", "--", "null", "NULL", "None", "#N/A", "(not set)", "nan", "NaN")
TIME_NAMES = re.compile(r"(^|_|\b)(ts|time|timestamp|date|datetime|day|created|at)($|_|\b)", re.I)


def encoding_of(raw: bytes) -> str:
    """utf16 (by its byte-order mark), utf8 when the sample decodes, else cp1252 (Excel on Windows)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf16"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # not just a character cut by the sample's end
            return "cp1252"
    return "utf8"


def _text(raw: bytes, encoding: str) -> str:
    codec = {"utf16": "utf-16", "cp1252": "cp1252"}.get(encoding, "utf-8")
    return raw.decode(codec, errors="replace").lstrip("\ufeff")


def _lines(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[:-1] if len(lines) > 1 and not text.endswith(("\n", "\r")) else lines  # the last may be cut


def separator_and_preamble(lines: list[str]) -> tuple[str, int]:
    """The separator that splits the most lines into the same number (>1) of fields, and how many lines
    before the header do not (an analytics export's title and date range)."""
    best: tuple[tuple[int, int], str, int] | None = None  # ((lines, fields), separator, lines to skip)
    for sep in SEPARATORS:
        counts = [len(row) for row in csv.reader(lines, delimiter=sep)]
        wide = Counter(c for c in counts if c > 1)
        if not wide:
            continue
        width, n = wide.most_common(1)[0]
        if best is None or (n, width) > best[0]:
            best = ((n, width), sep, counts.index(width))
    return (best[1], best[2]) if best is not None else (",", 0)


def number_marks(values: list[str], separator: str) -> tuple[str, str | None]:
    """``(decimal, thousands)`` from numeric-looking text. 1,5 or 1.234,56 is a decimal comma; 1,234 alone
    could be either, so a point decimal elsewhere, or a comma separator (the field was quoted), decides."""
    values = [v.strip() for v in values if v and v.strip()]

    def some(pattern: str) -> bool:
        return any(re.fullmatch(pattern, v) for v in values)

    comma_decimal = some(r"[+-]?\d+,\d{1,2}|[+-]?\d+,\d{4,}|[+-]?\d{1,3}(\.\d{3})+,\d+")
    point_decimal = some(r"[+-]?\d+\.\d{1,2}|[+-]?\d+\.\d{4,}|[+-]?\d{1,3}(,\d{3})+\.\d+")
    comma_groups = some(r"[+-]?\d{1,3}(,\d{3})+")
    dot_groups = some(r"[+-]?\d{1,3}(\.\d{3})+(,\d+)?")
    if comma_decimal and not point_decimal:
        return "comma", ("." if dot_groups else None)
    if comma_groups and (point_decimal or separator != ";"):
        return "point", ","
    return "point", None


def sniff_csv(path: Path) -> dict[str, Any]:
    """csv connector options for the file at ``path`` (without ``path`` and ``time``), and the time column."""
    with path.open("rb") as fh:
        raw = fh.read(SAMPLE_BYTES)
    encoding = encoding_of(raw)
    lines = _lines(_text(raw, encoding))
    if not lines:
        raise KpiError(Diagnostic("the file is empty", Location(str(path))))
    separator, skip = separator_and_preamble(lines[:200])
    rows = list(csv.reader(lines[skip:], delimiter=separator))
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    columns = {name: [r[i] for r in body] for i, name in enumerate(header)}
    options: dict[str, Any] = {}
    if separator != ",":
        options["separator"] = "\\t" if separator == "\t" else separator
    if skip:
        options["skip_rows"] = skip
    if encoding != "utf8":
        options["encoding"] = encoding
    markers = sorted({v.strip() for vs in columns.values() for v in vs if v.strip() in NULL_MARKERS})
    if markers:
        options["null_values"] = markers
    numeric = [v for vs in columns.values() for v in vs if re.fullmatch(r"[+-]?[\d.,]+", v.strip() or "x")]
    decimal, thousands = number_marks(numeric, separator)
    if decimal == "comma":
        options["decimal"] = "comma"
    if thousands:
        options["thousands"] = thousands
    time = time_column(columns)
    if time is not None:
        values = [v.strip() for v in columns[time] if v.strip() and v.strip() not in markers]
        if values and not all(re.match(ISO_RE, v) for v in values):
            options["time_format"] = time_formats(time, values, path)
    return {"options": options, "time": time, "header": header}


def time_column(columns: dict[str, list[str]]) -> str | None:
    """The first column named like a time whose values look like dates, else the first that looks like dates."""
    looks = [
        name
        for name, values in columns.items()
        if values
        and sum(bool(re.search(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|^\d{8}$", v)) for v in values) > len(values) / 2
    ]
    named = [n for n in looks if TIME_NAMES.search(n)]
    return (named or looks or [None])[0]


def time_formats(column: str, values: list[str], path: Path) -> str | list[str]:
    """The fewest strptime formats that read every value (a list when an export mixes them).

    Day-first or month-first is decided by the values themselves: one value such as 2/20/11 settles it for
    the whole column. When no value settles it (or values settle it both ways), the column is refused.
    """
    distinct = list(dict.fromkeys(values))[:2000]
    fits = formats_reading(distinct)
    unread = [v for v, f in fits.items() if not f]
    if unread:
        raise KpiError(
            Diagnostic(
                f"column `{column}` holds times in no format the engine knows, e.g. `{unread[0]}`",
                Location(str(path)),
                hint='declare it on the source: time_format: "..." (strptime codes, e.g. %d.%m.%Y %H:%M)',
            )
        )
    orders = {v: {_order(x) for x in f} - {None} for v, f in fits.items()}
    month_first = [v for v, o in orders.items() if o == {"m"}]  # only month-first formats read it: 2/20/11
    day_first = [v for v, o in orders.items() if o == {"d"}]
    if month_first and day_first:
        raise KpiError(
            Diagnostic(
                f"column `{column}` mixes month-first (`{month_first[0]}`) and day-first (`{day_first[0]}`) dates",
                Location(str(path)),
                hint="re-export the file with one date format",
            )
        )
    order = "m" if month_first else "d" if day_first else None
    if order is None and any(_order(f) for fs in fits.values() for f in fs):
        example = next(v for v, fs in fits.items() if any(_order(f) for f in fs))
        best = next(f for f in fits[example] if _order(f))
        raise KpiError(
            Diagnostic(
                f"column `{column}` holds dates that read both day-first and month-first, e.g. `{example}`: "
                "the engine will not guess which",
                Location(str(path)),
                hint=f'declare it: time_format: "{_month_first(best)}" (US) or time_format: '
                f'"{_swapped(_month_first(best))}" (day first)',
            )
        )
    usable = {v: [f for f in fs if _order(f) in (None, order)] for v, fs in fits.items()}
    left, chosen = distinct, []
    while left:
        counts = Counter(f for v in left for f in usable[v])
        best = max(counts, key=lambda f: (counts[f], -_RANK.get(f, 0)))
        chosen.append(best)
        left = [v for v in left if best not in usable[v]]
    return chosen[0] if len(chosen) == 1 else chosen


def _order(fmt: str) -> str | None:
    """``m`` for a month-before-day format, ``d`` for day-before-month, None when the year comes first."""
    m, d, y = fmt.find("%m"), fmt.find("%d"), max(fmt.find("%Y"), fmt.find("%y"))
    if y < min(m, d):
        return None
    return "m" if m < d else "d"


def _swapped(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _month_first(fmt: str) -> str:
    return fmt if fmt.find("%m") < fmt.find("%d") else _swapped(fmt)
