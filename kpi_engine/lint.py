"""SMART lint: is each KPI specific, measurable, achievable, relevant and time-bound? With a reason per miss.

Rules (letter, code):
  S no-objective        the target states no objective
  M no-target           no target to measure progress against
  M generic-unit        unit is the generic `number`
  M zero-denominator    the formula divides by zero (or nothing) in most complete periods
  M fractional-count    a `count` KPI has values that are not whole numbers (a float column, shifted rows)
  A no-baseline         an increase/decrease target without a baseline cannot be paced
  A baseline-off        the baseline is more than 25% away from the KPI's value just before the start
  A steep-target        the target needs a per-period improvement over 3x the best ever observed
  R no-owner            nobody owns the KPI
  R no-stakeholders     no stakeholders are named
  T no-deadline         the target has no deadline (or no start)
  T deadline-before-start
  T no-review           no review cadence
  T cadence-too-slow    reviews are further apart than the whole target window
Meeting warning: more than 5 key KPIs in one meeting (focus on 3 to 5).

A KPI with ``role: diagnostic`` explains other KPIs and has no target of its own: instead of the target rules
(no-objective, no-target, no-deadline) it is asked for a description (S no-description).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import cadence, periods
from .api import Result
from .frame import complete_totals
from .model import KpiSpec, Project, Unit

LETTERS = ("S", "M", "A", "R", "T")
BASELINE_TOLERANCE = 0.25
STEEPNESS = 3.0
MAX_KEY_PER_MEETING = 5


@dataclass(frozen=True)
class Finding:
    letter: str
    rule: str
    message: str


@dataclass
class KpiLint:
    kpi: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def letters(self) -> dict[str, bool]:
        failed = {f.letter for f in self.findings}
        return {letter: letter not in failed for letter in LETTERS}

    @property
    def score(self) -> int:
        return sum(self.letters.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "letters": self.letters,
            "findings": [{"letter": f.letter, "rule": f.rule, "message": f.message} for f in self.findings],
        }


def lint_kpi(kpi: KpiSpec, result: Result | None) -> KpiLint:
    out = KpiLint(kpi.id)
    add = lambda letter, rule, message: out.findings.append(Finding(letter, rule, message))  # noqa: E731
    t = kpi.target
    diagnostic = kpi.role == "diagnostic"
    if diagnostic and not kpi.description:
        add("S", "no-description", "no description: say which KPI this one helps explain, and how (`description:`)")
    if not diagnostic and (t is None or not t.objective):
        add("S", "no-objective", "no objective: say what the target is for, e.g. `objective: Lift CTR to 2.5% by Q2`")
    if t is None and not diagnostic:
        add("M", "no-target", "no target: add a `target` with a direction and a value (or `role: diagnostic`)")
    if kpi.unit is Unit.NUMBER:
        add("M", "generic-unit", "unit is the generic `number`: say what it measures (count, currency, percent...)")
    if t is not None and t.direction in ("increase", "decrease") and t.baseline is None and not t.baseline_auto:
        add("A", "no-baseline", "no baseline: give `baseline` (or `baseline: auto` with a `baseline_period`)")
    if not kpi.owner:
        add("R", "no-owner", "no owner: name the team or person accountable (`owner:`)")
    if not kpi.stakeholders:
        add("R", "no-stakeholders", "no stakeholders: name who relies on this KPI (`stakeholders: [...]`)")
    if t is None and diagnostic:
        pass  # time-bound through its review cadence
    elif t is None or t.deadline is None or t.start is None:
        add("T", "no-deadline", "no time bound: the target needs a `start` and a `deadline`")
    elif t.deadline <= t.start:
        add("T", "deadline-before-start", f"deadline {t.deadline} is not after start {t.start}")
    if kpi.review is None:
        add("T", "no-review", "no review cadence: add `review: {cadence: weekly}` (or monthly...)")
    elif t is not None and t.start and t.deadline and t.deadline > t.start:
        window = (t.deadline - t.start).days
        every = cadence.cadence_days(kpi.review)
        if every > window:
            add(
                "T",
                "cadence-too-slow",
                f"reviews every ~{every} days, longer than the {window}-day target window: "
                "it would not be reviewed before the deadline",
            )
    if result is not None and kpi.id in result.series:
        _data_rules(kpi, result, add)
    return out


def _history(frame: pl.DataFrame) -> pl.DataFrame:
    return complete_totals(frame).filter(pl.col("has_data"))


def _data_rules(kpi: KpiSpec, result: Result, add) -> None:  # type: ignore[no-untyped-def]
    history = _history(result.series[kpi.id])
    if kpi.unit is Unit.COUNT and not history["value"].dtype.is_integer():
        odd = history.filter(pl.col("value").is_not_null() & (pl.col("value") != pl.col("value").round(0)))
        if odd.height:
            add(
                "M",
                "fractional-count",
                f"a count that is not a whole number: {odd['value'][0]:g} in {odd['period'][0]} ({odd.height} of "
                f"{history.height} periods); check the formula sums a whole-number column, or change the unit",
            )
    if history.height >= 3 and history["value"].null_count() > history.height / 2:
        add(
            "M",
            "zero-denominator",
            f"the value is undefined (division by zero or by nothing) in {history['value'].null_count()} of "
            f"{history.height} complete periods",
        )
    t = kpi.target
    if t is None or t.start is None or t.direction not in ("increase", "decrease"):
        return
    from .forecast import bound_expr, is_additive

    if t.measure == "window" and is_additive(bound_expr(result, kpi.id)):
        return  # a cumulative target starts from zero: per-period history says nothing about its baseline
    before = history.filter((pl.col("end") < t.start) & pl.col("value").is_not_null())
    baseline = t.baseline
    if baseline is not None and before.height:
        actual = before["value"][-1]
        if actual and abs(baseline - actual) > BASELINE_TOLERANCE * abs(actual):
            add(
                "A",
                "baseline-off",
                f"baseline {baseline:g} is far from the KPI's actual {actual:.4g} in {before['period'][-1]} "
                f"(more than {BASELINE_TOLERANCE:.0%} apart)",
            )
    from .targets import target_value

    final = target_value(t, t.deadline or t.start, baseline)
    if baseline is None or final is None or t.deadline is None or before.height < 3:
        return
    n_periods = len(periods.period_range(t.start, t.deadline, kpi.grain, result.project.calendar))
    required = (final - baseline) / max(n_periods, 1)
    sign = 1 if t.direction == "increase" else -1
    steps = before["value"].diff().drop_nulls() * sign
    best = steps.max() if steps.len() else None
    if best is not None and best > 0 and sign * required > STEEPNESS * best:
        add(
            "A",
            "steep-target",
            f"needs {abs(required):.4g} per {kpi.grain.value} for {n_periods} periods, over {STEEPNESS:g}x the best "
            f"{kpi.grain.value}-on-{kpi.grain.value} improvement ever seen ({best:.4g})",
        )
    elif best is not None and best <= 0 and sign * required > 0:
        add(
            "A",
            "steep-target",
            f"needs a steady improvement, but the KPI has never improved {kpi.grain.value} on {kpi.grain.value}",
        )


def meeting_warnings(project: Project) -> list[str]:
    counts = Counter((k.review.meeting or "(no meeting)") for k in project.kpis.values() if k.key and k.review)
    return [
        f"meeting `{m}` reviews {n} key KPIs: focus on 3 to 5"
        for m, n in sorted(counts.items())
        if n > MAX_KEY_PER_MEETING
    ]


def lint(project: Project, result: Result | None, ids: list[str] | None = None) -> dict[str, KpiLint]:
    return {k.id: lint_kpi(k, result) for k in project.kpis.values() if ids is None or k.id in ids}
