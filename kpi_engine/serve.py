"""`kpi serve`: the review as a live local web app (Starlette), a page per KPI with a dimension filter and a
period range, and a JSON API that mirrors `kpi run --format json`.

Every request looks at the spec files' and data files' sizes and modification times; when one changed, the
specs are loaded and evaluated again, and open pages reload themselves (they poll ``/api/version``). A spec
error is shown in the page with its file, line and column, never as a crash.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from .api import data_locations
from .errors import KpiError, did_you_mean

#: where pages load the chart runtime from (one download, cached by the browser, not inlined in every page)
CHARTS_JS = "/assets/charts.js"
RELOAD = """<script>
(() => { const seen = %s;
  setInterval(() => fetch('/api/version').then(r => r.json()).then(v => { if (v.stamp !== seen) location.reload(); })
    .catch(() => {}), 1000); })();
</script>"""


class BadRequest(Exception):
    """A query parameter the API cannot use: answered with 400 and this message."""


@dataclass
class State:
    """One load and evaluation of the specs, kept until a spec or data file changes."""

    stamp: str
    error: str | None = None
    catalog: Any = None
    result: Any = None
    api: dict[str, Any] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)  # rendered HTML by route, filled on first request
    report: Any = None
    reviews: dict[str, Any] = field(default_factory=dict)  # one KPI's review, by id, for its page


class Live:
    """The specs at ``path``, loaded and evaluated again whenever their files or their data change."""

    def __init__(self, path: Path, as_of: dt.date | None = None, access: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.as_of = as_of
        self.access = dict(access or {})
        self._lock = threading.Lock()
        self._state: State | None = None
        self._spec_key: tuple = ()
        self._targets: list[Path] = []

    def files(self) -> list[Path]:
        """The spec files, and the data files of the sources that read files (a folder's or a glob's files).

        The specs are parsed for their sources only when a spec file changed: pages poll every second."""
        root = self.path if self.path.is_dir() else self.path.parent
        specs = sorted(root.glob("*.y*ml")) if self.path.is_dir() else [self.path]
        key = tuple((str(f), (st := f.stat()).st_size, st.st_mtime_ns) for f in specs if f.exists())
        if key != self._spec_key:
            self._spec_key, self._targets = key, data_locations(self.path) or []
        found = list(specs)
        for target in self._targets:
            found += [Path(p) for p in glob.glob(str(target / "**" if target.is_dir() else target), recursive=True)]
        return found

    def stamp(self) -> str:
        """A digest of every watched file's name, size and modification time."""
        digest = hashlib.sha256()
        for f in self.files():
            try:
                st = f.stat()
            except OSError:
                continue
            digest.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def state(self) -> State:
        """The current load and evaluation (again when a watched file changed)."""
        stamp = self.stamp()
        with self._lock:
            if self._state is None or self._state.stamp != stamp:
                self._state = self._evaluate(stamp)
            return self._state

    def _evaluate(self, stamp: str) -> State:
        from . import __version__
        from .api import data_warnings, load, stale_sources, trim_stale
        from .lint import lint
        from .output import to_json_dict
        from .targets import evaluate_with_targets

        try:
            catalog = load(self.path, **self.access)
            result, assessments = evaluate_with_targets(catalog, self.as_of, moves=True)
            if stale_sources(result) and trim_stale(result):
                result.warnings = data_warnings(result, trimmed=True)
            smart = {k: v.as_json() for k, v in lint(catalog.project, result, list(result.series)).items()}
        except KpiError as exc:
            return State(stamp, error=exc.render())
        api = to_json_dict(result, __version__, assessments, smart)
        return State(stamp, catalog=catalog, result=result, api=json.loads(json.dumps(api, default=str)))

    def review(self, state: State, kpi_id: str | None = None) -> Any:
        """The review's content (as `kpi report` builds it), built once per state; with ``kpi_id``, a review
        of that KPI alone unless the whole one is built (a KPI's page then draws its own charts only)."""
        from .report import review_report

        if state.report is None and kpi_id is not None:
            if kpi_id not in state.reviews:
                kpi = state.catalog.project.kpis[kpi_id]
                state.reviews[kpi_id] = review_report(state.catalog, [kpi], state.result.as_of)[0]
            return state.reviews[kpi_id]
        if state.report is None:
            kpis = list(state.catalog.project.kpis.values())
            state.report = review_report(state.catalog, kpis, state.result.as_of)[0]
        return state.report


