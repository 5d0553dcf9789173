"""SMART targets: pace maths, every status, measures, relative and auto baselines, forecasts, `kpi check`."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

import kpi_engine
from kpi_engine.spec import Revision, TargetSpec
from kpi_engine.targets import assess, expected_value, span_requests, target_value

from conftest import write_spec

START = dt.date(2026, 1, 1)
DAYS = 181  # 2026-01-01 .. 2026-06-30


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    m = pl.DataFrame(
        {
            "ts": [dt.datetime.combine(d, dt.time(12)) for d in days],
            "v": [100.0 + i for i in range(DAYS)],
            "channel": ["a" if i % 2 else "b" for i in range(DAYS)],
        }
    )
    s = m.filter(pl.col("ts") < dt.datetime(2026, 2, 16))
    return {"m": m, "s": s}


def month_mean(month: int, dims=None) -> float:
    """Independent: the mean of 100 + day index over a month's days."""
    idx = [i for i in range(DAYS) if (START + dt.timedelta(days=i)).month == month]
    if dims:
        idx = [i for i in idx if ("a" if i % 2 else "b") == dims]
    return float(np.mean([100.0 + i for i in idx]))


SPEC = """
version: 1
sources:
  m: {connector: dataframe, time: ts}
  s: {connector: dataframe, time: ts}
kpis:
"""


def evaluate(tmp_path, frames, kpis: str, as_of: dt.date):
    import textwrap

    body = "\n".join("  " + line for line in textwrap.dedent(kpis).strip().splitlines())
    write_spec(tmp_path, SPEC + body + "\n")
    catalog = kpi_engine.load(tmp_path, frames=frames)
    result = catalog.evaluate(as_of, spans=span_requests(catalog.project, as_of))
    return result, assess(result)


# --- pace maths --------------------------------------------------------------------------------------------


def test_linear_pace_path_revisions_and_none():
    t = TargetSpec(
        direction="increase", value=2.5, baseline=1.8, start=dt.date(2026, 4, 1), deadline=dt.date(2026, 6, 30)
    )
    assert expected_value(t, dt.date(2026, 4, 1), 1.8) == 1.8
    days = (dt.date(2026, 5, 12) - dt.date(2026, 4, 1)).days  # 41 of 90 days
    assert expected_value(t, dt.date(2026, 5, 12), 1.8) == pytest.approx(1.8 + 0.7 * days / 90)
    assert expected_value(t, dt.date(2026, 8, 1), 1.8) == 2.5
    assert expected_value(t, dt.date(2026, 3, 1), 1.8) == 1.8
    path = TargetSpec(
        direction="increase",
        value=2.5,
        baseline=1.8,
        start=dt.date(2026, 4, 1),
        deadline=dt.date(2026, 6, 30),
        path=((dt.date(2026, 5, 1), 1.9),),
    )
    assert expected_value(path, dt.date(2026, 5, 1), 1.8) == pytest.approx(1.9)
    assert expected_value(path, dt.date(2026, 4, 16), 1.8) == pytest.approx(1.8 + 0.1 * 15 / 30)
    assert expected_value(path, dt.date(2026, 6, 15), 1.8) == pytest.approx(1.9 + 0.6 * 45 / 60)
    revised = TargetSpec(
        direction="increase",
        value=2.5,
        baseline=1.8,
        start=dt.date(2026, 4, 1),
        deadline=dt.date(2026, 6, 30),
        revisions=(Revision(dt.date(2026, 5, 1), 2.8, "budget up"),),
    )
    assert target_value(revised, dt.date(2026, 4, 30), 1.8) == 2.5
    assert target_value(revised, dt.date(2026, 5, 1), 1.8) == 2.8
    assert expected_value(revised, dt.date(2026, 5, 16), 1.8) == pytest.approx(1.8 + 1.0 * 45 / 90)
    flat = TargetSpec(
        direction="increase",
        value=2.5,
        baseline=1.8,
        start=dt.date(2026, 4, 1),
        deadline=dt.date(2026, 6, 30),
        pace="none",
    )
    assert expected_value(flat, dt.date(2026, 4, 2), 1.8) == 2.5
    relative = TargetSpec(direction="increase", change=0.2, baseline=50.0)
    assert target_value(relative, dt.date(2026, 1, 1), 50.0) == pytest.approx(60.0)


# --- every status ------------------------------------------------------------------------------------------

AS_OF = dt.date(2026, 4, 15)  # last complete month: March, mean 174
MARCH_END_DAYS = (dt.date(2026, 3, 31) - START).days  # 89 of 364


