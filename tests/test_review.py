"""Review cadences (named and cron), `kpi due`, and the comparisons a review makes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest

from kpi_engine import cadence
from kpi_engine.periods import Span, year_earlier_span
from kpi_engine.spec import Calendar, ReviewSpec
from kpi_engine.units import format_change

D = dt.date
CAL = Calendar()


def days(review: ReviewSpec, start: dt.date, end: dt.date, cal: Calendar = CAL) -> list[dt.date]:
    return cadence.review_days(review, cal, start, end)


def test_weekly_and_biweekly():
    assert days(ReviewSpec("weekly"), D(2026, 6, 1), D(2026, 6, 21)) == [D(2026, 6, 1), D(2026, 6, 8), D(2026, 6, 15)]
    assert days(ReviewSpec("weekly", day="thursday"), D(2026, 6, 1), D(2026, 6, 14)) == [D(2026, 6, 4), D(2026, 6, 11)]
    sunday_weeks = Calendar("UTC", 6, 1)
    assert days(ReviewSpec("weekly"), D(2026, 6, 1), D(2026, 6, 14), sunday_weeks) == [D(2026, 6, 7), D(2026, 6, 14)]
    even = days(ReviewSpec("biweekly"), D(2026, 6, 1), D(2026, 6, 30))
    assert even == [D(2026, 6, 8), D(2026, 6, 22)] and all(d.isocalendar()[1] % 2 == 0 for d in even)
    anchored = days(ReviewSpec("biweekly", anchor=D(2026, 6, 1)), D(2026, 6, 1), D(2026, 6, 30))
    assert anchored == [D(2026, 6, 1), D(2026, 6, 15), D(2026, 6, 29)]


def test_monthly_and_quarterly_days():
    assert days(ReviewSpec("monthly"), D(2026, 1, 1), D(2026, 3, 31)) == [D(2026, 1, 5), D(2026, 2, 2), D(2026, 3, 2)]
    assert days(ReviewSpec("monthly", day="last friday"), D(2026, 1, 1), D(2026, 2, 28)) == [
        D(2026, 1, 30),
        D(2026, 2, 27),
    ]
    assert days(ReviewSpec("monthly", day="15"), D(2026, 1, 1), D(2026, 2, 28)) == [D(2026, 1, 15), D(2026, 2, 15)]
    assert days(ReviewSpec("monthly", day="second tuesday"), D(2026, 3, 1), D(2026, 3, 31)) == [D(2026, 3, 10)]
    assert days(ReviewSpec("quarterly", day="1"), D(2026, 1, 1), D(2026, 12, 31)) == [
        D(2026, 1, 1),
        D(2026, 4, 1),
        D(2026, 7, 1),
        D(2026, 10, 1),
    ]
    fiscal = Calendar("UTC", 0, 2)
    assert days(ReviewSpec("quarterly", day="1"), D(2026, 1, 1), D(2026, 12, 31), fiscal) == [
        D(2026, 2, 1),
        D(2026, 5, 1),
        D(2026, 8, 1),
        D(2026, 11, 1),
    ]


def test_cron_cadence():
    mon_thu = ReviewSpec("0 9 * * 1,4")
    assert days(mon_thu, D(2026, 6, 1), D(2026, 6, 10)) == [D(2026, 6, 1), D(2026, 6, 4), D(2026, 6, 8)]
    first = ReviewSpec("30 8 1 * *")
    assert days(first, D(2026, 1, 1), D(2026, 3, 31)) == [D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)]
    assert cadence.is_due(first, CAL, D(2026, 2, 1)) and not cadence.is_due(first, CAL, D(2026, 2, 2))
    # the review covers the days since the previous one
    assert cadence.covered_span(mon_thu, CAL, D(2026, 6, 4)) == (D(2026, 6, 1), D(2026, 6, 3))
    assert cadence.cadence_days(first) == 31 or cadence.cadence_days(first) == 30


@pytest.mark.parametrize(
    "review, day, span",
    [
        (ReviewSpec("weekly"), D(2026, 6, 8), (D(2026, 6, 1), D(2026, 6, 7))),
        (ReviewSpec("weekly", day="wednesday"), D(2026, 6, 10), (D(2026, 6, 1), D(2026, 6, 7))),
        (ReviewSpec("biweekly"), D(2026, 6, 8), (D(2026, 5, 25), D(2026, 6, 7))),
        (ReviewSpec("monthly"), D(2026, 6, 1), (D(2026, 5, 1), D(2026, 5, 31))),
        (ReviewSpec("quarterly"), D(2026, 7, 6), (D(2026, 4, 1), D(2026, 6, 30))),
    ],
)
def test_a_review_covers_the_last_complete_cadence_period(review, day, span):
    assert cadence.covered_span(review, CAL, day) == span


@pytest.mark.parametrize(
    "review, message",
    [
        (ReviewSpec("weakly"), "invalid value `weakly`"),
        (ReviewSpec("0 9 * *"), "invalid value `0 9 * *`"),
        (ReviewSpec("weekly", day="first monday"), "invalid review day `first monday` for a weekly cadence"),
        (ReviewSpec("monthly", day="31"), "invalid review day `31`"),
        (ReviewSpec("0 9 * * 1", day="monday"), "`day` does not apply to a cron cadence"),
    ],
)
def test_invalid_cadences(review, message):
    problem = cadence.check(review)
    assert problem is not None and problem[1] == message


def test_year_ago_aligns_iso_weeks_and_calendar_months():
    cal = Calendar()
    week = year_earlier_span(Span(D(2026, 5, 25), D(2026, 5, 31)), cal)
    assert week == Span(D(2025, 5, 26), D(2025, 6, 1))
    assert week.start.isocalendar()[1] == D(2026, 5, 25).isocalendar()[1]
    assert year_earlier_span(Span(D(2026, 1, 1), D(2026, 3, 31)), cal) == Span(D(2025, 1, 1), D(2025, 3, 31))
    assert year_earlier_span(Span(D(2028, 2, 1), D(2028, 2, 29)), cal) == Span(D(2027, 2, 1), D(2027, 2, 28))
    w53 = year_earlier_span(Span(D(2026, 12, 28), D(2027, 1, 3)), cal)  # 2026-W53 has no twin in 2025
    assert w53.start == D.fromisocalendar(2025, 52, 1)
    day = year_earlier_span(Span(D(2026, 6, 30), D(2026, 6, 30)), cal)  # a Tuesday: the Tuesday 52 weeks back
    assert day == Span(D(2025, 7, 1), D(2025, 7, 1)) and day.start.weekday() == 1
    sunday_weeks = year_earlier_span(Span(D(2026, 6, 21), D(2026, 6, 27)), Calendar(week_start=6))
    assert sunday_weeks == Span(D(2025, 6, 22), D(2025, 6, 28))  # Sunday to Saturday, 52 weeks back


def test_a_year_ago_is_one_rule_in_kpi_due_and_the_scorecard(tmp_path):
    """Issue 12, item 5: `kpi due` aligned a year earlier by cadence, the report's scorecard by grain. A
    monthly KPI reviewed monthly and a weekly KPI reviewed weekly now compare the same spans in both."""
    import kpi_engine
    from kpi_engine import content
    from kpi_engine.review import due_reviews

    rows = ["ts,n"]
    day = D(2024, 12, 30)
    while day <= D(2026, 7, 5):
        rows.append(f"{day}T10:00:00,{day.toordinal() % 97}")
        day += dt.timedelta(days=1)
    (tmp_path / "a.csv").write_text("\n".join(rows) + "\n")
    review = "{cadence: %s, day: monday}"
    (tmp_path / "k.yaml").write_text(
        "version: 1\nsources:\n  a: {connector: csv, path: a.csv, time: ts}\nkpis:\n"
        f"  weekly: {{unit: count, formula: sum(a.n), grain: week, review: {review % 'weekly'}}}\n"
        f"  monthly: {{unit: count, formula: sum(a.n), grain: month, review: {{cadence: monthly, day: \"1\"}}}}\n"
        '  cron: {unit: count, formula: sum(a.n), grain: month, review: {cadence: "0 9 1 * *"}}\n'
    )
    catalog = kpi_engine.load(tmp_path)
    project = catalog.project
    due = {r.kpi.id: r for day in (D(2026, 6, 29), D(2026, 7, 1)) for r in due_reviews(project, day)}
    assert not due["weekly"].partial and not due["monthly"].partial and due["cron"].span == Span(D(2026, 6, 1), D(2026, 6, 30))
    june = Span(D(2025, 6, 1), D(2025, 6, 30))  # a cron review on the 1st covered June, compared with 52 weeks back
    for kpi_id, expected in (("weekly", Span(D(2025, 6, 23), D(2025, 6, 29))), ("monthly", june), ("cron", june)):
        assert due[kpi_id].year_ago == expected
        result = catalog.evaluate(due[kpi_id].span.end)  # the scorecard's latest complete period is due's
        section = content._section(project, result, project.kpis[kpi_id], None, None, None, [])
        frame = result[kpi_id].filter(pl.col("is_total"))
        this = frame.filter(pl.col("start") == due[kpi_id].span.start)["value"][0]
        ago = frame.filter(pl.col("start") == expected.start)["value"][0]
        assert section.change_year == f"{100 * (this - ago) / abs(ago):+.1f}%"  # a count's change reads relative


@pytest.fixture(scope="module")
def due_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("due")
    start = dt.datetime(2025, 1, 1, 12)
    n = 600
    pl.DataFrame(
        {
            "ts": [start + dt.timedelta(days=i) for i in range(n)],
            "v": [float(i % 37) for i in range(n)],
            "yes": [i % 3 == 0 for i in range(n)],
        }
    ).write_csv(root / "m.csv")
    (root / "k.yaml").write_text("""version: 1