def kpi_json(state: State, kpi_id: str, params: Mapping[str, str]) -> dict[str, Any]:
    """One KPI of the API document, its series narrowed by ``from``, ``to`` (dates) and ``dims``
    (``channel:search,device:mobile``); BadRequest names what is wrong with them."""
    kpis = {k["id"]: k for k in state.api["kpis"]}
    if kpi_id not in kpis:
        raise KeyError(f"no KPI `{kpi_id}`" + (f"; {hint}" if (hint := did_you_mean(kpi_id, kpis)) else ""))
    kpi = dict(kpis[kpi_id])
    start, end = _date(params, "from"), _date(params, "to")
    if start and end and start > end:
        raise BadRequest(f"from={start} is after to={end}")
    wanted = _dims(params.get("dims", ""), kpi)
    rows = []
    for row in kpi["series"]:
        day = dt.date.fromisoformat(row["start"])
        if (start and dt.date.fromisoformat(row["end"]) < start) or (end and day > end):
            continue
        if wanted and any(row["dims"].get(d) != v for d, v in wanted.items()):
            continue
        if not wanted and row["dims"]:
            continue  # without a filter: the totals
        rows.append(row)
    kpi["series"] = rows
    return kpi


def _date(params: Mapping[str, str], name: str) -> dt.date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw} is not a date: write it like 2026-06-30") from None


def _dims(raw: str, kpi: Mapping[str, Any]) -> dict[str, str]:
    """``channel:search,device:mobile`` checked against the KPI's dimensions and the values its series has."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.partition(":")
        if not sep or not name or not value:
            raise BadRequest(f"dims={raw}: write each as dimension:value, e.g. dims=channel:search")
        if name not in kpi["dimensions"]:
            known = kpi["dimensions"]
            hint = did_you_mean(name, known) or (f"its dimensions: {', '.join(known)}" if known else "it has none")
            raise BadRequest(f"KPI {kpi['id']} has no dimension `{name}`; {hint}")
        values = dimension_values(kpi)[name]
        if value not in values:
            raise BadRequest(
                f"`{name}` has no value `{value}`; " + (did_you_mean(value, values) or f"values: {', '.join(values)}")
            )
        out[name] = value
    return out


def dimension_values(kpi: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each dimension's values in a KPI's series (for the page's filter)."""
    return {d: sorted({str(r["dims"][d]) for r in kpi["series"] if d in r["dims"]}) for d in kpi["dimensions"]}


def chart_html(state: State, kpi: Mapping[str, Any]) -> str:
    """The narrowed series as a line chart (one value per period), or nothing when several rows share one."""
    from . import charts
    from .content import Chart

    rows = kpi["series"]
    if not rows or len({r["start"] for r in rows}) != len(rows):
        return ""
    spec = state.catalog.project.kpis[kpi["id"]]
    x = [dt.date.fromisoformat(r["start"]) for r in rows]
    y = [r["value"] for r in rows]
    return charts.line_chart(Chart(spec.name, spec.shown, x, y, partial=[r["coverage"] < 1 for r in rows]))


def frame_of(kpi: Mapping[str, Any]) -> pl.DataFrame:
    """The narrowed series as a table for the page: period, dimension values, value."""
    return pl.DataFrame(
        [
            {"period": r["period"], **{d: r["dims"].get(d) for d in kpi["dimensions"]}, "value": r["value"]}
            for r in kpi["series"]
        ],
        schema_overrides={"value": pl.Float64},
    )