@pytest.fixture(scope="module")
def statuses(tmp_path_factory, frames):
    tmp = tmp_path_factory.mktemp("statuses")
    kpis = """
        at_risk: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 150, value: 250, start: 2026-01-01, deadline: 2026-12-31}}
        on_track: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 140, value: 250, start: 2026-01-01, deadline: 2026-12-31}}
        off_track: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 170, value: 300, start: 2026-01-01, deadline: 2026-12-31}}
        achieved: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 150, value: 170, start: 2026-01-01, deadline: 2026-12-31}}
        not_started: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 150, value: 250, start: 2026-05-01, deadline: 2026-12-31}}
        missed: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 150, value: 250, start: 2026-01-01, deadline: 2026-03-31}}
        no_data: {unit: number, formula: mean(s.v), grain: month, target: {direction: increase, baseline: 150, value: 250, start: 2026-01-01, deadline: 2026-12-31}}
        decrease: {unit: number, formula: mean(m.v), grain: month, target: {direction: decrease, baseline: 200, value: 100, start: 2026-01-01, deadline: 2026-12-31}}
        maintain: {unit: number, formula: mean(m.v), grain: month, target: {direction: maintain, value: 180, tolerance: 10}}
        maintain_risk: {unit: number, formula: mean(m.v), grain: month, target: {direction: maintain, value: 190, tolerance: 10}}
        range_ok: {unit: number, formula: mean(m.v), grain: month, target: {direction: range, min: 170, max: 180}}
        range_off: {unit: number, formula: mean(m.v), grain: month, target: {direction: range, min: 100, max: 150}}
    """
    return evaluate(tmp, frames, kpis, AS_OF)


def test_the_value_under_review_is_the_last_complete_period(statuses):
    _, assessments = statuses
    a = assessments["at_risk"][0]
    assert a.period == "2026-03" and a.value == pytest.approx(month_mean(3))


@pytest.mark.parametrize(
    "kpi, status",
    [
        ("at_risk", "at_risk"),
        ("on_track", "on_track"),
        ("off_track", "off_track"),
        ("achieved", "achieved"),
        ("not_started", "not_started"),
        ("missed", "missed"),
        ("no_data", "no_data"),
        ("decrease", "on_track"),
        ("maintain", "on_track"),
        ("maintain_risk", "at_risk"),
        ("range_ok", "on_track"),
        ("range_off", "off_track"),
    ],
)
def test_every_status(statuses, kpi, status):
    _, assessments = statuses
    assert assessments[kpi][0].status == status, assessments[kpi][0].why


def test_expected_and_band_follow_the_documented_maths(statuses):
    _, assessments = statuses
    a = assessments["at_risk"][0]
    expected = 150 + 100 * MARCH_END_DAYS / 364
    assert a.expected == pytest.approx(expected)
    assert a.band == pytest.approx(10.0)  # 10% of the baseline-to-target gap
    assert expected - 10 <= a.value < expected
    assert a.why.startswith(
        "at risk: 174.00 in 2026-03 vs 174.45 expected by 31 Mar 2026 on the line from 150.00 on 1 Jan 2026 to 250.00 on 31 Dec 2026"
    )
    assert "within the at-risk band of 10.00" in a.why and "forecast" in a.why
    off = assessments["off_track"][0]
    assert off.expected == pytest.approx(170 + 130 * MARCH_END_DAYS / 364) and off.value < off.expected - off.band
    assert assessments["missed"][0].why.startswith(
        "missed: 174.00 in 2026-03 against a target of 250.00 by 31 Mar 2026"
    )
    assert assessments["not_started"][0].why == "not started: the target window opens on 1 May 2026"
    assert assessments["no_data"][0].why.startswith("no data for 2026-03")


