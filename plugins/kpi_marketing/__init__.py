"""First-party marketing metric functions, registered through the same hook a third party would use.

- ``nps(score)``: net promoter score of 0-10 answers: % promoters (9-10) minus % detractors (0-6).
- ``share_top_box(score, top)``: share of answers at or above ``top`` (e.g. CSAT 4-5 of 5).
"""

from __future__ import annotations

import polars as pl

from kpi_engine import FunctionCall, MetricFunction, hookimpl


def _nps(score: pl.Expr) -> pl.Expr:
    answered = score.count()
    # counts of booleans are unsigned: cast before subtracting, or more detractors than promoters wraps around
    promoters = (score >= 9).sum().cast(pl.Int64)
    detractors = (score <= 6).sum().cast(pl.Int64)
    return pl.when(answered > 0).then(100 * (promoters - detractors) / answered).otherwise(None)


def _constant_top(call: FunctionCall) -> str | None:
    """The threshold is one number for every row: a column there would silently use its first value."""
    top = call.constants.get(1)
    if isinstance(top, bool) or not isinstance(top, int | float):
        return f"the threshold must be a number, e.g. share_top_box({call.args[0]}, 4), not `{call.args[1]}`"
    return None


def _top_box(score: pl.Expr, top: pl.Expr) -> pl.Expr:
    answered = score.count()
    return pl.when(answered > 0).then((score >= top.first()).sum() / answered).otherwise(None)


@hookimpl
def register_functions(register) -> None:  # type: ignore[no-untyped-def]
    register(MetricFunction("nps", _nps, doc="Net promoter score of 0-10 answers (-100 to 100)"))
    register(
        MetricFunction(
            "share_top_box",
            _top_box,
            min_args=2,
            max_args=2,
            arg_kinds=("num", "num"),
            check=_constant_top,
            doc="Share of answers at or above a threshold, e.g. share_top_box(survey.score, 4)",
        )
    )
