"""The dates the engine accepts, everywhere: in data, specs and on the command line (no polars here).

A misread year (0011 for "11"), a placeholder (9999-12-31) or a typo lands outside and is reported, instead of
stretching a series over millennia or overflowing date arithmetic.
"""

from __future__ import annotations

import datetime as dt

from .model import MAX_DATE, MIN_DATE

__all__ = ["MAX_DATE", "MIN_DATE"]


def out_of_range(day: dt.date) -> str | None:
    """Why ``day`` is refused, or None when the engine can use it."""
    if MIN_DATE <= day <= MAX_DATE:
        return None
    return f"{day.isoformat()} is outside the dates the engine reads ({MIN_DATE} to {MAX_DATE})"
