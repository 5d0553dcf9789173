"""Forecast ranges: the least-squares prediction interval checked against the textbook matrix form, its
calibration on simulated series, and the backtest on the demo that docs/performance.md reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kpi_engine.forecast import chance, past_errors, predict, t_cdf, t_quantile

ROOT = Path(__file__).parents[1]


def test_se_matches_the_matrix_form():
    rng = np.random.default_rng(1)
    x = np.arange(20, dtype=float) * 7
    y = 3 + 0.05 * x + rng.normal(0, 1, 20)
    future = np.array([147.0, 154.0, 161.0])
    weights = np.array([1.0, 1.0, 0.5])
    value, se, *_ = predict(x, y, 10, future, weights)
    X = np.column_stack([np.ones(10), x[-10:]])
    beta, *_ = np.linalg.lstsq(X, y[-10:], rcond=None)
    s2 = ((y[-10:] - X @ beta) ** 2).sum() / (10 - 2)
    X0 = np.column_stack([np.ones(3), future])
    var = s2 * (weights @ weights + weights @ X0 @ np.linalg.inv(X.T @ X) @ X0.T @ weights)
    assert value == pytest.approx(weights @ X0 @ beta, rel=1e-12)
    assert se == pytest.approx(np.sqrt(var), rel=1e-9)


@pytest.mark.parametrize(
    ("dof", "q975", "q90"), [(1, 12.7062, 3.0777), (2, 4.3027, 1.8856), (5, 2.5706, 1.4759), (10, 2.2281, 1.3722), (30, 2.0423, 1.3104)]
)
def test_t_quantiles_match_the_tables(dof, q975, q90):
    assert t_quantile(0.975, dof) == pytest.approx(q975, abs=1e-4)
    assert t_quantile(0.9, dof) == pytest.approx(q90, abs=1e-4)
    rng = np.random.default_rng(dof)  # the CDF against numpy's sampler
    draws = rng.standard_t(dof, 200_000)
    for v in (-2.0, 0.5, 1.7):
        assert t_cdf(v, dof) == pytest.approx(float(np.mean(draws <= v)), abs=0.005)


def test_intervals_cover_at_their_rate_on_a_true_line():
    """Series that really are a line plus noise: the t interval is exact there, and past errors only ever widen
    it, so the intervals cover at least their rate, and not much more."""
    rng = np.random.default_rng(7)
    inside = {80: 0, 95: 0}
    trials = 1500
    for _ in range(trials):
        x = np.arange(30, dtype=float)
        y = 10 + 0.3 * x + rng.normal(0, 2, 30)
        value, se, m80, m95, _ = predict(x[:26], y[:26], 12, x[28:29], np.array([1.0]))
        inside[80] += abs(y[28] - value) <= m80 * se
        inside[95] += abs(y[28] - value) <= m95 * se
    assert 78.5 <= 100 * inside[80] / trials <= 87
    assert 94 <= 100 * inside[95] / trials <= 98.5


def test_past_errors_widen_the_interval_of_a_series_the_line_forecasts_badly():
    x = np.arange(40, dtype=float)
    seasonal = 10 + 5 * np.sin(2 * np.pi * x / 13)  # a line cannot follow it: its past errors are large
    _, _, m80, m95, _ = predict(x, seasonal, 6, np.array([41.0]), np.array([1.0]))
    assert len(past_errors(x, seasonal, 6)) >= 8
    assert m80 > t_quantile(0.9, 4) * 1.5 and m95 > m80


def test_check_reports_the_range_and_the_chance(example_dir):
    run = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "check", str(example_dir), "--as-of", "2026-05-20", "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (ctr,) = [k for k in json.loads(run.stdout)["kpis"] if k["id"] == "ctr"]
    f = ctr["forecast"]
    lo80, hi80 = f["interval_80"]
    lo95, hi95 = f["interval_95"]
    assert lo95 < lo80 < f["value"] < hi80 < hi95
    assert f["value"] == pytest.approx((lo80 + hi80) / 2, rel=1e-9)
    assert 0 <= f["probability"] <= 1 and "chance of reaching the target" in ctr["why"]
    # the target (increase to 2.5) read from the same t distribution the 80% range comes from
    dof = len(f["periods"]) - 2
    scale = (hi80 - f["value"]) / t_quantile(0.9, dof)
    assert f["probability"] == pytest.approx(1 - t_cdf((2.5 - f["value"]) / scale, dof), rel=1e-9)


def test_chance_for_each_direction():
    from kpi_engine.model import TargetSpec

    p = 1 - t_cdf(1.0, 30)
    assert chance(TargetSpec("increase"), 10, 1, 30, 11) == pytest.approx(p)
    assert chance(TargetSpec("decrease"), 10, 1, 30, 11) == pytest.approx(1 - p)
    assert chance(TargetSpec("maintain", tolerance=1), 10, 1, 30, 10) == pytest.approx(1 - 2 * p)
    assert chance(TargetSpec("range", min=9, max=12), 10, 1, 30, None) == pytest.approx(t_cdf(2, 30) - t_cdf(-1, 30))
    assert chance(TargetSpec("increase"), 10, 0, 30, 9) == 1.0


def test_backtest_on_the_demo_covers_at_the_stated_rates(tmp_path):
    """The figures in docs/performance.md: rolling-origin coverage within 5 points of 80% and 95%."""
    results = tmp_path / "bt.jsonl"
    run = subprocess.run(
        [sys.executable, "bench/backtest.py", "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    line = json.loads(results.read_text().splitlines()[-1])
    overall = line["all"]
    assert overall["forecasts"] > 4000
    assert abs(overall["coverage_80"] - 80) <= 5 and abs(overall["coverage_95"] - 95) <= 5, overall
    assert abs(line["week"]["coverage_80"] - 80) <= 5 and abs(line["week"]["coverage_95"] - 95) <= 5
