"""SMART lint: is each KPI specific, measurable, achievable, relevant and time-bound? With a reason per miss.

The rules are one table, ``RULES``: each has a code, a SMART letter, what it checks (for the docs: the
README's list is generated from it and checked by a test) and a check that returns the finding's message or
None. Spec rules read the KPI as written; data rules also read its evaluated series. A KPI with
``role: diagnostic`` explains other KPIs and has no target of its own: the target rules skip it and it is
asked for a description instead. Meetings are warned when they review more than 5 key KPIs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import cadence, periods
from .api import Result
from .frame import complete_totals
from .model import NO_MEETING, KpiSpec, Project, Unit

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


@dataclass(frozen=True)
class Rule:
    """One lint rule: ``check(kpi)`` (spec rules) or ``check(kpi, history, result)`` (data rules) returns the
    finding's message, or None when the KPI passes."""

    code: str
    letter: str
    what: str
    check: Callable[..., str | None]
    data: bool = False


def _diagnostic(kpi: KpiSpec) -> bool:
    return kpi.role == "diagnostic"


def _paced(kpi: KpiSpec) -> bool:
    t = kpi.target
    return t is not None and t.direction in ("increase", "decrease")


def _no_description(kpi: KpiSpec) -> str | None:
    if _diagnostic(kpi) and not kpi.description:
        return "no description: say which KPI this one helps explain, and how (`description:`)"
    return None


def _no_objective(kpi: KpiSpec) -> str | None:
    if not _diagnostic(kpi) and (kpi.target is None or not kpi.target.objective):
        return "no objective: say what the target is for, e.g. `objective: Lift CTR to 2.5% by Q2`"
    return None


def _no_target(kpi: KpiSpec) -> str | None:
    if kpi.target is None and not _diagnostic(kpi):
        return "no target: add a `target` with a direction and a value (or `role: diagnostic`)"
    return None


def _generic_unit(kpi: KpiSpec) -> str | None:
    if kpi.unit is Unit.NUMBER:
        return "unit is the generic `number`: say what it measures (count, currency, percent...)"
    return None


def _no_baseline(kpi: KpiSpec) -> str | None:
    t = kpi.target
    if _paced(kpi) and t is not None and t.baseline is None and not t.baseline_auto:
        return "no baseline: give `baseline` (or `baseline: auto` with a `baseline_period`)"
    return None


def _no_owner(kpi: KpiSpec) -> str | None:
    return None if kpi.owner else "no owner: name the team or person accountable (`owner:`)"


def _no_stakeholders(kpi: KpiSpec) -> str | None:
    return None if kpi.stakeholders else "no stakeholders: name who relies on this KPI (`stakeholders: [...]`)"


def _no_deadline(kpi: KpiSpec) -> str | None:
    t = kpi.target
    if t is None and _diagnostic(kpi):
        return None  # time-bound through its review cadence
    if t is None or t.deadline is None or t.start is None:
        return "no time bound: the target needs a `start` and a `deadline`"
    return None


def _deadline_before_start(kpi: KpiSpec) -> str | None:
    t = kpi.target
    if t is not None and t.start and t.deadline and t.deadline <= t.start:
        return f"deadline {t.deadline} is not after start {t.start}"
    return None


def _no_review(kpi: KpiSpec) -> str | None:
    return None if kpi.review else "no review cadence: add `review: {cadence: weekly}` (or monthly...)"


def _cadence_too_slow(kpi: KpiSpec) -> str | None:
    t = kpi.target
    if kpi.review is None or t is None or not t.start or not t.deadline or t.deadline <= t.start:
        return None
    window, every = (t.deadline - t.start).days, cadence.cadence_days(kpi.review)
    if every > window:
        return (
            f"reviews every ~{every} days, longer than the {window}-day target window: "
            "it would not be reviewed before the deadline"
        )
    return None


def _fractional_count(kpi: KpiSpec, history: pl.DataFrame, result: Result) -> str | None:
    if kpi.unit is not Unit.COUNT or history["value"].dtype.is_integer():
        return None
    odd = history.filter(pl.col("value").is_not_null() & (pl.col("value") != pl.col("value").round(0)))
    if not odd.height:
        return None
    return (
        f"a count that is not a whole number: {odd['value'][0]:g} in {odd['period'][0]} ({odd.height} of "
        f"{history.height} periods); check the formula sums a whole-number column, or change the unit"
    )


def _zero_denominator(kpi: KpiSpec, history: pl.DataFrame, result: Result) -> str | None:
    nulls = history["value"].null_count()
    if history.height >= 3 and nulls > history.height / 2:
        return (
            f"the value is undefined (division by zero or by nothing) in {nulls} of {history.height} complete periods"
        )
    return None


def _before_start(kpi: KpiSpec, history: pl.DataFrame, result: Result) -> pl.DataFrame | None:
    """The complete periods before a paced target starts (None when history says nothing about the target:
    no start, or a cumulative window target, which starts from zero)."""
    from .forecast import bound_expr
    from .moved import additive

    t = kpi.target
    if not _paced(kpi) or t is None or t.start is None:
        return None
    if t.measure == "window" and additive(bound_expr(result, kpi.id)):
        return None
    return history.filter((pl.col("end") < t.start) & pl.col("value").is_not_null())


