"""Anomaly detection on the demo: recall on injected spikes and drops, and false alerts on the data as it is.

    python bench/anomaly.py                      # every quantitative KPI of kpi_specs/, by day and by its grain
    python bench/anomaly.py --threshold-day 3.5  # another threshold for daily series

Each KPI of the shipped demo is evaluated twice over two years: by day, and at its own grain (week or month).
Over the last 364 days (four quarters):
- **clean**: the detector judges every period against the periods before it. An alert is what `kpi alerts`
  would send: the first unusual period of a run of them (a run is notified once). Every alert is false except
  in the 28 days after a dated event of the spec (`events:`: the summer launch moves the level of most KPIs
  on 2 March 2026, a real change the detector should report);
- **injected**: one period at a time (26 days 14 days apart, 26 weeks 2 weeks apart, or every month), the value
  is moved by 3 sigma, up and down in turn, where sigma is the standard deviation of the series over the 13
  weeks before (the spread its chart shows, weekday swings included); a drop stops at 0 for KPIs that are
  never negative. Recall is the share detected; precision sets them against the clean false alerts.
Appends a JSON line to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
ROOT = HERE.parent
DAYS = 364
EVERY = 14


def series(spec_path: Path, as_of: dt.date) -> tuple[dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], list]:
    """grain -> KPI -> (its total values, oldest first, NaN where a period has no data; whether each period
    is within 28 days after a dated event), for every quantitative KPI by day and at its own week or month
    grain; and the events."""
    import kpi_engine
    from kpi_engine.alerts import daily

    catalog = kpi_engine.load(spec_path)
    events = [e.date for e in catalog.project.events]
    ids = [  # a to-date or running window climbs all month: not a series with a usual value
        k.id
        for k in catalog.project.kpis.values()
        if k.kind == "quantitative" and (k.window is None or k.window.days is not None)
    ]
    wider, names = daily(catalog, ids)
    result = wider.evaluate(as_of, kpis=ids + list(names.values()))
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for kpi_id in ids:
        grain = catalog.project.kpis[kpi_id].grain.value
        for key, g in ((names.get(kpi_id), "day"), (kpi_id, grain)):
            frame = result.series.get(key or "")
            if frame is None or g not in ("day", "week", "month") or (key == kpi_id and g == "day"):
                continue
            rows = frame.filter(pl.col("is_total") & pl.col("complete")).sort("start")
            values = np.array([np.nan if v is None else v for v in rows["value"].to_list()], dtype=float)
            values[~rows["has_data"].to_numpy()] = np.nan
            real = np.array(
                [
                    any((end - e).days >= 0 and (start - e).days < 28 for e in events)
                    for start, end in rows.select("start", "end").iter_rows()
                ]
            )
            if np.isfinite(values).mean() >= 0.8:
                out.setdefault(g, {})[kpi_id] = (values, real)
    return out, events


PERIODS = {"day": (364, 14, 91), "week": (52, 2, 13), "month": (12, 1, 3)}  # evaluated, injection gap, sigma from


def evaluate(values: np.ndarray, grain: str, threshold: float, real: np.ndarray) -> dict[str, int]:
    """``real``: the periods after a dated event, where an alert is not false."""
    from kpi_engine.anomaly import PATTERNS, baselines, judge

    pattern = PATTERNS[grain]
    days, gap, spread = PERIODS[grain]
    expected = baselines(values, pattern)
    start = len(values) - days
    flags = [judge(values, t, pattern, expected).unusual(threshold) for t in range(start - 1, len(values))]
    false = sum(
        now and not before and not real[start + i]
        for i, (before, now) in enumerate(zip(flags, flags[1:], strict=False))
    )
    nonneg = np.nanmin(values) >= 0
    found = injected = 0
    for i, t in enumerate(range(start, len(values), gap)):
        sigma = float(np.nanstd(values[max(0, t - spread) : t]))
        if not np.isfinite(values[t]) or sigma == 0:
            continue
        moved = values.copy()  # the baseline of period t reads only earlier periods: one injection at a time
        moved[t] = values[t] + (3 if i % 2 == 0 else -3) * sigma
        if nonneg:
            moved[t] = max(moved[t], 0.0)
        injected += 1
        found += judge(moved, t, pattern, expected).unusual(threshold)
    return {"false_alerts": int(false), "injected": injected, "found": found}


def main() -> None:
    from kpi_engine.anomaly import PATTERNS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "kpi_specs")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 7, 1))
    for grain in PATTERNS:
        parser.add_argument(f"--threshold-{grain}", type=float, default=PATTERNS[grain].threshold)
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    args = parser.parse_args()
    data, _ = series(args.spec, args.as_of)
    for grain, by_kpi in sorted(data.items()):
        threshold = getattr(args, f"threshold_{grain}")
        rows = {k: evaluate(v, grain, threshold, real) for k, (v, real) in sorted(by_kpi.items())}
        print(f"by {grain}, threshold {threshold}: {'kpi':<34} {'false/quarter':>13} {'recall':>7}")
        for k, r in rows.items():
            print(f"{'':<24}{k:<34} {r['false_alerts'] / 4:>13.2f} {r['found'] / max(r['injected'], 1):>7.2f}")
        found = sum(r["found"] for r in rows.values())
        injected = sum(r["injected"] for r in rows.values())
        false = sum(r["false_alerts"] for r in rows.values())
        summary = {
            "kpis": len(rows),
            "injected": injected,
            "recall": round(found / injected, 3),
            "precision": round(found / max(found + false, 1), 3),
            "false_alerts_per_kpi_quarter": round(false / len(rows) / 4, 2),
            "kpis_over_one_false_alert_a_quarter": sum(r["false_alerts"] > 4 for r in rows.values()),
            "per_kpi": {
                k: {
                    "recall": round(r["found"] / max(r["injected"], 1), 3),
                    "false_alerts_per_quarter": r["false_alerts"] / 4,
                }
                for k, r in rows.items()
            },
        }
        print(f"{'':<24}{'all':<34} {summary['false_alerts_per_kpi_quarter']:>13.2f} {summary['recall']:>7.2f}  "
              f"precision {summary['precision']:.2f}; {summary['kpis_over_one_false_alert_a_quarter']} KPIs over one false alert a quarter")  # fmt: skip
        with args.results.open("a") as f:
            line = {"bench": "anomaly", "grain": grain, "as_of": str(args.as_of), "threshold": threshold, **summary}
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