def test_forecast_is_least_squares_over_the_window(statuses):
    _, assessments = statuses
    f = assessments["on_track"][0].forecast
    assert f.periods == ("2026-01", "2026-02", "2026-03")
    starts = [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
    x = [(d - starts[0]).days for d in starts]
    slope, intercept = np.polyfit(x, [month_mean(1), month_mean(2), month_mean(3)], 1)
    expected = intercept + slope * (dt.date(2026, 12, 1) - starts[0]).days
    assert f.value == pytest.approx(expected)
    assert f.reaches_target is bool(expected >= 250)
    assert "least squares over 3 month periods" in f.method


def test_insufficient_data_for_a_forecast(tmp_path, frames):
    _, a = evaluate(
        tmp_path,
        frames,
        """
        x: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 100, value: 400, start: 2026-01-01, deadline: 2026-12-31}}
    """,
        dt.date(2026, 2, 10),
    )
    f = a["x"][0].forecast
    assert f.value is None and f.method == "insufficient data: 1 complete periods"
    assert "no forecast (insufficient data" in a["x"][0].why


def test_window_measure_auto_baseline_change_and_dimension_targets(tmp_path, frames):
    result, a = evaluate(
        tmp_path,
        frames,
        """
        total:
          unit: number
          formula: sum(m.v)
          grain: week
          target: {direction: increase, value: 9000, baseline: 0, start: 2026-04-01, deadline: 2026-04-30, measure: window}
        level:
          unit: number
          formula: mean(m.v)
          grain: month
          dimensions: [channel]
          target:
            direction: increase
            baseline: auto
            baseline_period: {start: 2026-01-01, end: 2026-01-31}
            change: +50%
            start: 2026-02-01
            deadline: 2026-12-31
            by: {channel: {a: 170, b: 500}}
    """,
        AS_OF,
    )
    window = a["total"][0]
    april = [100.0 + i for i in range(DAYS) if dt.date(2026, 4, 1) <= START + dt.timedelta(days=i) <= AS_OF]
    assert window.value == pytest.approx(sum(april))
    assert window.period == "1 Apr 2026 to 15 Apr 2026"
    assert window.expected == pytest.approx(9000 * 14 / 29)  # the line from 0 on 1 Apr to 9000 on 30 Apr
    # the cumulative forecast adds the trend of the remaining days to what is already there
    assert window.forecast.value > window.value and "summed to the deadline" in window.forecast.method
    level = a["level"]
    baseline = month_mean(1)
    assert level[0].baseline == pytest.approx(baseline)
    assert level[0].target == pytest.approx(baseline * 1.5)
    by = {x.dims["channel"]: x for x in level[1:]}
    assert by["a"].value == pytest.approx(month_mean(3, "a")) and by["a"].status == "achieved"
    assert by["b"].target == 500 and by["b"].status in ("off_track", "at_risk")


def test_revisions_judge_each_period_by_the_target_in_force(tmp_path, frames):
    _, before = evaluate(
        tmp_path,
        frames,
        """
        level: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 100, value: 160, start: 2026-01-01, deadline: 2026-12-31, revisions: [{from: 2026-04-01, value: 400, reason: board asked for more}]}}
    """,
        AS_OF,
    )
    a = before["level"][0]
    assert a.period == "2026-03" and a.target == 160 and a.status == "achieved"  # March is judged by the old target
    _, after = evaluate(
        tmp_path,
        frames,
        """
        level: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 100, value: 160, start: 2026-01-01, deadline: 2026-12-31, revisions: [{from: 2026-04-01, value: 400, reason: board asked for more}]}}
    """,
        dt.date(2026, 5, 10),
    )
    assert after["level"][0].period == "2026-04" and after["level"][0].target == 400
    assert after["level"][0].status != "achieved"


def _check(path, as_of, *extra):
    return subprocess.run(
        [sys.executable, "-m", "kpi_engine", "check", str(path), "--as-of", as_of, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kpi_check_exit_codes(tmp_path):
    days = [START + dt.timedelta(days=i) for i in range(DAYS)]
    pl.DataFrame(
        {"ts": [dt.datetime.combine(d, dt.time(12)) for d in days], "v": [100.0 + i for i in range(DAYS)]}
    ).write_csv(tmp_path / "m.csv")
    head = "version: 1\nsources:\n  m: {connector: csv, path: m.csv, time: ts}\nkpis:\n"
    cases = {
        0: "  x: {unit: number, key: true, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 140, value: 250, start: 2026-01-01, deadline: 2026-12-31}}\n",
        1: "  x: {unit: number, key: true, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 150, value: 250, start: 2026-01-01, deadline: 2026-12-31}}\n",
        3: "  x: {unit: number, key: true, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 170, value: 300, start: 2026-01-01, deadline: 2026-12-31}}\n"
        "  y: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 170, value: 300, start: 2026-01-01, deadline: 2026-12-31}}\n",
    }
    for code, kpis in cases.items():
        (tmp_path / "k.yaml").write_text(head + kpis)
        res = _check(tmp_path, "2026-04-15")
        assert res.returncode == code, res.stdout + res.stderr
        assert res.stdout.startswith({0: "ON_TRACK", 1: "AT_RISK", 3: "OFF_TRACK"}[code])
        assert " y:" not in res.stdout  # only key KPIs are checked when some are marked
    res = _check(tmp_path, "2026-04-15", "--format", "json", "--kpi", "y")
    assert res.returncode == 3
    import json

    doc = json.loads(res.stdout)
    assert doc["kpis"][0]["id"] == "y" and doc["kpis"][0]["status"] == "off_track" and doc["exit_code"] == 3


def _wilson_reference(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's interval in its closed form (Agresti & Coull 1998, eq. 2), written apart from the engine's."""
    p = k / n
    root = z * np.sqrt(z * z + 4 * n * p * (1 - p))
    return (2 * n * p + z * z - root) / (2 * (n + z * z)), (2 * n * p + z * z + root) / (2 * (n + z * z))


def test_qualitative_kpis_carry_sample_size_and_wilson_interval(tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    days = [dt.datetime(2026, 1, 1) + dt.timedelta(hours=int(h)) for h in np.sort(rng.integers(0, 24 * 90, n))]
    survey = pl.DataFrame({"ts": days, "aware": rng.random(n) < 0.35, "brand": rng.choice(["us", "rival"], n)})
    write_spec(
        tmp_path,
        """
        version: 1
        sources:
          survey: {connector: dataframe, time: ts}
        kpis:
          awareness: {kind: qualitative, unit: percent, formula: 100 * count(survey where aware) / count(survey), grain: month, dimensions: [brand]}
          plain: {unit: percent, formula: 100 * count(survey where aware) / count(survey), grain: month}
    """,
    )
    res = kpi_engine.load(tmp_path, frames={"survey": survey}).evaluate(dt.date(2026, 3, 31))
    frame = res["awareness"]
    assert {"sample_size", "ci_low", "ci_high"} <= set(frame.columns)
    assert "sample_size" not in res["plain"].columns
    for row in frame.iter_rows(named=True):
        month = survey.filter(pl.col("ts").dt.month() == row["start"].month)
        if not row["is_total"]:
            month = month.filter(pl.col("brand") == row["brand"])
        k, total = int(month["aware"].sum()), month.height
        lo, hi = _wilson_reference(k, total)
        assert row["sample_size"] == total
        assert row["value"] == pytest.approx(100 * k / total)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((100 * lo, 100 * hi))
        assert row["ci_low"] < row["value"] < row["ci_high"]


def test_revision_reason_is_part_of_the_why(tmp_path, frames):
    _, a = evaluate(
        tmp_path,
        frames,
        """
        level: {unit: number, formula: mean(m.v), grain: month, target: {direction: increase, baseline: 100, value: 160, start: 2026-01-01, deadline: 2026-12-31, revisions: [{from: 2026-04-01, value: 400, reason: board asked for more}]}}
    """,
        dt.date(2026, 5, 10),
    )
    assert "; target revised to 400.00 from 1 Apr 2026 (board asked for more);" in a["level"][0].why
    from kpi_engine.targets import assessments_json

    assert assessments_json(a["level"])["revision"] == {
        "from": "2026-04-01",
        "value": 400.0,
        "reason": "board asked for more",
    }


@pytest.mark.parametrize(
    "missing, march_value, may_value", [(None, 0.0, None), ("null", None, None), ("zero", 0.0, 0.0)]
)
def test_missing_periods(tmp_path, missing, march_value, may_value):
    # rows in January, February and April only; the data ends on 30 April
    days = [d for d in (START + dt.timedelta(days=i) for i in range(120)) if d.month in (1, 2, 4)]
    frame = pl.DataFrame({"ts": [dt.datetime.combine(d, dt.time(9)) for d in days], "v": [1.0] * len(days)})
    extra = f", missing: {missing}" if missing else ""
    write_spec(
        tmp_path,
        f"""
        version: 1
        sources:
          m: {{connector: dataframe, time: ts}}
        kpis:
          n: {{unit: count, formula: count(m), grain: month{extra}}}
    """,
    )
    res = kpi_engine.load(tmp_path, frames={"m": frame}).evaluate(dt.date(2026, 5, 31))
    values = dict(zip(res["n"]["period"], res["n"]["value"], strict=True))
    assert values["2026-01"] == 31 and values["2026-04"] == 30
    assert values["2026-03"] == march_value  # inside the data, no rows: 0 by default
    assert values["2026-05"] == may_value  # after the data ends: no data unless missing: zero


def test_lint_deadline_before_start_rule():
    from kpi_engine.lint import lint_kpi
    from kpi_engine.spec import Grain, KpiSpec, ReviewSpec, Unit

    kpi = KpiSpec(
        id="x",
        name="x",
        unit=Unit.COUNT,
        formula="count(m)",
        grain=Grain.MONTH,
        owner="o",
        stakeholders=("s",),
        review=ReviewSpec("monthly"),
        target=TargetSpec(
            direction="increase",
            objective="o",
            value=2,
            baseline=1,
            start=dt.date(2026, 6, 1),
            deadline=dt.date(2026, 1, 1),
        ),
    )
    findings = lint_kpi(kpi, None).findings
    assert [(f.letter, f.rule) for f in findings] == [("T", "deadline-before-start")]