def build_app(live: Live) -> Any:
    """The Starlette application: ``/`` (the review), ``/kpis/{id}`` (a KPI's page), ``/api/kpis``,
    ``/api/kpis/{id}``, ``/api/version`` and the chart runtime."""
    from markupsafe import Markup
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    def page(state: State, name: str, **extra: Any) -> HTMLResponse:
        return HTMLResponse(render_page(live, state, name, **extra))

    def failed(state: State) -> HTMLResponse | None:
        return page(state, "serve_error.html.j2", error=state.error) if state.error else None

    def index(request: Request) -> HTMLResponse:
        state = live.state()
        if state.error:
            return failed(state)  # type: ignore[return-value]
        if "/" not in state.pages:
            html = page(state, "report.html.j2").body.decode()
            for kpi_id in state.catalog.project.kpis:  # the scorecard opens each KPI's own page
                html = html.replace(f'<a href="#{kpi_id}">', f'<a href="/kpis/{kpi_id}">')
            state.pages["/"] = html
        return HTMLResponse(state.pages["/"])

    def kpi_page(request: Request) -> HTMLResponse:
        state = live.state()
        if state.error:
            return failed(state)  # type: ignore[return-value]
        kpi_id = request.path_params["kpi_id"]
        try:
            kpi = kpi_json(state, kpi_id, request.query_params)
        except KeyError as exc:
            return HTMLResponse(f"<h1>Not found</h1><p>{Markup.escape(exc.args[0])}</p>", status_code=404)
        except BadRequest as exc:
            return HTMLResponse(f"<h1>Bad request</h1><p>{Markup.escape(str(exc))}</p>", status_code=400)
        section = next(k for k in live.review(state, kpi_id).kpis if k.id == kpi_id)
        full = next(k for k in state.api["kpis"] if k["id"] == kpi_id)
        chosen = _dims(request.query_params.get("dims", ""), full)  # (checked by kpi_json above)
        return page(
            state,
            "serve_kpi.html.j2",
            kpi_id=kpi_id,
            k=section,
            kpi=kpi,
            rows=frame_of(kpi).to_dicts(),
            values=dimension_values(full),
            chosen=chosen,
            start=request.query_params.get("from", ""),
            end=request.query_params.get("to", ""),
            chart=Markup(chart_html(state, kpi)),
        )

    def api_kpis(request: Request) -> JSONResponse:
        state = live.state()
        return JSONResponse({"error": state.error}, status_code=422) if state.error else JSONResponse(state.api)

    def api_kpi(request: Request) -> JSONResponse:
        state = live.state()
        if state.error:
            return JSONResponse({"error": state.error}, status_code=422)
        try:
            return JSONResponse(kpi_json(state, request.path_params["kpi_id"], request.query_params))
        except KeyError as exc:
            return JSONResponse({"error": exc.args[0]}, status_code=404)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    def version(request: Request) -> JSONResponse:
        return JSONResponse({"stamp": live.stamp()})

    routes = [("/", index), ("/kpis/{kpi_id}", kpi_page), ("/api/kpis", api_kpis), ("/api/kpis/{kpi_id}", api_kpi)]
    return Starlette(routes=[Route(p, f) for p, f in [*routes, ("/api/version", version), (CHARTS_JS, charts_js)]])


def charts_js(request: Any) -> Any:
    """The chart runtime the pages load (``CHARTS_JS``), cached by the browser for a day."""
    from starlette.responses import Response

    from . import charts

    return Response(charts.runtime(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def render_page(live: Live, state: State, name: str, kpi_id: str | None = None, **extra: Any) -> str:
    """A page from the report templates (sandboxed, as `kpi report`'s), reloading itself when files change."""
    from .report import environment, render_template

    env = environment(state.catalog.registry if state.catalog else _registry())
    report = live.review(state, kpi_id) if state.catalog else None
    html = render_template(env, name, report, stamp=state.stamp, charts_src=CHARTS_JS, **extra)  # type: ignore[arg-type]
    return html.replace("</body>", RELOAD % json.dumps(state.stamp) + "</body>")


def _registry() -> Any:
    from .plugins import default_registry

    return default_registry()
