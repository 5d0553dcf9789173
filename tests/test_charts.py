"""Charts: drawn by the browser from inline specs with the Vega runtime inline (offline), legends never
cover event labels, periods only partly covered by data are hollow points, axes read in the report's number
format, and Markdown and PDF get the same charts as SVG."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kpi_engine import charts
from kpi_engine.content import Chart
from kpi_engine.model import Event, Money, Unit


def chart(events: list[Event], partial: list[bool] | None = None, unit: object = Unit.PERCENT) -> Chart:
    x = [dt.date(2026, 1, 5) + dt.timedelta(weeks=i) for i in range(13)]
    y = [2.0 + 0.05 * i for i in range(13)]
    c = Chart("CTR", unit, x, y, partial=partial or [])  # type: ignore[arg-type]
    c.target = [(x[0], 2.0), (x[-1], 3.0)]
    c.pace = [(x[0], 2.0), (x[-1], 2.8)]
    c.forecast = [(x[-1], 2.6), (x[-1] + dt.timedelta(weeks=4), 2.8)]
    c.events = events
    return c


def drawn(browser, page: Path, count: int) -> None:
    """Open ``page`` and wait until its ``count`` charts are drawn."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(
        lambda b: len(b.find_elements("css selector", ".vega-chart[data-drawn] svg")) >= count
    )


def test_the_legend_never_covers_an_event_label(browser, tmp_path: Path):
    # events at the left edge (where a legend in the plot would sit), in the middle and at the right
    events = [Event(dt.date(2026, 1, 6), "Summer campaign launch"), Event(dt.date(2026, 2, 16), "Price change"),
              Event(dt.date(2026, 3, 30), "Black Friday and a very long label")]  # fmt: skip
    page = tmp_path / "chart.html"
    for width in (390, 1100):
        page.write_text(
            charts.with_script(f"<html><body style='width:{width}px'>{charts.line_chart(chart(events))}</body></html>")
        )
        drawn(browser, page, 1)
        boxes = browser.execute_script(
            """const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
            const svg = document.querySelector('.vega-chart svg');
            return {svg: box(svg), legends: [...svg.querySelectorAll('g.role-legend')].map(box),
                    labels: [...svg.querySelectorAll('g.events_marks text')].map(box)};"""
        )
        assert len(boxes["labels"]) == 3 and boxes["legends"], boxes
        overlap = lambda a, b: a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]  # noqa: E731
        assert not any(overlap(legend, label) for legend in boxes["legends"] for label in boxes["labels"]), (
            width,
            boxes,
        )
        left, top, right, bottom = boxes["svg"]
        assert all(left <= x0 and top <= y0 and x1 <= right and y1 <= bottom for x0, y0, x1, y1 in boxes["labels"]), (
            width,
            boxes,
        )


def test_partly_covered_periods_are_hollow_points():
    partial = [True] + [False] * 11 + [True]
    svg = charts.line_chart(chart([], partial), static=True)
    hollow = re.findall(r'<path[^>]*fill="white"[^>]*stroke="#2563eb"', svg)
    assert len(hollow) == 3 and "partial data" in svg  # the first and last weeks, and the legend's symbol
    plain = charts.line_chart(chart([]), static=True)
    assert "partial data" not in plain and not re.findall(r'<path[^>]*fill="white"', plain)


def test_axes_read_in_the_reports_number_format():
    money = Money("GBP", "en_GB")
    svg = charts.line_chart(chart([], unit=money), static=True)
    ticks = re.findall(r">(£[\d,.]+)</text>", svg)
    assert ticks and all(re.fullmatch(r"£\d\.\d\d", t) for t in ticks), ticks
    assert re.findall(r">(\d\.\d\d%)</text>", charts.line_chart(chart([]), static=True))
    assert charts.nice_ticks(1.93, 3.02) == [1.5, 2.0, 2.5, 3.0, 3.5]
    assert charts.nice_ticks(5.0, 5.0) == [4.5, 4.75, 5.0, 5.25, 5.5]
    assert charts.nice_ticks(0, 1234) == [0, 500, 1000, 1500]


