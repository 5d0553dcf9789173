"""Charts: legends never cover event labels, and periods only partly covered by data are drawn hollow."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from kpi_engine.charts import line_figure
from kpi_engine.content import Chart
from kpi_engine.model import Event, Unit


def chart(events: list[Event], partial: list[bool] | None = None) -> Chart:
    x = [dt.date(2026, 1, 5) + dt.timedelta(weeks=i) for i in range(13)]
    y = [2.0 + 0.05 * i for i in range(13)]
    c = Chart("CTR", Unit.PERCENT, x, y, partial=partial or [])
    c.target = [(x[0], 2.0), (x[-1], 3.0)]
    c.pace = [(x[0], 2.0), (x[-1], 2.8)]
    c.forecast = [(x[-1], 2.6), (x[-1] + dt.timedelta(weeks=4), 2.8)]
    c.events = events
    return c


def test_the_legend_never_covers_an_event_label():
    # events at the left edge (where a legend in the plot would sit), in the middle and at the right
    events = [Event(dt.date(2026, 1, 6), "Summer campaign launch"), Event(dt.date(2026, 2, 16), "Price change"),
              Event(dt.date(2026, 3, 30), "Black Friday and a very long label")]  # fmt: skip
    fig = line_figure(chart(events))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    labels = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(labels) == 3
    assert not any(legend.overlaps(box) for box in labels)


def test_partly_covered_periods_are_hollow_points():
    partial = [True] + [False] * 11 + [True]
    fig = line_figure(chart([], partial))
    ax = fig.axes[0]
    (hollow,) = [line for line in ax.get_lines() if line.get_label() == "partial data"]
    assert list(hollow.get_xdata()) == [dt.date(2026, 1, 5), dt.date(2026, 3, 30)]
    assert hollow.get_markerfacecolor() == "white"
    assert not [line for line in line_figure(chart([])).axes[0].get_lines() if line.get_label() == "partial data"]


def test_the_report_marks_the_first_partial_week(tmp_path: Path, example_dir: Path):
    """The example's data starts on Thursday 1 January 2026: week 1 has 4 of its 7 days."""
    out = tmp_path / "r.html"
    run = subprocess.run(
        [sys.executable, "-m", "kpi_engine", "report", str(example_dir), "--as-of", "2026-02-10", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    section = out.read_text().split('id="ctr"', 1)[1].split('class="kpi"', 1)[0]
    assert "partial data" in section


def test_charts_drawn_by_worker_processes_are_the_same_bytes(example_catalog):
    """`kpi report` draws its charts in worker processes: they must be exactly what this process draws."""
    from kpi_engine import charts
    from kpi_engine.report import review_report

    report, _, _ = review_report(example_catalog, list(example_catalog.project.kpis.values()), dt.date(2026, 5, 20))
    charts._DRAWN.clear()
    charts.start_workers(2)
    try:
        charts.prerender_charts(report)
        assert charts._POOL is None  # stopped once the charts are drawn
    finally:
        charts.stop_workers()
    drawn = dict(charts._DRAWN)
    charts._DRAWN.clear()
    bars = [(b, k.unit, k.name) for k in report.kpis for b in k.breakdowns if b.rows]
    assert len(drawn) == len(report.kpis) + len(bars) >= charts.PARALLEL_FROM
    for k in report.kpis:
        assert drawn[charts._key("line", k.chart)] == charts.line_chart(k.chart)
    for b, unit, name in bars:
        assert drawn[charts._key("bar", b, unit, name)] == charts.bar_chart(b, unit, name)
