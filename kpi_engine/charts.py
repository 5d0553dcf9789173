"""Charts as inline SVG, drawn by matplotlib: a KPI's series with target, pace and forecast; breakdown bars;
sparklines. SVG keeps text as text and scales to any width, so the report opens offline and prints well."""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .units import format_value

if TYPE_CHECKING:  # (a worker that draws charts imports only this module, matplotlib and the units)
    from .content import Breakdown, Chart

INK, GRID, TARGET, PACE, FORECAST, EVENT = "#1f2937", "#e5e7eb", "#059669", "#6b7280", "#7c3aed", "#b45309"
SERIES = "#2563eb"


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(
        {
            "svg.fonttype": "none",
            "font.size": 9,
            "font.family": "sans-serif",
            "axes.edgecolor": GRID,
            "axes.labelcolor": INK,
            "xtick.color": INK,
            "ytick.color": INK,
            "svg.hashsalt": "kpi-engine",
        }
    )
    import matplotlib.pyplot as plt

    return plt


def _svg(fig: Any, label: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    _pyplot().close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)  # scale with the page
    return svg.replace("<svg", f'<svg role="img" aria-label="{_escape(label)}" class="chart"', 1)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


#: SVGs drawn ahead by ``prerender_charts`` (in worker processes), keyed by what they show
_DRAWN: dict[bytes, str] = {}
PARALLEL_FROM = 8  # charts: fewer are drawn in this process
_POOL: Any = None


def _key(kind: str, *what: Any) -> bytes:
    return pickle.dumps((kind, what), protocol=5)


def line_chart(chart: Chart) -> str:
    """The series, the target line, the pace line from baseline to target, the forecast and events."""
    found = _DRAWN.get(_key("line", chart)) if _DRAWN else None  # (no key to compute when none was drawn ahead)
    return found if found is not None else _line_svg(chart)


def _line_svg(chart: Any) -> str:
    return _svg(line_figure(chart), f"{chart.title}: actual values with target, pace and forecast")


def _plain(obj: Any) -> dict[str, Any]:
    """A chart's fields as plain data: a worker then needs neither the report's classes nor polars."""
    return dict(vars(obj))


def _draw(job: tuple[str, dict, tuple]) -> str:
    """One chart's SVG, in a worker process."""
    kind, fields, extra = job
    thing = SimpleNamespace(**fields)
    return _line_svg(thing) if kind == "line" else _bar_svg(thing, *extra)


def start_workers(workers: int | None = None) -> None:
    """Start the chart-drawing processes now, so that they import matplotlib while the KPIs are evaluated
    (``kpi report`` calls it first); nothing happens on one core."""
    global _POOL
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(workers or cores, 8)
    if _POOL is not None or workers < 2:
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_pyplot)
        for _ in range(workers):
            pool.submit(int)  # start each worker (a pool starts them on demand)
    except OSError:  # no processes to be had: the charts are drawn here
        return
    _POOL = pool
    import atexit

    atexit.register(stop_workers)  # (a pool left to the interpreter's teardown can fail noisily)


