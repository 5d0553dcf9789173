"""Compiling conversions (funnels) to polars: each last step's row matched back, step by step, to the row of
the first step it converts, with as-of joins by entity."""

from __future__ import annotations

import datetime as dt

import polars as pl

from .ir import Conversions


def conversion_query(
    base: pl.LazyFrame, keys: list[str], agg: Conversions, base_time: str, steps: list[tuple[pl.LazyFrame, str]]
) -> pl.LazyFrame:
    """Conversions per period and dimension values (column ``__n``): every row of the last step is matched to
    the latest row of the step before by the same entity at or before it, that one likewise, back to ``base``,
    whose row must be less than ``agg.within`` days before the last step's (strictly: a row exactly 7 days
    earlier is outside a 7-day window); then counted in that row's keys. ``steps`` are the frames of
    ``agg.matched`` with their time columns. Rows of ``base`` at the same instant are told apart by their
    dimension values, the greatest wins. Taking the latest row at each step finds a chain whenever one fits."""
    at = lambda c: pl.col(c).cast(pl.Datetime("us"))  # noqa: E731 - dates and timestamps alike
    window = None if agg.within is None else dt.timedelta(days=agg.within) - dt.timedelta(microseconds=1)
    by = ["__who", *agg.same]
    (frame, time), key = steps[-1], agg.target_key
    chain = (
        frame.filter(pl.col(key).is_not_null())
        .select(pl.col(key).alias("__who"), *agg.same, at(time).alias("__at"))
        .with_columns(pl.col("__at").alias("__step_at"))
    )
    for (frame, time), (_, key) in reversed(list(zip(steps[:-1], agg.via, strict=True))):
        rows = frame.filter(pl.col(key).is_not_null()).select(
            pl.col(key).alias("__who"), *agg.same, at(time).alias("__prev_at")
        )
        chain = (
            _latest_before(chain.sort("__step_at"), rows.sort("__prev_at"), "__step_at", "__prev_at", by, window)
            .drop("__step_at")
            .rename({"__prev_at": "__step_at"})
        )
    opportunities = (
        base.filter(pl.col(agg.per).is_not_null())
        .select(
            *keys,
            pl.col(agg.per).alias("__who"),
            *[c for c in agg.same if c not in keys],
            at(base_time).alias("__base_at"),
        )
        .sort(["__base_at", *keys[1:]], nulls_last=False)
    )
    matched = _latest_before(chain.sort("__step_at"), opportunities, "__step_at", "__base_at", by, window)
    if agg.via and window is not None:  # each step was within the window of the next; the chain must be too
        matched = matched.filter(pl.col("__at") - pl.col("__base_at") <= window)
    return matched.group_by(keys).agg(pl.len().cast(pl.Int64).alias("__n"))


def _latest_before(
    left: pl.LazyFrame, right: pl.LazyFrame, left_on: str, right_on: str, by: list[str], window: dt.timedelta | None
) -> pl.LazyFrame:
    """Each row of ``left`` with the latest row of ``right`` at or before it by the same ``by`` values, no more
    than ``window`` before; rows with none are dropped. Both sides come sorted by their time."""
    joined = left.join_asof(
        right,
        left_on=left_on,
        right_on=right_on,
        by=by,
        strategy="backward",
        tolerance=window,
        check_sortedness=False,  # both sides are sorted by the caller; polars cannot check it within `by` groups
    )
    return joined.filter(pl.col(right_on).is_not_null())