def test_the_report_draws_every_chart_offline(browser, example_dir: Path, tmp_path: Path):
    """Every chart container of `kpi report`'s page is drawn by the inline runtime, with nothing fetched."""
    out = tmp_path / "r.html"
    env = {**os.environ, "KPI_ENGINE_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "report", str(example_dir), "--as-of", "2026-05-20", "-o", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    html = out.read_text()
    (bundle,) = (tmp_path / "cache").glob("vega-*.js")  # kept for the next report
    runtime = bundle.read_text().replace("</script", "<\\/script")
    assert html.count(runtime) == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html.replace(runtime, ""))
    count = html.count('class="chart vega-chart"')
    assert count >= 8
    drawn(browser, out, count)
    marks = browser.execute_script(
        "return [...document.querySelectorAll('.vega-chart svg')].map(s => s.querySelectorAll('path, rect').length)"
    )
    assert len(marks) == count and min(marks) > 3
    assert browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)") == []


def test_the_report_marks_the_first_partial_week(tmp_path: Path, example_dir: Path):
    """The example's data starts on Thursday 1 January 2026: week 1 has 4 of its 7 days."""
    out = tmp_path / "r.html"
    run = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "report", str(example_dir), "--as-of", "2026-02-10", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    section = out.read_text().split('id="ctr"', 1)[1].split('class="kpi"', 1)[0]
    assert '"partial":true' in section and "partial data" in section


@pytest.mark.parametrize("src", [None, "/assets/charts.js"])
def test_a_page_without_charts_gets_no_runtime(src: str | None):
    assert (
        charts.with_script("<html><body><p>no charts</p></body></html>", src)
        == "<html><body><p>no charts</p></body></html>"
    )
    page = charts.with_script(f"<html><body>{charts.line_chart(chart([]))}</body></html>", src)
    assert page.endswith("</script></body></html>") and page.count("vegaEmbed(") >= 1
    assert (f'<script src="{src}">' in page) == (src is not None)


def test_periods_read_the_same_in_any_viewers_time_zone(tmp_path: Path):
    """A week starting 5 January reads 5 January in a browser at UTC-10 too (dates are drawn in UTC)."""
    from conftest import start_chromium

    driver = start_chromium({**os.environ, "TZ": "Pacific/Honolulu"})
    try:
        page = tmp_path / "chart.html"
        page.write_text(charts.with_script(f"<html><body>{charts.line_chart(chart([]))}</body></html>"))
        drawn(driver, page, 1)
        assert driver.execute_script("return new Date(2026, 0, 5).getTimezoneOffset()") == 600  # the zone took
        points = driver.execute_script(
            "return [...document.querySelectorAll('g.layer_1_marks path')].map(p => p.getAttribute('aria-label'))"
        )
        assert len(points) == 13 and "x: Jan 5 2026" in points[0] and "period: 2026-01-05" in points[0], points[:2]
        axis = driver.execute_script("return [...document.querySelectorAll('g.role-axis-label text')].map(t => t.textContent)")
        assert not any("Jan 4 2026" in t for t in axis), axis
    finally:
        driver.quit()


def test_values_a_chart_cannot_place_are_left_out_and_a_failed_chart_spares_the_others(browser, tmp_path: Path):
    """0/0 and x/0 in floats are NaN and infinity: left out of the chart (as JSON cannot carry them), and a
    chart whose spec cannot be drawn says so in its place while the next one is drawn."""
    odd = chart([])
    odd.y = [float("nan"), float("inf"), *odd.y[2:]]
    spec = charts.line_spec(odd)
    assert [r["x"] for r in spec["data"]["values"] if r["line"] == "actual"][:1] == ["2026-01-19"]
    broken = charts.embed(charts.line_spec(chart([]))).replace('"mark":{"type":"line"', '"mark":{"type":"no-such-mark"')
    page = tmp_path / "two.html"
    page.write_text(charts.with_script(f"<html><body>{broken}{charts.line_chart(odd)}</body></html>"))
    drawn(browser, page, 1)
    first = browser.find_elements("css selector", ".vega-chart")[0]
    assert first.get_attribute("data-failed") and first.text == "This chart could not be drawn."


def test_the_pdf_page_carries_its_charts_as_svg(example_catalog):
    """The PDF is printed from the page rendered with ``static_charts``: every chart already SVG, no script."""
    from kpi_engine.report import environment, render_template, review_report

    kpis = list(example_catalog.project.kpis.values())
    report, _, _ = review_report(example_catalog, kpis, dt.date(2026, 5, 20))
    env = environment(example_catalog.registry)
    page = render_template(env, "report.html.j2", report, static_charts=True)
    assert 'class="chart vega-chart"' not in page and "<script" not in page
    charts_drawn = re.findall(r'<svg[^>]*class="marks chart"[^>]*role="img"', page)
    bars = sum(1 for k in report.kpis for b in k.breakdowns if b.rows)
    assert len(charts_drawn) == len(report.kpis) + bars
