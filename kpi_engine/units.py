"""Values as people read them, by unit."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable

from .model import Unit


def format_value(value: float | None, unit: Unit, extra: int = 0) -> str:
    """A value as a person reads it: 2.31%, 1,234.50, 1,234, 12.5 min (``extra`` more digits when asked)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit is Unit.PERCENT:
        return f"{value:,.{2 + extra}f}%"
    if unit is Unit.CURRENCY:
        return f"{value:,.{2 + extra}f}"
    if unit is Unit.COUNT:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.{2 + extra}f}"
    suffix = {Unit.MINUTES: " min", Unit.SECONDS: " s", Unit.HOURS: " h", Unit.DAYS: " d"}.get(unit, "")
    return f"{value:,.{3 + extra}g}{suffix}" if abs(value) < 1 else f"{value:,.{2 + extra}f}{suffix}"


def formatter(
    values: Iterable[float | None], unit: Unit, written: Iterable[float | None] = ()
) -> Callable[[float | None], str]:
    """``format_value`` with enough decimals that values which differ read differently (0.0175% and
    0.0190%, not 0.02% and 0.02%), and that numbers ``written`` in the spec (a target of 0.835) print as
    written; values equal within 1e-9 relative may still print alike."""
    literal = [float(v) for v in written if v is not None and math.isfinite(v)]
    values = [*values, *literal]
    present = sorted({float(v) for v in values if v is not None and math.isfinite(v)})
    distinct = [(a, b) for a, b in zip(present, present[1:], strict=False) if not math.isclose(a, b, rel_tol=1e-9)]
    extra = max((_short_decimals(v, unit) for v in literal), default=0)
    while extra < 12 and any(format_value(a, unit, extra) == format_value(b, unit, extra) for a, b in distinct):
        extra += 1
    return lambda v: format_value(v, unit, extra)


def _short_decimals(value: float, unit: Unit) -> int:
    """The extra decimals a number written in the spec (a target of 0.835, a tolerance of 0.125) needs to
    print as written: 0.835 has no exact binary form and would round to 0.83."""
    if unit not in (Unit.PERCENT, Unit.CURRENCY) and not (unit is Unit.COUNT and not float(value).is_integer()):
        return 0
    for extra in range(4):
        if abs(round(value, 2 + extra) - value) <= 1e-9 * max(1.0, abs(value)):
            return extra
    return 0


def format_date(day: dt.date) -> str:
    """12 May 2026: unambiguous in every locale."""
    return f"{day.day} {day.strftime('%b %Y')}"


def format_change(change: float | None, unit: Unit) -> str:
    """A difference between two values: +0.19 pp for percentages, -1,234.50 for money, +12 for counts; a
    change too small for the usual digits gets more (+0.004 pp, never +0.00 pp for a real change)."""
    if change is None:
        return "–"
    if abs(change) < 1e-9:  # float summation noise, not a change
        change = 0.0
    extra = 0
    while extra < 8 and change != 0 and not re.search(r"[1-9]", format_value(abs(change), unit, extra)):
        extra += 1
    text = format_value(abs(change), unit, extra)
    if unit is Unit.PERCENT:
        text = text.removesuffix("%") + " pp"
    return ("+" if change >= 0 else "-") + text


def format_move(value: float, before: float, unit: Unit) -> str:
    """A change as the unit calls for: points for percentages (+0.19 pp), else relative (-5.3%); against 0 a
    relative change is undefined, so it is the difference (+12)."""
    if unit is Unit.PERCENT or before == 0:
        return format_change(value - before, unit)
    rel = 100 * (value - before) / abs(before)
    digits = 1
    while digits < 6 and rel != 0 and f"{abs(rel):.{digits}f}".strip("0.") == "":
        digits += 1
    return f"{rel:+.{digits}f}%"
