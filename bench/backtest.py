"""Backtest of the deadline forecast on the shipped demo: a rolling origin over every KPI's series.

    python bench/backtest.py                 # every quantitative KPI of kpi_specs/, weekly and monthly
    python bench/backtest.py --kpi ctr       # one KPI

At each origin the engine's forecaster (``kpi_engine.forecast.predict``: a least-squares line over the
``--window`` periods before the origin, intervals calibrated on its own earlier errors) sees only the periods
before the origin and predicts 1 to ``--horizon`` periods ahead.
Reported: the mean absolute percentage error of the point forecast (MAPE) and how often the realised value
fell inside the 80% and 95% intervals, overall and per grain. Appends a JSON line to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
ROOT = HERE.parent


def series(spec_path: Path, as_of: dt.date, only: list[str]) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Each plain quantitative KPI's complete, fully covered total periods: (grain, day offsets, values)."""
    import kpi_engine

    catalog = kpi_engine.load(spec_path)
    result = catalog.evaluate(as_of, kpis=only or None)
    out = {}
    for kpi_id, frame in result.series.items():
        spec = catalog.project.kpis[kpi_id]
        if spec.kind != "quantitative" or spec.window or spec.grain.value not in ("week", "month"):
            continue
        rows = frame.filter(
            pl.col("is_total") & pl.col("complete") & pl.col("has_data") & (pl.col("coverage") >= 1)
        ).sort("start")
        rows = rows.filter(pl.col("value").is_not_null())
        if rows.height < 16:
            continue
        origin = rows["start"][0]
        x = np.array([(d - origin).days for d in rows["start"]], dtype=float)
        out[kpi_id] = (spec.grain.value, x, rows["value"].to_numpy().astype(float))
    return out


def backtest(x: np.ndarray, y: np.ndarray, window: int, horizon: int) -> list[tuple[float, bool, bool]]:
    """(absolute % error, inside 80%, inside 95%) for every origin and horizon, each forecast made by the
    engine's own ``predict`` from the periods before its origin only."""
    from kpi_engine.forecast import predict

    out = []
    for end in range(window, len(y) - 1):
        for h in range(1, horizon + 1):
            if end - 1 + h >= len(y):
                break
            actual = y[end - 1 + h]
            point, se, m80, m95, _ = predict(x[:end], y[:end], window, x[end - 1 + h : end + h], np.array([1.0]))
            ape = abs(point - actual) / abs(actual) * 100 if actual else float("nan")
            out.append((ape, abs(actual - point) <= m80 * se, abs(actual - point) <= m95 * se))
    return out


def summary(rows: list[tuple[float, bool, bool]]) -> dict[str, float]:
    errors = [r[0] for r in rows if r[0] == r[0]]
    return {
        "forecasts": len(rows),
        "mape": round(float(np.mean(errors)), 2),
        "median_ape": round(float(np.median(errors)), 2),
        "coverage_80": round(100 * float(np.mean([r[1] for r in rows])), 1),
        "coverage_95": round(100 * float(np.mean([r[2] for r in rows])), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "kpi_specs")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 7, 1))
    parser.add_argument("--window", type=int, default=12, help="periods the line is fitted on")
    parser.add_argument("--horizon", type=int, default=4, help="periods ahead")
    parser.add_argument("--kpi", action="append", default=[])
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    args = parser.parse_args()
    data = series(args.spec, args.as_of, args.kpi)
    if not data:
        sys.exit("no KPI with 16 complete periods to backtest")
    by_grain: dict[str, list] = {}
    print(f"{'kpi':<36} {'grain':<6} {'n':>5} {'MAPE':>7} {'median':>7} {'80% in':>7} {'95% in':>7}")
    for kpi_id, (grain, x, y) in sorted(data.items()):
        rows = backtest(x, y, args.window, args.horizon)
        by_grain.setdefault(grain, []).extend(rows)
        s = summary(rows)
        print(
            f"{kpi_id:<36} {grain:<6} {s['forecasts']:>5} {s['mape']:>6.1f}% {s['median_ape']:>6.1f}% {s['coverage_80']:>6.1f}% {s['coverage_95']:>6.1f}%"
        )
    everything = [r for rows in by_grain.values() for r in rows]
    totals = {"all": summary(everything), **{g: summary(rows) for g, rows in sorted(by_grain.items())}}
    for name, s in totals.items():
        print(
            f"{name:<36} {'':<6} {s['forecasts']:>5} {s['mape']:>6.1f}% {s['median_ape']:>6.1f}% {s['coverage_80']:>6.1f}% {s['coverage_95']:>6.1f}%"
        )
    line = {"bench": "forecast_backtest", "as_of": str(args.as_of), "window": args.window, "horizon": args.horizon,
            "kpis": len(data), **{f"{k}": v for k, v in totals.items()}}  # fmt: skip
    with args.results.open("a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