def _baseline_off(kpi: KpiSpec, history: pl.DataFrame, result: Result) -> str | None:
    before = _before_start(kpi, history, result)
    baseline = kpi.target.baseline if kpi.target else None
    if before is None or baseline is None or not before.height:
        return None
    actual = before["value"][-1]
    if actual and abs(baseline - actual) > BASELINE_TOLERANCE * abs(actual):
        return (
            f"baseline {baseline:g} is far from the KPI's actual {actual:.4g} in {before['period'][-1]} "
            f"(more than {BASELINE_TOLERANCE:.0%} apart)"
        )
    return None


def _steep_target(kpi: KpiSpec, history: pl.DataFrame, result: Result) -> str | None:
    from .targets import target_value

    before = _before_start(kpi, history, result)
    t = kpi.target
    if before is None or t is None or t.start is None:
        return None
    final = target_value(t, t.deadline or t.start, t.baseline)
    if t.baseline is None or final is None or t.deadline is None or before.height < 3:
        return None
    n_periods = len(periods.period_range(t.start, t.deadline, kpi.grain, result.project.calendar))
    required = (final - t.baseline) / max(n_periods, 1)
    sign = 1 if t.direction == "increase" else -1
    steps = before["value"].diff().drop_nulls() * sign
    best = steps.max() if steps.len() else None
    grain = kpi.grain.value
    if best is not None and best > 0 and sign * required > STEEPNESS * best:  # type: ignore[operator]
        return (
            f"needs {abs(required):.4g} per {grain} for {n_periods} periods, over {STEEPNESS:g}x the best "
            f"{grain}-on-{grain} improvement ever seen ({best:.4g})"
        )
    if best is not None and best <= 0 and sign * required > 0:  # type: ignore[operator]
        return f"needs a steady improvement, but the KPI has never improved {grain} on {grain}"
    return None


RULES = (
    Rule("no-objective", "S", "the target states no objective", _no_objective),
    Rule("no-description", "S", "a diagnostic KPI does not say what it helps explain", _no_description),
    Rule("no-target", "M", "no target to measure progress against (unless `role: diagnostic`)", _no_target),
    Rule("generic-unit", "M", "the unit is the generic `number`", _generic_unit),
    Rule("zero-denominator", "M", "the value is undefined in most complete periods", _zero_denominator, True),
    Rule("fractional-count", "M", "a `count` KPI has values that are not whole numbers", _fractional_count, True),
    Rule("no-baseline", "A", "an increase/decrease target has no baseline to be paced from", _no_baseline),
    Rule("baseline-off", "A", "the baseline is over 25% from the value just before the start", _baseline_off, True),
    Rule("steep-target", "A", "the target needs over 3x the best per-period improvement seen", _steep_target, True),
    Rule("no-owner", "R", "nobody owns the KPI", _no_owner),
    Rule("no-stakeholders", "R", "no stakeholders are named", _no_stakeholders),
    Rule("no-deadline", "T", "the target has no start or no deadline", _no_deadline),
    Rule(
        "deadline-before-start",
        "T",
        "the deadline is not after the start (refused when a spec file loads; specs built in Python can have it)",
        _deadline_before_start,
    ),
    Rule("no-review", "T", "no review cadence", _no_review),
    Rule("cadence-too-slow", "T", "reviews are further apart than the whole target window", _cadence_too_slow),
)


def rules_markdown() -> str:
    """The rules as a Markdown table (the README's list is this text; a test keeps them equal)."""
    lines = ["| letter | rule | fires when |", "|---|---|---|"]
    lines += [f"| {r.letter} | `{r.code}` | {r.what}{' (from the data)' if r.data else ''} |" for r in RULES]
    return "\n".join(lines)


def lint_kpi(kpi: KpiSpec, result: Result | None) -> KpiLint:
    """Every rule on one KPI; data rules only when ``result`` holds its series."""
    out = KpiLint(kpi.id)
    history = None
    if result is not None and kpi.id in result.series:
        history = complete_totals(result.series[kpi.id]).filter(pl.col("has_data"))
    for rule in RULES:
        if rule.data and history is None:
            continue
        message = rule.check(kpi, history, result) if rule.data else rule.check(kpi)
        if message:
            out.findings.append(Finding(rule.letter, rule.code, message))
    return out


def meeting_warnings(project: Project) -> list[str]:
    counts = Counter((k.review.meeting or NO_MEETING) for k in project.kpis.values() if k.key and k.review)
    return [
        f"meeting `{m}` reviews {n} key KPIs: focus on 3 to 5"
        for m, n in sorted(counts.items())
        if n > MAX_KEY_PER_MEETING
    ]


def lint(project: Project, result: Result | None, ids: list[str] | None = None) -> dict[str, KpiLint]:
    return {k.id: lint_kpi(k, result) for k in project.kpis.values() if ids is None or k.id in ids}
