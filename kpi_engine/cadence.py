"""Review cadences: on which days a KPI is reviewed, and which period each review covers."""

from __future__ import annotations

import datetime as dt
import re

from .errors import did_you_mean
from .model import WEEKDAYS, Calendar, Grain, ReviewSpec

NAMED = ("weekly", "biweekly", "monthly", "quarterly")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_DAY_RE = re.compile(
    r"^(?:(first|second|third|fourth|last)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)$"
)


def _is_cron(text: str) -> bool:
    from croniter import croniter

    return len(text.split()) in (5, 6) and croniter.is_valid(text)


def check(review: ReviewSpec) -> tuple[str, str, str | None] | None:
    """The first problem of a review block as (field, message, hint), or None when it is valid."""
    cadence = review.cadence.strip()
    if cadence not in NAMED and not _is_cron(cadence):
        hint = did_you_mean(cadence, NAMED) or "or a cron expression such as `0 9 * * 1` (Mondays)"
        return "cadence", f"invalid value `{cadence}`", f"{hint}; expected weekly, biweekly, monthly, quarterly or cron"
    if review.day is None:
        return None
    if cadence not in NAMED:
        return "day", "`day` does not apply to a cron cadence", "the cron expression already says which days"
    day = review.day.strip().lower()
    match = _DAY_RE.match(day)
    if cadence in ("weekly", "biweekly"):
        if not match or match.group(1):
            return "day", f"invalid review day `{review.day}` for a {cadence} cadence", "a weekday, e.g. monday"
        return None
    if match or (day.isdigit() and 1 <= int(day) <= 28):
        return None
    return "day", f"invalid review day `{review.day}`", "e.g. `first monday`, `last friday` or a day of the month 1-28"


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> dt.date:
    if nth > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _monthly_day(review: ReviewSpec, cal: Calendar, year: int, month: int) -> dt.date:
    day = (review.day or "").strip().lower()
    if day.isdigit():
        return dt.date(year, month, int(day))
    match = _DAY_RE.match(day) if day else None
    if match:
        return _nth_weekday(year, month, WEEKDAYS.index(match.group(2)), ORDINALS[match.group(1) or "first"])
    return _nth_weekday(year, month, cal.week_start, 1)


def review_days(review: ReviewSpec, cal: Calendar, start: dt.date, end: dt.date) -> list[dt.date]:
    """Every review day from ``start`` to ``end`` (inclusive)."""
    cadence = review.cadence.strip()
    out: list[dt.date] = []
    if cadence in ("weekly", "biweekly"):
        weekday = WEEKDAYS.index(review.day.strip().lower()) if review.day else cal.week_start
        day = start + dt.timedelta(days=(weekday - start.weekday()) % 7)
        while day <= end:
            if cadence == "weekly" or _biweekly_on(review, day):
                out.append(day)
            day += dt.timedelta(days=7)
        return out
    if cadence in ("monthly", "quarterly"):
        year, month = start.year, start.month
        while dt.date(year, month, 1) <= end:
            months_into_quarter = (month - cal.fiscal_year_start) % 3
            if cadence == "monthly" or months_into_quarter == 0:
                day = _monthly_day(review, cal, year, month)
                if start <= day <= end:
                    out.append(day)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out
    from croniter import croniter

    it = croniter(cadence, dt.datetime.combine(start - dt.timedelta(days=1), dt.time.max))
    while True:
        day = it.get_next(dt.datetime).date()
        if day > end:
            return out
        if not out or out[-1] != day:
            out.append(day)


def _biweekly_on(review: ReviewSpec, day: dt.date) -> bool:
    if review.anchor is not None:
        return ((day - review.anchor).days // 7) % 2 == 0
    return day.isocalendar()[1] % 2 == 0


def is_due(review: ReviewSpec, cal: Calendar, day: dt.date) -> bool:
    return review_days(review, cal, day, day) == [day]


def previous_review(review: ReviewSpec, cal: Calendar, day: dt.date) -> dt.date | None:
    """The review before ``day`` (within two years), for 'since the last review' comparisons."""
    days = review_days(review, cal, day - dt.timedelta(days=740), day - dt.timedelta(days=1))
    return days[-1] if days else None


def covered_span(review: ReviewSpec, cal: Calendar, day: dt.date) -> tuple[dt.date, dt.date]:
    """The last complete cadence period before a review on ``day``: (first day, last day)."""
    from . import periods

    cadence = review.cadence.strip()
    if cadence in ("weekly", "biweekly"):
        current = periods.start_of(day, Grain.WEEK, cal)
        weeks = 1 if cadence == "weekly" else 2
        return periods.shift(current, Grain.WEEK, -weeks), current - dt.timedelta(days=1)
    if cadence in ("monthly", "quarterly"):
        grain = Grain.MONTH if cadence == "monthly" else Grain.QUARTER
        current = periods.start_of(day, grain, cal)
        return periods.shift(current, grain, -1), current - dt.timedelta(days=1)
    previous = previous_review(review, cal, day)
    return (previous or day - dt.timedelta(days=7)), day - dt.timedelta(days=1)


def cadence_days(review: ReviewSpec) -> int:
    """Typical days between two reviews (to compare a cadence with a target window)."""
    cadence = review.cadence.strip()
    fixed = {"weekly": 7, "biweekly": 14, "monthly": 30, "quarterly": 91}
    if cadence in fixed:
        return fixed[cadence]
    start = dt.date(2026, 1, 1)
    days = review_days(review, Calendar(), start, start + dt.timedelta(days=366))
    if len(days) < 2:
        return 366
    return round((days[-1] - days[0]).days / (len(days) - 1))
