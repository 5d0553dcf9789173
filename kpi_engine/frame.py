"""The series frame's row protocol in one place: which rows are totals, per dimension value, complete.

Every KPI series (``Result.series``) has the columns ``series.SERIES_COLUMNS`` plus its dimensions and
``value``; these helpers are how the rest of the engine selects rows from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl


def totals(frame: pl.DataFrame | None) -> pl.DataFrame:
    """The total rows (over every dimension value); an empty frame for no frame."""
    return frame.filter(pl.col("is_total")) if frame is not None else pl.DataFrame()


def rows_for(frame: pl.DataFrame, dims: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """The total rows, or with ``dims`` the rows of those dimension values."""
    if not dims:
        return totals(frame)
    cond = ~pl.col("is_total")
    for name, value in dims.items():
        cond = cond & (pl.col(name) == value)
    return frame.filter(cond)


def by_dimension(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of single dimension values (not the totals)."""
    return frame.filter(~pl.col("is_total"))


def complete_totals(frame: pl.DataFrame) -> pl.DataFrame:
    """Total rows of periods that have ended by as-of."""
    return frame.filter(pl.col("is_total") & pl.col("complete"))


def total_row(frame: pl.DataFrame | None) -> dict[str, Any] | None:
    """The first total row as a dict, or None."""
    rows = totals(frame) if frame is not None and frame.height else pl.DataFrame()
    return rows.row(0, named=True) if rows.height else None
