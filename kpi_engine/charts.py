"""Charts as Vega-Lite specs: a KPI's series with target, pace and forecast; breakdown bars; sparklines.

An HTML report carries each chart's spec and the Vega runtime inline, and the browser draws the charts, so
the report opens offline and costs the engine no drawing time. Where no script runs (Markdown's chart files,
the PDF), the same spec is drawn to SVG by vl-convert, which embeds the same Vega runtime."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from markupsafe import escape

from .units import format_value

if TYPE_CHECKING:
    from .content import Breakdown, Chart

INK, GRID, TARGET, PACE, FORECAST, EVENT = "#1f2937", "#e5e7eb", "#059669", "#6b7280", "#7c3aed", "#b45309"
SERIES = "#2563eb"
#: each line's legend entry, colour and dash, in legend order
LINES = {
    "actual": (SERIES, []),
    "target": (TARGET, [5, 3]),
    "expected pace": (PACE, [1, 2]),
    "forecast": (FORECAST, [6, 2, 1, 2]),
}
WIDTH, HEIGHT, STATIC_WIDTH = "container", 230, 680
#: the class of a chart the page's browser draws (``embed``), by which ``with_script`` knows a page needs the
#: runtime (``DRAW`` selects the same class)
EMBEDDED = "vega-chart"
SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # (names the spec's version; nothing is fetched)
CONFIG = {
    "font": "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    "view": {"stroke": None},
    "axis": {"labelColor": INK, "titleColor": INK, "domainColor": GRID, "tickColor": GRID, "labelFontSize": 12},
    "axisY": {"gridColor": GRID, "title": None},
    "axisX": {"grid": False, "title": None},
    "legend": {"labelFontSize": 12, "labelColor": INK},
}


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(first + step * len(ticks))
    return [round(t, 12) for t in ticks]


def _axis(values: list[float], unit: Any) -> dict[str, Any]:
    """A y axis whose ticks are labelled by ``format_value`` (the report's own number format: currency
    symbols, locale separators, units), as Vega's formats cannot spell them all."""
    labels = [format_value(v, unit) for v in values]
    return {"values": values, "labelExpr": f"{json.dumps(labels)}[indexof({json.dumps(values)}, datum.value)]"}


def _time_axis(starts: Sequence[dt.date], most: int = 9) -> dict[str, Any]:
    """Ticks at the series' own period starts (a Monday week, a fiscal month), at most ``most`` of them,
    labelled with the month alone when every tick is a month's first day."""
    step = max(1, math.ceil(len(starts) / most))
    ticks = list(starts)[::step]
    when = [{"year": d.year, "month": d.month, "date": d.day, "utc": True} for d in ticks]
    monthly = bool(ticks) and all(d.day == 1 for d in ticks)
    return {"values": when, "format": "%b %Y" if monthly else "%b %-d %Y", "labelOverlap": True}


def _finite(value: float | None) -> bool:
    """A value a chart can place: not missing, NaN (0/0 in floats) or infinite (x/0)."""
    return value is not None and math.isfinite(value)


def _day(d: dt.date) -> str:
    return d.isoformat()


