"""Compiling conversions (funnels) to polars: each last step's row matched back, step by step, to the row of
the first step it converts, with as-of joins by entity.

An as-of join ``by`` entity hashes the rows into groups; when the entity is an integer or a text (and no
other column must match), the entity and the time are packed instead into one 128-bit key, entity in the high
64 bits and microseconds in the low ones, and the join is one merge of two sorted columns (2x faster at 10M
rows). Keys of two entities are 2^64 apart, far more than any window, so no match crosses entities.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from .ir import Conversions

_HIGH = pl.lit(2**64, dtype=pl.Int128)
_ANY_TIME = 2**62  # µs: more than any two readable instants apart, less than two entities' keys


def packing(dtypes: list[pl.DataType], agg: Conversions) -> str | None:
    """Whether the entity columns (one per step) pack with the time into one key: as integers ("int"), as
    the codes of a categorical ("text"), or not at all (None: matched ``by``)."""
    if agg.same:
        return None
    if all(t.is_integer() for t in dtypes):
        return "int"
    return "text" if all(isinstance(t, pl.String | pl.Categorical) for t in dtypes) else None


def conversion_query(
    base: pl.LazyFrame,
    keys: list[str],
    agg: Conversions,
    base_time: str,
    steps: list[tuple[pl.LazyFrame, str]],
    packed: str | None = None,
) -> pl.LazyFrame:
    """Conversions per period and dimension values (column ``__n``): every row of the last step is matched to
    the latest row of the step before by the same entity at or before it, that one likewise, back to ``base``,
    whose row must be less than ``agg.within`` days before the last step's (strictly: a row exactly 7 days
    earlier is outside a 7-day window); then counted in that row's keys. ``steps`` are the frames of
    ``agg.matched`` with their time columns; ``packed`` is their ``packing``. Rows of ``base`` at the same instant
    are told apart by their dimension values, the greatest wins. Taking the latest row at each step finds a
    chain whenever one fits."""
    at = lambda c: pl.col(c).cast(pl.Datetime("us"))  # noqa: E731 - dates and timestamps alike
    window = None if agg.within is None else dt.timedelta(days=agg.within) - dt.timedelta(microseconds=1)
    match = _Match(["__who", *agg.same], window, packed)
    (frame, time), key = steps[-1], agg.target_key
    chain = (
        frame.filter(pl.col(key).is_not_null())
        .select(match.who(key), *agg.same, at(time).alias("__at"))
        .with_columns(pl.col("__at").alias("__step_at"))
    )
    for (frame, time), (_, key) in reversed(list(zip(steps[:-1], agg.via, strict=True))):
        rows = frame.filter(pl.col(key).is_not_null()).select(match.who(key), *agg.same, at(time).alias("__prev_at"))
        chain = match.latest_before(chain, rows, "__step_at", "__prev_at").drop("__step_at")
        chain = chain.rename({"__prev_at": "__step_at"})
    opportunities = base.filter(pl.col(agg.per).is_not_null()).select(
        *keys, match.who(agg.per), *[c for c in agg.same if c not in keys], at(base_time).alias("__base_at")
    )
    matched = match.latest_before(chain, opportunities, "__step_at", "__base_at", ties=keys[1:])
    if agg.via and window is not None:  # each step was within the window of the next; the chain must be too
        matched = matched.filter(pl.col("__at") - pl.col("__base_at") <= window)
    return matched.group_by(keys).agg(pl.len().cast(pl.Int64).alias("__n"))


class _Match:
    """How rows of two steps are matched: as-of joins ``by`` entity (and constant properties), or on one
    packed key."""

    def __init__(self, by: list[str], window: dt.timedelta | None, packed: str | None) -> None:
        self.by, self.window, self.packed = by, window, packed

    def who(self, column: str) -> pl.Expr:
        """The entity column as ``__who``; packed, a text becomes its (process-wide) categorical code."""
        who = pl.col(column)
        if self.packed == "text":
            who = who.cast(pl.String).cast(pl.Categorical).to_physical()
        return who.alias("__who")

    def latest_before(
        self, left: pl.LazyFrame, right: pl.LazyFrame, left_on: str, right_on: str, ties: list[str] = ()
    ) -> pl.LazyFrame:
        """Each row of ``left`` with the latest row of ``right`` at or before it for the same entity, no more
        than the window before; rows with none are dropped. Of right rows at the same instant, the one with
        the greatest ``ties`` values (nulls first) wins."""
        if not self.packed:
            joined = left.sort(left_on).join_asof(
                right.sort([right_on, *ties], nulls_last=False),
                left_on=left_on,
                right_on=right_on,
                by=self.by,
                strategy="backward",
                tolerance=self.window,
                check_sortedness=False,  # both sides are sorted just above; polars cannot check within groups
            )
            return joined.filter(pl.col(right_on).is_not_null())
        key = lambda t: pl.col("__who").cast(pl.Int128) * _HIGH + pl.col(t).dt.epoch("us").cast(pl.Int128)  # noqa: E731
        # keys of one entity are less than 2^54 apart (the engine reads days from 1900 to 2199), keys of two
        # at least 2^64 - 2^54: a match never crosses entities, window or not
        tolerance = _ANY_TIME if self.window is None else self.window // dt.timedelta(microseconds=1)
        joined = (
            left.with_columns(key(left_on).alias("__key"))
            .sort("__key")
            .join_asof(
                right.with_columns(key(right_on).alias("__key_r"))
                .drop("__who")
                .sort(["__key_r", *ties], nulls_last=False),
                left_on="__key",
                right_on="__key_r",
                strategy="backward",
                tolerance=tolerance,
                check_sortedness=False,  # sorted just above
            )
        )
        return joined.filter(pl.col(right_on).is_not_null()).drop("__key", "__key_r")
