"""The period still running at a review, to date: against the same elapsed days of the previous period and of
a year earlier, ratios recomputed from their sums over those days; checked against polars on the rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import kpi_engine
from conftest import write_spec
from kpi_engine import todate
from kpi_engine.report import review_report

SPEC = """
version: 1
week_start: sunday
sources:
  ads: {connector: dataframe, time: ts}
kpis:
  clicks: {name: Clicks, unit: count, formula: sum(ads.clicks), grain: month}
  ctr: {name: CTR, unit: percent, formula: 100 * sum(ads.clicks) / sum(ads.impressions), grain: month}
  weekly: {name: Weekly clicks, unit: count, formula: sum(ads.clicks), grain: week}
"""


def frame() -> pl.DataFrame:
    days = pl.date_range(dt.date(2025, 1, 1), dt.date(2026, 3, 31), eager=True)
    return pl.DataFrame(
        {
            "ts": [dt.datetime.combine(d, dt.time(12)) for d in days],
            "clicks": [d.day * 3 + d.month for d in days],
            "impressions": [1000 + d.day * 7 + (d.weekday() * 50) for d in days],
        }
    )


def on_disk(folder: Path, rows: pl.DataFrame) -> None:
    """The spec with its source read from a Parquet file of ``rows`` (what the CLI tests run)."""
    rows.write_parquet(folder / "ads.parquet")
    write_spec(folder, SPEC.replace("{connector: dataframe, time: ts}", "{connector: parquet, path: ads.parquet, time: ts}"))


def by_hand(rows: pl.DataFrame, first: dt.date, last: dt.date) -> tuple[int, float]:
    part = rows.filter(pl.col("ts").dt.date().is_between(first, last))
    return part["clicks"].sum(), 100 * part["clicks"].sum() / part["impressions"].sum()


def test_a_review_on_23_february_compares_the_same_23_days(tmp_path: Path):
    rows = frame()
    catalog = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": rows})
    kpis = list(catalog.project.kpis.values())
    report, _, _ = review_report(catalog, kpis, dt.date(2026, 2, 23))
    by_id = {k.id: k for k in report.kpis}
    now, ctr_now = by_hand(rows, dt.date(2026, 2, 1), dt.date(2026, 2, 23))
    jan, ctr_jan = by_hand(rows, dt.date(2026, 1, 1), dt.date(2026, 1, 23))
    ago, ctr_ago = by_hand(rows, dt.date(2025, 2, 1), dt.date(2025, 2, 23))
    assert by_id["clicks"].to_date == (
        f"2026-02 to date (1 to 23 Feb 2026, 23 days): {now:,}; "
        f"{100 * (now - jan) / jan:+.1f}% vs 1 to 23 Jan 2026 ({jan:,}), {100 * (now - ago) / ago:+.1f}% vs 1 to 23 Feb 2025 ({ago:,})"
    )
    line = by_id["ctr"].to_date
    assert line.startswith(f"2026-02 to date (1 to 23 Feb 2026, 23 days): {ctr_now:.2f}%; ")
    assert f"{ctr_now - ctr_jan:+.2f} pp vs 1 to 23 Jan 2026 ({ctr_jan:.2f}%)" in line  # from sums, not averaged
    # Sunday weeks: 23 Feb 2026 is a Monday, so the week has run 2 days (22-23 Feb), against 15-16 Feb
    week_now, _ = by_hand(rows, dt.date(2026, 2, 22), dt.date(2026, 2, 23))
    week_before, _ = by_hand(rows, dt.date(2026, 2, 15), dt.date(2026, 2, 16))
    assert by_id["weekly"].to_date.startswith(f"2026-W09 to date (22 to 23 Feb 2026, 2 days): {week_now:,}; ")
    assert f"vs 15 to 16 Feb 2026 ({week_before:,})" in by_id["weekly"].to_date


def test_no_to_date_line_on_a_period_last_day_or_a_day_grain(tmp_path: Path):
    catalog = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": frame()})
    cal = catalog.project.calendar
    assert todate.spans_of(catalog.project.kpis["clicks"], dt.date(2026, 2, 28), cal) is None
    report, _, _ = review_report(catalog, [catalog.project.kpis["clicks"]], dt.date(2026, 1, 31))
    assert report.kpis[0].to_date is None
    daily = catalog.project.kpis["clicks"].__class__(
        "d", "d", catalog.project.kpis["clicks"].unit, "sum(ads.clicks)", kpi_engine.spec.Grain.DAY
    )
    assert todate.spans_of(daily, dt.date(2026, 2, 23), cal) is None


@pytest.mark.parametrize(("as_of", "expected"), [(dt.date(2026, 3, 30), ("1 to 30 Mar 2026", "1 to 28 Feb 2026"))])
def test_a_longer_running_period_is_cut_to_the_shorter_month(tmp_path: Path, as_of, expected):
    """30 days of March against February: February has 28, so the whole of it."""
    catalog = kpi_engine.load(write_spec(tmp_path, SPEC), frames={"ads": frame()})
    current, previous, _ = todate.spans_of(catalog.project.kpis["clicks"], as_of, catalog.project.calendar)
    assert (todate._dates(current), todate._dates(previous)) == expected


def test_the_markdown_report_shows_it(tmp_path: Path):
    from click.testing import CliRunner

    from kpi_engine.cli import main

    rows = frame()
    on_disk(tmp_path, rows)
    out = tmp_path / "r.md"
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--as-of", "2026-02-23", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "To date: 2026-02 to date (1 to 23 Feb 2026, 23 days): " in out.read_text()


def test_the_email_carries_the_changes_and_the_running_period(tmp_path: Path):
    """E-mail parity with the HTML scorecard: changes against the previous period and a year earlier, and
    the period still running to date."""
    import email

    from click.testing import CliRunner

    from kpi_engine.cli import main

    rows = frame()
    on_disk(tmp_path, rows)
    out = tmp_path / "r.eml"
    res = CliRunner().invoke(main, ["report", str(tmp_path), "--as-of", "2026-02-23", "-o", str(out)])
    assert res.exit_code == 0, res.output
    message = email.message_from_bytes(out.read_bytes())
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk() if not p.is_multipart()}
    jan, _ = by_hand(rows, dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    dec, _ = by_hand(rows, dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    change = f"{100 * (jan - dec) / dec:+.1f}%"
    assert f"{change} vs previous" in parts["text/plain"] and f">{change}</td>" in parts["text/html"]
    for text in parts.values():
        assert "2026-02 to date (1 to 23 Feb 2026, 23 days): " in text