def stop_workers() -> None:
    """Stop the chart processes (after a report is drawn, or at exit)."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None


def prerender_charts(report: Any) -> None:
    """Draw every chart of ``report`` ahead in the worker processes, when ``start_workers`` started them:
    the charts are most of a report's time and matplotlib draws one at a time per process. The SVGs are
    the ones ``line_chart`` and ``bar_chart`` draw (same figure, same hash salt): the bytes do not depend
    on how many processes drew them. A pool that fails leaves the charts to be drawn here."""
    from concurrent.futures.process import BrokenProcessPool

    jobs = [("line", k.chart, ()) for k in report.kpis]
    jobs += [("bar", b, (k.shown, k.name)) for k in report.kpis for b in k.breakdowns if b.rows]
    jobs = [j for j in jobs if _key(j[0], j[1], *j[2]) not in _DRAWN]
    if _POOL is None or len(jobs) < PARALLEL_FROM:
        return
    try:
        drawn = list(_POOL.map(_draw, [(kind, _plain(obj), extra) for kind, obj, extra in jobs], chunksize=2))
    except (BrokenProcessPool, OSError):
        stop_workers()
        return
    for (kind, obj, extra), svg in zip(jobs, drawn, strict=True):
        _DRAWN[_key(kind, obj, *extra)] = svg
    stop_workers()


def line_figure(chart: Chart) -> Any:
    """The matplotlib figure of ``line_chart``: a period only partly covered by data is a hollow point, and
    the legend sits above the plot, where no event label can be."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    partial = chart.partial or [False] * len(chart.x)
    points = [(d, v, p) for d, v, p in zip(chart.x, chart.y, partial, strict=True) if v is not None]
    xs, ys = [d for d, _, _ in points], [v for _, v, _ in points]
    ax.plot(xs, ys, color=SERIES, linewidth=1.8, marker="o", markersize=2.5, label="actual")
    hollow = [(d, v) for d, v, p in points if p]
    if hollow:
        hx, hy = zip(*hollow, strict=True)
        ax.plot(hx, hy, linestyle="none", marker="o", markersize=5, markerfacecolor="white",
                markeredgecolor=SERIES, label="partial data")  # fmt: skip
    if chart.target:
        tx, ty = zip(*chart.target, strict=True)
        ax.plot(tx, ty, color=TARGET, linewidth=1.2, linestyle="--", label="target")
    if chart.pace:
        px, py = zip(*chart.pace, strict=True)
        ax.plot(px, py, color=PACE, linewidth=1.0, linestyle=":", label="expected pace")
    if chart.forecast:
        fx, fy = zip(*chart.forecast, strict=True)
        ax.plot(fx, fy, color=FORECAST, linewidth=1.2, linestyle="-.", label="forecast")
    for event in chart.events:
        ax.axvline(event.date, color=EVENT, linewidth=0.8, alpha=0.7)
        ax.annotate(
            event.label,
            (event.date, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color=EVENT,
            rotation=90,
            va="top",
            ha="right",
        )
    ax.grid(axis="y", color=GRID, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_formatter(lambda v, _: format_value(v, chart.unit))
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), fontsize=7, frameon=False, ncols=5, borderaxespad=0)
    fig.autofmt_xdate()
    return fig


def bar_chart(breakdown: Breakdown, unit: Any, title: str) -> str:
    """Values of one period by dimension value, largest first."""
    found = _DRAWN.get(_key("bar", breakdown, unit, title)) if _DRAWN else None
    return found if found is not None else _bar_svg(breakdown, unit, title)


def _bar_svg(breakdown: Any, unit: Any, title: str) -> str:
    plt = _pyplot()
    rows = [r for r in breakdown.rows if r["value"] is not None][:12]
    fig, ax = plt.subplots(figsize=(7.2, 0.22 * max(len(rows), 1) + 0.4))
    labels = [r["label"] for r in rows][::-1]
    values = [r["value"] for r in rows][::-1]
    ax.barh(labels, values, color=SERIES, height=0.6)
    for i, v in enumerate(values):
        ax.annotate(format_value(v, unit), (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.spines[["top", "right", "bottom"]].set_visible(False)
    ax.set_xticks([])
    return _svg(fig, f"{title} by {breakdown.dim} in {breakdown.period}")


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 28) -> str:
    """A tiny trend line as hand-written SVG (too small to need a plotting library)."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return ""
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span = (hi - lo) or 1.0
    step = width / max(len(values) - 1, 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in points)
    last_x, last_v = points[-1]
    cy = height - 2 - (last_v - lo) / span * (height - 4)
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="trend of the last {len(values)} periods"><polyline fill="none" stroke="{SERIES}" '
        f'stroke-width="1.5" points="{coords}"/><circle cx="{last_x * step:.1f}" cy="{cy:.1f}" r="2" '
        f'fill="{SERIES}"/></svg>'
    )
