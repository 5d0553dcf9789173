"""Source options the engine itself reads (not a connector): where data may live and how times are read.

Checked when specs load, before any data is touched, so that a bad zone or format is reported with its line.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import Diagnostic, ErrorCollector, Location, did_you_mean
from .yaml_loader import Positions


def data_root(data: Mapping[str, Any], base_dir: Path, pos: Positions, errors: ErrorCollector) -> tuple[Path, ...]:
    """The spec file's ``data_root:`` folder (relative to the file), which must exist."""
    if "data_root" not in data:
        return ()
    root = (base_dir / str(data["data_root"])).resolve()
    if not root.is_dir():
        errors.add(
            f"data_root `{data['data_root']}` is not a folder ({root})",
            pos.location(("data_root",)),
            hint="data_root is relative to the spec file, e.g. data_root: ../data",
        )
        return ()
    return (root,)


def check_time_options(body: Mapping[str, Any], locations: Mapping[str, Location], errors: ErrorCollector) -> None:
    """A source's ``time_zone`` must be an IANA zone and each ``time_format`` must read what it writes."""
    if "time_zone" in body:
        try:
            zoneinfo.ZoneInfo(body["time_zone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors.add(
                f"unknown time zone `{body['time_zone']}`",
                locations["time_zone"],
                expected="an IANA time zone such as Europe/London",
                hint=did_you_mean(body["time_zone"], zoneinfo.available_timezones()),
            )
    raw = body.get("time_format") or ()
    for fmt in (raw,) if isinstance(raw, str) else raw:
        if not format_round_trips(fmt):
            errors.add(
                f"time_format `{fmt}` cannot read the dates it describes",
                locations["time_format"],
                expected='strptime codes with a year, month and day, e.g. "%m/%d/%Y %H:%M" or "%Y%m%d"',
                hint="codes: %Y year, %y two-digit year, %m month, %d day, %H:%M:%S time, %b month name",
            )


def format_round_trips(fmt: str) -> bool:
    """Whether a strptime format holds a full date and reads back a timestamp it wrote."""
    has_year = "%Y" in fmt or "%y" in fmt
    has_month = any(c in fmt for c in ("%m", "%b", "%B"))
    if not (has_year and has_month and "%d" in fmt):
        return False
    sample = dt.datetime(2031, 11, 27, 13, 45, 51, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    python_fmt = fmt.replace("%:z", "%z").replace("%.f", "")
    try:
        back = dt.datetime.strptime(sample.strftime(python_fmt), python_fmt)
    except ValueError:
        return False
    return back.date() == sample.date()


MAX_NUMBER = 1e300  # past this a number is a typo or an attack; float arithmetic on it overflows


def bad_number_paths(data: Any, path: tuple = ()) -> list[tuple]:
    """Where the numbers that ``bad_numbers`` refuses are."""
    if isinstance(data, Mapping):
        return [p for key, value in data.items() for p in bad_number_paths(value, (*path, key))]
    if isinstance(data, list):
        return [p for i, value in enumerate(data) for p in bad_number_paths(value, (*path, i))]
    if isinstance(data, float) and not math.isfinite(data):
        return [path]
    if isinstance(data, int | float) and not isinstance(data, bool) and abs(data) > MAX_NUMBER:
        return [path]
    return []


def bad_numbers(data: Any, pos: Positions) -> list[Diagnostic]:
    """Every number of a spec must be finite and of a sane size: ``.nan`` or ``.inf`` in a target would
    make every status meaningless, and a 400-digit integer overflows floats."""
    out: list[Diagnostic] = []
    for path in bad_number_paths(data):
        out += _bad_number(data, pos, path)
    return out


def _bad_number(doc: Any, pos: Positions, path: tuple) -> list[Diagnostic]:
    data = doc
    for key in path:
        data = data[key]
    out: list[Diagnostic] = []
    if isinstance(data, float) and not math.isfinite(data):
        out.append(
            Diagnostic(
                f"`{data}` is not a finite number",
                pos.location(path),
                expected="a finite number (not .nan, .inf or -.inf)",
                hint="write the value the target or param stands for",
            )
        )
    elif isinstance(data, int | float) and not isinstance(data, bool) and abs(data) > MAX_NUMBER:
        shown = str(data) if len(str(data)) < 30 else f"{str(data)[:12]}... ({len(str(data))} digits)"
        out.append(
            Diagnostic(
                f"number {shown} is too large",
                pos.location(path),
                expected=f"a number of at most {MAX_NUMBER:g} in size",
            )
        )
    return out
