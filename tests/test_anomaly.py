"""Anomalies: the robust seasonal baseline checked against a plain re-implementation, its behaviour on
weekday patterns and past spikes, the `anomaly` alert end to end, and the demo evaluation in the docs."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from kpi_engine.anomaly import PATTERNS, baselines, judge
from kpi_engine.cli import main

ROOT = Path(__file__).parents[1]
DAY = PATTERNS["day"]


def weekday_series(days: int = 200, seed: int = 3) -> np.ndarray:
    """Sessions-like: weekends at 60% of weekdays, a slow trend, noise of 3% of the level."""
    rng = np.random.default_rng(seed)
    t = np.arange(days)
    level = 1000 + 0.5 * t
    return level * np.where(t % 7 >= 5, 0.6, 1.0) * (1 + rng.normal(0, 0.03, days))


def test_baseline_and_z_match_a_plain_reimplementation():
    v = weekday_series()
    v[50] = np.nan  # a day without data
    t = 180

    def level(d: int) -> float:
        return statistics.median([x for x in v[max(0, d - 28) : d] if not np.isnan(x)])

    def expected(d: int) -> float:
        offsets = [v[d - 7 * k] - level(d - 7 * k) for k in range(1, 9) if not np.isnan(v[d - 7 * k])]
        return level(d) + statistics.median(offsets)

    left = [v[d] - expected(d) for d in range(t - 56, t) if not np.isnan(v[d])]
    centre = statistics.median(left)
    scale = 1.4826 * statistics.median([abs(x - centre) for x in left])
    verdict = judge(v, t, DAY)
    assert verdict.expected == pytest.approx(expected(t), rel=1e-12)
    assert verdict.scale == pytest.approx(scale, rel=1e-12)
    assert verdict.z == pytest.approx((v[t] - expected(t)) / scale, rel=1e-12)
    assert baselines(v[: t + 1], DAY)[t] == pytest.approx(expected(t), rel=1e-12)


def test_weekends_are_not_anomalies_but_a_tuesday_spike_is():
    v = weekday_series()
    saturdays = [t for t in range(120, 200) if t % 7 == 5]
    assert not any(judge(v, t, DAY).unusual(DAY.threshold) for t in saturdays)  # 40% below a weekday: usual
    naive = [(v[t] - np.median(v[t - 28 : t])) / (1.4826 * np.median(np.abs(v[t - 28 : t] - np.median(v[t - 28 : t])))) for t in saturdays]
    assert min(naive) < -DAY.threshold / 2  # a detector without the weekday pattern would see them fall
    tuesday = 183
    assert tuesday % 7 == 1
    spiked = v.copy()
    spiked[tuesday] *= 1.25
    verdict = judge(spiked, tuesday, DAY)
    assert verdict.unusual(DAY.threshold) and verdict.z > 0


def test_a_past_spike_neither_bends_the_baseline_nor_widens_the_scale():
    v = weekday_series()
    calm = judge(v, 190, DAY)
    spiked = v.copy()
    spiked[170] *= 3  # a Black Friday 20 days before
    after = judge(spiked, 190, DAY)
    assert after.expected == pytest.approx(calm.expected, rel=0.01)
    assert after.scale == pytest.approx(calm.scale, rel=0.1)


SPEC = """
version: 1
sources:
  visits: {{connector: csv, path: visits.csv, time: ts}}
channels:
  hook: {{type: webhook, url: "${{env:TEST_ANOMALY_URL}}"}}
delivery:
  channels: [hook]
kpis:
  visits: {{unit: count, formula: count(visits), grain: week, alerts: [{{anomaly: 4, by: day}}]}}
"""


def write(tmp_path: Path, spike: float) -> Path:
    v = weekday_series(180)
    v[-1] *= spike
    start = dt.datetime(2026, 1, 5)  # a Monday, so that the weekday pattern falls on real weekdays
    ts = [start + dt.timedelta(days=d, minutes=m) for d, n in enumerate(np.round(v).astype(int)) for m in range(n)]
    pl.DataFrame({"ts": ts}).write_csv(tmp_path / "visits.csv")
    (tmp_path / "kpis.yaml").write_text(SPEC.format())
    return tmp_path, (start + dt.timedelta(days=len(v))).date()  # the morning after the last day


@pytest.mark.parametrize(("spike", "fires"), [(1.0, False), (0.5, True)])
def test_the_anomaly_alert_judges_the_last_day(tmp_path: Path, spike: float, fires: bool):
    from receivers import http_receiver

    spec, day_after = write(tmp_path, spike)
    with http_receiver() as web:
        res = CliRunner().invoke(
            main, ["alerts", str(spec), "--now", f"{day_after}T09:00", "--history", str(tmp_path / "h.sqlite")],
            env={"TEST_ANOMALY_URL": web.url},
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert bool(web.requests) is fires
        if fires:
            (alert,) = web.requests[0].json()["alerts"]
            assert alert["condition"] == "anomaly 4 by day"
            assert "typical deviations below its usual" in alert["why"] and "580 on 3 Jul 2026" in alert["why"] and "for a Friday" in alert["why"]


def test_demo_evaluation_keeps_its_promises(tmp_path: Path):
    """The figures docs/delivery.md gives: at most one false alert per KPI per quarter at every grain, and
    recall of 3-sigma changes for KPIs whose spread is mostly their weekly pattern."""
    results = tmp_path / "an.jsonl"
    run = subprocess.run([sys.executable, "bench/anomaly.py", "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = {j["grain"]: j for j in map(json.loads, results.read_text().splitlines())}
    assert set(lines) == {"day", "week", "month"}
    for line in lines.values():
        assert line["kpis_over_one_false_alert_a_quarter"] == 0, line
    assert lines["week"]["recall"] >= 0.75 and lines["week"]["precision"] >= 0.85
    for kpi in ("sessions", "ad_spend", "unique_visitors", "mentions_count"):
        assert lines["day"]["per_kpi"][kpi]["recall"] >= 0.9, kpi
