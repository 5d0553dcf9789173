"""Values as people read them, by unit."""

from __future__ import annotations

import datetime as dt
import math

from .spec import Unit


def format_value(value: float | None, unit: Unit) -> str:
    """A value as a person reads it: 2.31%, 1,234.50, 1,234, 12.5 min."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit is Unit.PERCENT:
        return f"{value:,.2f}%"
    if unit is Unit.CURRENCY:
        return f"{value:,.2f}"
    if unit is Unit.COUNT:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    suffix = {Unit.MINUTES: " min", Unit.SECONDS: " s", Unit.HOURS: " h", Unit.DAYS: " d"}.get(unit, "")
    return f"{value:,.3g}{suffix}" if abs(value) < 1 else f"{value:,.2f}{suffix}"


def format_date(day: dt.date) -> str:
    """12 May 2026: unambiguous in every locale."""
    return f"{day.day} {day.strftime('%b %Y')}"


def format_change(change: float | None, unit: Unit) -> str:
    """A difference between two values: +0.19 pp for percentages, -1,234.50 for money, +12 for counts."""
    if change is None:
        return "–"
    if unit is Unit.PERCENT:
        return f"{change:+,.2f} pp"
    return ("+" if change >= 0 else "-") + format_value(abs(change), unit)
