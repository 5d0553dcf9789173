"""What aggregates over entities read beyond their period: the source's rows up to as-of (``History``), and
each entity's first row (``first_seen``), which an incremental run keeps between runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class History:
    """What ``new`` and ``active(k)`` read: the source's rows up to as-of, and its calendar at the group's grain."""

    frame: pl.LazyFrame  # the source's shared frame
    date: str  # its local-date column
    time: str  # its time column: orders an entity's rows, to find its first
    period_of: Callable[[pl.Expr], pl.Expr]  # date -> start of its period
    shift: Callable[[pl.Expr, int], pl.Expr]  # period start -> start of the period n later
    horizon: dt.date  # the first day after as-of
    since: dt.date | None = None  # periods from this one only (incremental): active/over_next read from there
    first: Mapping[str, pl.LazyFrame] | None = None  # per entity column: ``first_seen``, kept (incremental)

    def rows_from(self, periods_before: int) -> pl.LazyFrame:
        """The rows from ``periods_before`` periods before ``since`` (every row without ``since``)."""
        if self.since is None:
            return self.frame
        first = self.shift(pl.lit(self.since), -periods_before) if periods_before else pl.lit(self.since)
        return self.frame.filter(pl.col(self.date) >= first)


def first_seen(rows: pl.LazyFrame, per: str, dims: Iterable[str], date: str, time: str) -> pl.LazyFrame:
    """Each entity's first day (``__first``) and the dimension values of its first row (what ``new`` reads)."""
    order = [time, *dims]
    return (
        rows.filter(pl.col(per).is_not_null())
        .group_by(per)
        .agg(
            pl.col(date).min().alias("__first"),
            *[pl.col(d).sort_by(order, nulls_last=False).first().alias(f"__first_{d}") for d in dims],
        )
    )