def line_spec(chart: Chart) -> dict[str, Any]:
    """The series (periods only partly covered by data as hollow points), the target, the pace line from
    baseline to target, the forecast and events. The legend sits above the plot, where no event label is."""
    partial = chart.partial or [False] * len(chart.x)
    rows = [
        {"x": _day(d), "period": _day(d), "y": v, "line": "actual", "text": format_value(v, chart.unit), "partial": p}
        for d, v, p in zip(chart.x, chart.y, partial, strict=True)
        if _finite(v)
    ]
    for name, points in (("target", chart.target), ("expected pace", chart.pace), ("forecast", chart.forecast)):
        rows += [
            {"x": _day(d), "y": v, "line": name, "text": format_value(v, chart.unit)} for d, v in points if _finite(v)
        ]
    shown = [n for n in LINES if any(r["line"] == n for r in rows)]
    ys = [r["y"] for r in rows]
    ticks = nice_ticks(min(ys), max(ys)) if ys else [0.0, 1.0]
    x = {"field": "x", "type": "temporal", "scale": {"type": "utc"}, "axis": _time_axis(chart.x)}
    scale = {"domain": [ticks[0], ticks[-1]], "nice": False, "zero": False}
    y = {"field": "y", "type": "quantitative", "scale": scale, "axis": _axis(ticks, chart.unit)}
    legend = {"orient": "top", "direction": "horizontal", "title": None, "symbolType": "stroke"}
    colors = {"domain": shown, "range": [LINES[n][0] for n in shown]}
    dashes = {"domain": shown, "range": [LINES[n][1] for n in shown]}
    line = {
        "x": x,
        "y": y,
        "color": {"field": "line", "type": "nominal", "scale": colors, "legend": legend},
        "strokeDash": {"field": "line", "type": "nominal", "scale": dashes},
    }
    tooltip = [
        {"field": "period", "type": "nominal"},  # (the date as written, in no viewer's time zone)
        {"field": "text", "title": chart.title},
    ]
    layers: list[dict[str, Any]] = [
        {"mark": {"type": "line", "strokeWidth": 1.8}, "encoding": line},
        {
            "transform": [{"filter": "datum.line == 'actual'"}],
            "mark": {"type": "point", "filled": True, "size": 18, "color": SERIES},
            "encoding": {"x": x, "y": y, "tooltip": tooltip},
        },
    ]
    if any(partial):
        layers.append(_hollow({"x": x, "y": y, "tooltip": tooltip}))
    if chart.events:
        layers += _events(chart.events, x)
    return {
        "$schema": SCHEMA,
        "description": f"{chart.title}: actual values with target, pace and forecast",
        "width": WIDTH,
        "height": HEIGHT,
        "autosize": {"type": "fit-x", "contains": "padding"},
        "config": CONFIG,
        "data": {"values": rows},
        "layer": layers,
    }


def _hollow(encoding: dict[str, Any]) -> dict[str, Any]:
    """Periods only partly covered by data: hollow points, with their own legend entry."""
    legend = {
        "orient": "top",
        "title": None,
        "symbolFillColor": "white",
        "symbolStrokeWidth": 1.5,
        "symbolOpacity": 1,
        "encode": {"symbols": {"update": {"stroke": {"value": SERIES}}}},
    }
    shape = {"datum": "partial data", "scale": {"range": ["circle"]}, "legend": legend}
    mark = {"type": "point", "filled": False, "size": 60, "fill": "white", "fillOpacity": 1, "color": SERIES}
    return {
        "transform": [{"filter": "datum.partial"}],
        "mark": {**mark, "strokeWidth": 1.5, "opacity": 1},
        "encoding": {**encoding, "shape": shape},
    }


def _events(events: Sequence[Any], x: dict[str, Any]) -> list[dict[str, Any]]:
    """Each event as a rule with its label written up the rule's left side, from the plot's top."""
    data = {"values": [{"x": _day(e.date), "label": e.label} for e in events]}
    text = {"type": "text", "angle": 270, "align": "right", "baseline": "bottom", "dx": -3, "dy": -2, "fontSize": 10}
    return [
        {"data": data, "mark": {"type": "rule", "color": EVENT, "opacity": 0.7}, "encoding": {"x": x}},
        {
            "name": "events",
            "data": data,
            "mark": {**text, "color": EVENT},
            "encoding": {"x": x, "y": {"value": 0}, "text": {"field": "label"}},
        },
    ]


def bar_spec(breakdown: Breakdown, unit: Any, title: str) -> dict[str, Any]:
    """Values of one period by dimension value, largest first, each bar labelled with its value."""
    rows = [
        {"label": str(r["label"]), "value": r["value"], "text": format_value(r["value"], unit)}
        for r in breakdown.rows
        if _finite(r["value"])
    ][:12]
    y = {"field": "label", "type": "nominal", "sort": None, "axis": {"title": None, "labelLimit": 180}}  # (rows' order)
    x = {"field": "value", "type": "quantitative", "axis": None}
    tooltip = [{"field": "label", "title": breakdown.dim}, {"field": "text", "title": title}]
    text = {"field": "text"}
    return {
        "$schema": SCHEMA,
        "description": f"{title} by {breakdown.dim} in {breakdown.period}",
        "width": WIDTH,
        "height": 18 * max(len(rows), 1),
        "autosize": {"type": "fit-x", "contains": "padding"},
        "config": CONFIG,
        "data": {"values": rows},
        "encoding": {"y": y, "x": x},
        "layer": [
            {"mark": {"type": "bar", "color": SERIES, "height": {"band": 0.6}}, "encoding": {"tooltip": tooltip}},
            {
                "mark": {"type": "text", "align": "left", "dx": 3, "fontSize": 10, "color": INK},
                "encoding": {"text": text},
            },
        ],
    }