sources:
  m: {connector: csv, path: m.csv, time: ts}
kpis:
  total:
    unit: number
    owner: ops
    formula: sum(m.v)
    grain: week
    review: {cadence: weekly, meeting: Monday sync}
  share:
    kind: qualitative
    unit: percent
    owner: research
    formula: 100 * count(m where yes) / count(m)
    grain: month
    review: {cadence: monthly, day: first monday, meeting: Monthly review}
  quiet:
    unit: number
    formula: sum(m.v)
    grain: month
    review: {cadence: quarterly, meeting: QBR}
""")
    return root, pl.read_csv(root / "m.csv", try_parse_dates=True)


def kpi_due(root, *args):
    return subprocess.run(
        [sys.executable, "-m", "kpi_engine", "due", str(root), *args], capture_output=True, text=True, timeout=60
    )


def _sum(frame, start, end):
    return frame.filter(pl.col("ts").dt.date().is_between(start, end))["v"].sum()


def test_kpi_due_lists_reviews_with_comparisons(due_project):
    root, frame = due_project
    res = kpi_due(root, "--as-of", "2026-06-01", "--format", "json")
    assert res.returncode == 0, res.stderr
    reviews = json.loads(res.stdout)["reviews"]
    assert [(r["meeting"], r["owner"], r["kpi"]) for r in reviews] == [
        ("Monday sync", "ops", "total"),
        ("Monthly review", "research", "share"),
    ]
    total = reviews[0]
    assert total["covers"] == {"start": "2026-05-25", "end": "2026-05-31", "partial": False, "periods": ["2026-W22"]}
    assert total["value"] == _sum(frame, D(2026, 5, 25), D(2026, 5, 31))
    previous, year = total["comparisons"]
    assert (previous["start"], previous["value"]) == ("2026-05-18", _sum(frame, D(2026, 5, 18), D(2026, 5, 24)))
    assert (year["start"], year["end"]) == ("2025-05-26", "2025-06-01")
    assert year["value"] == _sum(frame, D(2025, 5, 26), D(2025, 6, 1))
    assert year["change"] == pytest.approx(total["value"] - year["value"])
    share = reviews[1]
    assert share["covers"]["periods"] == ["2026-05"]
    assert all(c["significant"] is False for c in share["comparisons"])  # ~30 answers: intervals overlap


def test_partial_periods_compare_the_same_elapsed_days(due_project):
    root, frame = due_project
    # on 2026-06-29 a monthly review (first Monday of July, 6 July) looks ahead: June is not over yet
    res = kpi_due(root, "--as-of", "2026-06-29", "--days", "8", "--format", "json")
    share = next(r for r in json.loads(res.stdout)["reviews"] if r["kpi"] == "share")
    assert share["covers"] == {
        "start": "2026-06-01",
        "end": "2026-06-29",
        "partial": True,
        "periods": ["2026-06-01..2026-06-29"],
    }
    previous, year = share["comparisons"]
    assert (previous["start"], previous["end"]) == ("2026-05-01", "2026-05-29")
    assert (year["start"], year["end"]) == ("2025-06-01", "2025-06-29")
    june = frame.filter(pl.col("ts").dt.date().is_between(D(2026, 6, 1), D(2026, 6, 29)))
    assert share["value"] == pytest.approx(100 * june["yes"].sum() / june.height)


def test_nothing_due_and_table_output(due_project):
    root, _ = due_project
    res = kpi_due(root, "--as-of", "2026-06-02")
    assert res.returncode == 0 and "no review due on 2026-06-02" in res.stderr
    res = kpi_due(root, "--as-of", "2026-06-01")
    lines = res.stdout.splitlines()
    assert "Monday sync" in lines and "  ops" in lines
    assert any(line.strip().startswith("vs a year earlier (2025-05-26..2025-06-01)") for line in lines)


def test_scorecard_changes_read_as_the_unit_calls_for():
    from kpi_engine.model import Unit
    from kpi_engine.units import format_move

    assert format_move(2.43, 2.31, Unit.PERCENT) == "+0.12 pp"  # a rate moves in points
    assert format_move(3093, 3266, Unit.COUNT) == "-5.3%"  # anything else moves relative
    assert format_move(225_315.94, 233_486.0, Unit.CURRENCY) == "-3.5%"
    assert format_move(1000.4, 1000, Unit.COUNT) == "+0.04%"  # small moves keep a digit that is not 0
    assert format_move(12, 0, Unit.COUNT) == "+12"  # against 0 a relative change is undefined: the difference
    assert format_move(-4.35, 5.34, Unit.PERCENT) == "-9.69 pp"


def test_the_target_column_shows_what_the_status_is_judged_against():
    from kpi_engine.model import TargetSpec, Unit
    from kpi_engine.targets import target_text
    from kpi_engine.units import formatter

    pct = formatter([2.0, 8.0], Unit.PERCENT)
    assert target_text(TargetSpec("maintain", value=2, tolerance=8), 2.0, pct) == "2.00% ± 8.00 pp"
    money = formatter([180_000, 260_000], Unit.CURRENCY)
    assert target_text(TargetSpec("range", min=180_000, max=260_000), None, money) == "180,000.00 to 260,000.00"
    count = formatter([22_000, 2_500], Unit.COUNT)
    assert target_text(TargetSpec("maintain", value=22_000, tolerance=2_500), 22_000, count) == "22,000 ± 2,500"
    assert target_text(TargetSpec("increase", value=2.5), 2.5, pct) == "2.50%"
    assert target_text(None, None, pct) == "–"


def test_a_target_prints_as_written():
    """A target of 0.835 printed as 0.83 (binary 0.835 rounds down), so '0.84 against 0.83 ± 0.02' hid that
    the value was 0.005 over."""
    from kpi_engine.model import TargetSpec, Unit
    from kpi_engine.targets import target_text
    from kpi_engine.units import formatter

    fmt = formatter([0.8412345], Unit.CURRENCY, written=[0.835, 0.02])
    assert target_text(TargetSpec("maintain", value=0.835, tolerance=0.02), 0.835, fmt) == "0.835 ± 0.020"
    assert fmt(0.8412345) == "0.841"
    assert formatter([2.3080894], Unit.PERCENT, written=[2.5])(2.3080894) == "2.31%"  # computed: rounded as usual
    assert formatter([0.0175, 0.04], Unit.PERCENT)(0.0175) == "0.02%"  # (only written numbers get digits for that)
