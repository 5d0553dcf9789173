"""What a period reads, and what changed: the per-day fingerprint of a source's rows, the first changed day,
and from it which periods an incremental run recomputes (``cutoff``) and from which day their rows are read
(``reads_from``)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from . import periods
from .compile import DATE
from .ir import Conversions, Seen, periods_ahead
from .model import MIN_DATE, Calendar
from .nodes import find_all
from .plan import GroupRequest, Plan

FORMAT = 1  # bump when what is stored changes meaning
ALL = MIN_DATE  # a cutoff recomputing every period


def fingerprint(frame: pl.DataFrame) -> pl.DataFrame:
    """Per local day: how many rows, and the wrapping sum of their hashes over every column."""
    columns = sorted(frame.columns)
    return (
        frame.lazy()
        .group_by(DATE)
        .agg(pl.len().cast(pl.Int64).alias("rows"), pl.struct(columns).hash(seed=FORMAT).sum().alias("hash"))
        .sort(DATE)
        .collect()
    )


def by_day(printed: pl.DataFrame) -> pl.DataFrame:
    """A source's fingerprint per day, over all its files (counts and hash sums add up across files)."""
    return printed.group_by(DATE).agg(pl.col("rows").sum(), pl.col("hash").sum()).sort(DATE)


def new_entities(group: GroupRequest) -> list[str]:
    """The entity columns whose ``new`` the group asks about (what ``lifetimes.first_seen`` is kept for)."""
    return sorted(
        {
            a.per
            for r in group.aggs.values()
            if (a := r.agg).per is not None
            for s in find_all(a, Seen)
            if s.kind == "new"
        }
    )


def reads_from(group: GroupRequest, cut: dt.date, plan: Plan, first_kept: bool = False) -> dt.date:
    """The first day of rows the group's periods from ``cut`` on read: their own days, a window's or a lag's
    earlier days, ``active(-k)``'s k periods before; the whole history for ``new`` (an entity's first row may
    be anywhere) unless each entity's first row is ``first_kept``, and for conversions without ``within``."""
    aggs = [r.agg for r in group.aggs.values()]
    seen = [s for a in aggs if a.per is not None for s in find_all(a, Seen)]
    history = any(a.per is not None or isinstance(a, Conversions) for a in aggs)
    grain = group.grain
    if any(isinstance(a, Conversions) and a.within is None for a in aggs):
        return ALL
    if not first_kept and any(s.kind == "new" for s in seen):
        return ALL
    if isinstance(grain, periods.Span):  # (a to-date window, new each day: its own days only)
        return ALL if history else grain.start - dt.timedelta(days=max((a.lag for a in aggs), default=0))
    if cut <= ALL or (history and isinstance(grain, periods.Trailing)):
        return ALL
    if isinstance(grain, periods.Trailing):
        cut = periods.window_first(cut, grain, plan.calendar) or ALL
    back = max([0, *(-s.offset for s in seen if s.kind == "active")])
    return periods.shift(cut, grain, -back) - dt.timedelta(days=max((a.lag for a in aggs), default=0))


def first_change(old: pl.DataFrame | None, new: pl.DataFrame) -> dt.date | None:
    """The first day whose rows differ between two fingerprints (None: the same rows)."""
    if old is None:
        return ALL
    joined = old.join(new, on=DATE, how="full", coalesce=True, suffix="_new")
    differ = joined.filter(
        pl.col("rows").ne_missing(pl.col("rows_new")) | pl.col("hash").ne_missing(pl.col("hash_new"))
    )
    return differ[DATE].min() if differ.height else None  # type: ignore[return-value]


def matched(group: GroupRequest) -> list[str]:
    """The other sources the group's conversions match rows in (their rows count in its periods too)."""
    return [s for r in group.aggs.values() if isinstance(r.agg, Conversions) for s, _ in r.agg.matched]


def reach(group: GroupRequest) -> tuple[int, int] | None:
    """How far after a period its value looks, in periods and days; None when without bound."""
    ahead, days = 0, 0
    for r in group.aggs.values():
        if isinstance(r.agg, Conversions):
            if r.agg.within is None:
                return None
            days = max(days, r.agg.within)
        ahead = max(ahead, periods_ahead(r.agg))
    return ahead, days


def cutoff(
    grain: periods.Period, changed: dt.date | None, ahead: tuple[int, int] | None, cal: Calendar
) -> dt.date | None:
    """The first period start to recompute when rows changed from ``changed`` on (None: reuse every period).

    Period ``p`` must be recomputed when the last day it reads, ``end_of(shift(p, k)) + days``, is on or
    after ``changed``; that is ``p >= shift(start_of(changed - days), -k)``.
    """
    if changed is None:
        return None
    if ahead is None or changed <= ALL:
        return ALL
    k, days = ahead
    day = changed - dt.timedelta(days=days)
    if isinstance(grain, periods.Span):
        return grain.start if periods.end_of(periods.shift(grain.start, grain, k), grain) >= day else None
    return periods.shift(periods.start_of(day, grain, cal), grain, -k)
