"""`kpi lint`: each SMART rule fires on a KPI built to break it, and only there."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest

GOOD = (
    "owner: ops, stakeholders: [sales], review: {cadence: monthly}, "
    "target: {objective: Grow., direction: increase, baseline: 174, value: 250, start: 2026-04-01, deadline: 2026-12-31}"
)


@pytest.fixture(scope="module")
def linted(tmp_path_factory):
    root = tmp_path_factory.mktemp("lint")
    start = dt.datetime(2026, 1, 1, 12)
    pl.DataFrame(
        {"ts": [start + dt.timedelta(days=i) for i in range(181)], "v": [100.0 + i for i in range(181)]}
    ).write_csv(root / "m.csv")
    meeting = "{cadence: weekly, meeting: Growth}"
    target = (
        "{objective: Grow., direction: increase, baseline: 174, value: 250, start: 2026-04-01, deadline: 2026-12-31}"
    )
    lines = [
        f"  smart: {{unit: score, formula: mean(m.v), grain: month, {GOOD}}}",
        "  no_target: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: monthly}}",
        "  no_objective: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: monthly}, target: {direction: increase, baseline: 174, value: 250, start: 2026-04-01, deadline: 2026-12-31}}",
        f"  generic_unit: {{unit: number, formula: mean(m.v), grain: month, {GOOD}}}",
        f"  zero_denominator: {{unit: ratio, formula: sum(m.v) / count(m where v > 1000), grain: month, {GOOD}}}",
        "  no_baseline: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: monthly}, target: {objective: Grow., direction: increase, value: 250, start: 2026-04-01, deadline: 2026-12-31}}",
        "  baseline_off: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: monthly}, target: {objective: Grow., direction: increase, baseline: 100, value: 250, start: 2026-04-01, deadline: 2026-12-31}}",
        "  steep: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: monthly}, target: {objective: Grow., direction: increase, baseline: 174, value: 474, start: 2026-04-01, deadline: 2026-06-30}}",
        f"  no_owner: {{unit: score, formula: mean(m.v), grain: month, stakeholders: [x], review: {{cadence: monthly}}, target: {target}}}",
        f"  no_stakeholders: {{unit: score, formula: mean(m.v), grain: month, owner: ops, review: {{cadence: monthly}}, target: {target}}}",
        "  no_deadline: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: monthly}, target: {objective: Grow., direction: increase, baseline: 174, value: 250}}",
        f"  no_review: {{unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], target: {target}}}",
        "  slow_cadence: {unit: score, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], review: {cadence: quarterly}, target: {objective: Grow., direction: increase, baseline: 174, value: 180, start: 2026-04-01, deadline: 2026-05-01}}",
    ]
    for i in range(6):
        lines.append(
            f"  key_{i}: {{unit: count, key: true, formula: mean(m.v), grain: month, owner: ops, stakeholders: [x], "
            f"review: {meeting}, target: {target}}}"
        )
    (root / "k.yaml").write_text(
        "version: 1\nsources:\n  m: {connector: csv, path: m.csv, time: ts}\nkpis:\n" + "\n".join(lines) + "\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "lint", str(root), "--as-of", "2026-06-30", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return root, json.loads(res.stdout)


@pytest.mark.parametrize(
    "kpi, letter, rule",
    [
        ("no_target", "M", "no-target"),
        ("no_target", "S", "no-objective"),
        ("no_objective", "S", "no-objective"),
        ("generic_unit", "M", "generic-unit"),
        ("zero_denominator", "M", "zero-denominator"),
        ("no_baseline", "A", "no-baseline"),
        ("baseline_off", "A", "baseline-off"),
        ("steep", "A", "steep-target"),
        ("no_owner", "R", "no-owner"),
        ("no_stakeholders", "R", "no-stakeholders"),
        ("no_deadline", "T", "no-deadline"),
        ("no_review", "T", "no-review"),
        ("slow_cadence", "T", "cadence-too-slow"),
    ],
)
def test_each_rule_fires(linted, kpi, letter, rule):
    _, doc = linted
    report = doc["kpis"][kpi]
    assert {"letter": letter, "rule": rule} in [{k: f[k] for k in ("letter", "rule")} for f in report["findings"]]
    assert report["letters"][letter] is False and report["score"] < 5


def test_a_smart_kpi_has_no_findings(linted):
    _, doc = linted
    assert doc["kpis"]["smart"] == {"score": 5, "letters": dict.fromkeys("SMART", True), "findings": []}
    # rules fire only where they should: the single-fault KPIs fail exactly one letter
    for kpi in ("generic_unit", "zero_denominator", "baseline_off", "steep", "no_owner", "no_review", "slow_cadence"):
        assert doc["kpis"][kpi]["score"] == 4, (kpi, doc["kpis"][kpi]["findings"])


def test_messages_say_why(linted):
    _, doc = linted
    steep = doc["kpis"]["steep"]["findings"][0]["message"]
    assert steep.startswith(
        "needs 100 per month for 3 periods, over 3x the best month-on-month improvement ever seen ("
    )
    off = doc["kpis"]["baseline_off"]["findings"][0]["message"]
    assert off == "baseline 100 is far from the KPI's actual 174 in 2026-03 (more than 25% apart)"
    assert (
        "undefined (division by zero or by nothing) in 6 of 6 complete periods"
        in doc["kpis"]["zero_denominator"]["findings"][0]["message"]
    )


def test_meeting_warning_and_strict_exit(linted):
    root, doc = linted
    assert doc["warnings"] == ["meeting `Growth` reviews 6 key KPIs: focus on 3 to 5"]
    res = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "lint", str(root), "--as-of", "2026-06-30", "--strict"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "warning: meeting `Growth` reviews 6 key KPIs" in res.stderr
    assert "S M A R T  5/5  smart" in res.stdout


def test_the_readme_lists_the_rules_as_the_table_has_them():
    """Issue 12, item 8: the rules are one table and the README's list is generated from it."""
    from pathlib import Path

    from kpi_engine.lint import RULES, rules_markdown

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("<!-- lint rules: generated from kpi_engine/lint.py RULES")[1].split("-->", 1)[1]
    assert block.split("<!-- end of lint rules -->")[0].strip() == rules_markdown()
    assert len({r.code for r in RULES}) == len(RULES)
