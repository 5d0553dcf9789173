"""The report's breakdowns: one period's values by each dimension, largest first, the top N and one "other"
row recomputed from sums (a ratio's other is its numerator's rest over its denominator's rest, never an
average of ratios), values that are 0 or empty left out. JSON and CSV keep every row: they are data.

A KPI with several dimensions is broken down by each one: sums and ratios of sums add up over the other
dimensions exactly; for other formulas (distinct counts, means) a value cannot be rebuilt from its parts, so
their breakdown is by the combination of values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from .frame import by_dimension
from .model import KpiSpec
from .moved import NULL_LABEL, by_value, part_ids, parts
from .units import format_value

DEFAULT_TOP = 10
OTHER = "other"


@dataclass
class Breakdown:
    dim: str
    period: str
    rows: list[dict[str, Any]]  # label, value, text (the last may be "other")
    hidden: int = 0  # values left out for being 0 or empty


def breakdowns(result: Any, kpi: KpiSpec, current: dict[str, Any] | None) -> list[Breakdown]:
    """One breakdown per dimension of the period ``current`` (the scorecard's), top N plus other."""
    frame = result.series.get(kpi.id)
    if not kpi.dimensions or current is None or frame is None:
        return []
    bound = result.bound_of(kpi.id)
    shape = parts(bound) if bound is not None else None
    start = current["start"]
    rows = by_dimension(frame).filter(pl.col("start") == start)
    top = kpi.top or DEFAULT_TOP
    if shape is None and len(kpi.dimensions) > 1:  # no marginal: by the combination of values
        combos = {
            " · ".join(NULL_LABEL if r[d] is None else str(r[d]) for d in kpi.dimensions): r["value"]
            for r in rows.iter_rows(named=True)
        }
        return [_shown(" × ".join(kpi.dimensions), current["period"], combos, top, kpi, None)]
    out = []
    for dim in kpi.dimensions:
        values, rest = _values(result, kpi, rows, dim, start, shape)
        out.append(_shown(dim, current["period"], values, top, kpi, rest))
    return out


def _values(
    result: Any, kpi: KpiSpec, rows: pl.DataFrame, dim: str, start: Any, shape: tuple | None
) -> tuple[dict[str, Any], Callable[[list[str]], float | None] | None]:
    """Each value of ``dim`` in the period (the KPI's own rows for one dimension, else added up over the
    others), and how to rebuild a set of values together: sums add, a ratio is its numerators' sum over
    its denominators' sum (None: the formula cannot be rebuilt from parts)."""
    if len(kpi.dimensions) == 1:
        values = {(NULL_LABEL if r[dim] is None else str(r[dim])): r["value"] for r in rows.iter_rows(named=True)}
    elif shape is not None and shape[0] == "sum":
        values = dict(by_value(result.series[kpi.id], dim, start)[0])
    else:
        values = {}
    if shape is None:
        return values, None
    if shape[0] == "sum":
        return values, lambda names: math.fsum(values[n] or 0.0 for n in names)
    if not all(p in result.parts for p in part_ids(kpi.id)):
        return values, None
    num, den = (by_value(result.parts[p], dim, start)[0] for p in part_ids(kpi.id))
    scale = shape[3]
    if len(kpi.dimensions) > 1:
        values = {v: (scale * num.get(v, 0.0) / d if d else None) for v, d in den.items()}

    def ratio(names: list[str]) -> float | None:
        d = math.fsum(den.get(n, 0.0) for n in names)
        return scale * math.fsum(num.get(n, 0.0) for n in names) / d if d else None

    return values, ratio


def _shown(dim: str, period: str, values: dict[str, Any], top: int, kpi: KpiSpec, rest: Any) -> Breakdown:
    """The top values (0 and empty left out), and the others as one row when they can be rebuilt."""
    kept = sorted(((k, v) for k, v in values.items() if v), key=lambda kv: (-kv[1], kv[0]))
    hidden = len(values) - len(kept)
    rows = [{"label": k, "value": v, "text": format_value(v, kpi.shown)} for k, v in kept[:top]]
    others = [k for k, _ in kept[top:]]
    if others:
        value = rest(others) if rest is not None else None
        label = f"{OTHER} ({len(others)} values)"
        rows.append({"label": label, "value": value, "text": format_value(value, kpi.shown), "other": True})
    return Breakdown(dim, period, rows, hidden)