def embed(spec: dict[str, Any]) -> str:
    """A chart for a page that runs scripts: its spec in the page, drawn by the Vega runtime ``script`` adds."""
    data = json.dumps(spec, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e")
    label = escape(spec["description"])
    return (
        f'<div class="chart {EMBEDDED}" style="width: 100%" role="img" aria-label="{label}">'
        f'<script type="application/json">{data}</script></div>'
    )


def static_svg(spec: dict[str, Any]) -> str:
    """The chart drawn to SVG by vl-convert, for output that runs no script (Markdown's files, the PDF)."""
    import vl_convert

    svg = vl_convert.vegalite_to_svg({**spec, "width": STATIC_WIDTH})
    svg = svg[svg.index("<svg") :]
    head, rest = svg.split(">", 1)
    head = head.replace('class="marks"', 'class="marks chart"')
    head = re.sub(r' (width|height)="[^"]*"', "", head)  # (scales with the page)
    return f'{head} role="img" aria-label="{escape(spec["description"])}">{rest}'


def line_chart(chart: Chart, static: bool = False) -> str:
    """The series chart as page markup (``embed``), or as SVG when ``static``."""
    spec = line_spec(chart)
    return static_svg(spec) if static else embed(spec)


def bar_chart(breakdown: Breakdown, unit: Any, title: str, static: bool = False) -> str:
    """The breakdown's bar chart as page markup, or as SVG when ``static``."""
    spec = bar_spec(breakdown, unit, title)
    return static_svg(spec) if static else embed(spec)


#: draws every ``.vega-chart`` of the page with the Vega runtime, as SVG (sharp when printed); a chart that
#: fails says so in its place, and the others are drawn
DRAW = """document.querySelectorAll('.vega-chart').forEach(function (el) {
  var failed = function (e) {
    el.setAttribute('data-failed', String(e));
    el.textContent = 'This chart could not be drawn.';
  };
  try {
    vegaEmbed(el, JSON.parse(el.querySelector('script').textContent), {renderer: 'svg', actions: false})
      .then(function () { el.setAttribute('data-drawn', ''); }, failed);
  } catch (e) { failed(e); }
});"""


def runtime() -> str:
    """Vega, Vega-Lite and vega-embed as one script. vl-convert bundles it, which takes about 2 s, so the
    bundle is kept in the engine's cache folder (``output.cache_dir``) per version, and only in memory when
    that folder cannot be written."""
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME
    import vl_convert

    from .errors import KpiError
    from .output import atomic_write, cache_dir

    version = vl_convert.get_vega_embed_version() + "-" + vl_convert.get_vegalite_versions()[-1]
    path = cache_dir() / f"vega-{version}.js"
    try:
        _RUNTIME = path.read_text(encoding="utf-8")
        return _RUNTIME
    except OSError:
        pass
    bundle = vl_convert.javascript_bundle()
    with contextlib.suppress(KpiError):  # (an unwritable cache folder: kept in memory only)
        atomic_write(path, lambda p: p.write_text(bundle, encoding="utf-8"))
    _RUNTIME = bundle
    return _RUNTIME


_RUNTIME: str | None = None


def script(src: str | None = None) -> str:
    """The script elements a page with ``embed``'ed charts needs: the runtime inline (or from ``src``), then
    the drawing. ``</script`` inside the bundle is escaped so the inline copy cannot end early."""
    if src:
        loader = f'<script src="{escape(src)}"></script>'
    else:
        loader = "<script>" + runtime().replace("</script", "<\\/script") + "</script>"
    return f"{loader}<script>{DRAW}</script>"


def with_script(html: str, src: str | None = None) -> str:
    """``html`` with ``script`` added before ``</body>`` (or at its end) when it holds an embedded chart."""
    if f'class="chart {EMBEDDED}"' not in html:
        return html
    at = html.rfind("</body>")
    return html + script(src) if at < 0 else html[:at] + script(src) + html[at:]


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
