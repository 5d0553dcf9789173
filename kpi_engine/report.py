"""Rendering the review report: the Jinja environment (user templates, plugin templates, built-ins), its
filters, and the built-in formats (HTML, Markdown, PDF, e-mail). Every write is atomic."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from . import charts
from .content import Report
from .errors import Diagnostic, KpiError
from .model import KpiSpec
from .output import atomic_write
from .plugins import Registry, ReportFormat
from .units import format_date, format_value

BUILTIN_PLUGIN = "reports"  # the first-party plugin whose templates every format may extend (macros)


def environment(
    registry: Registry, user_templates: Path | None = None, fmt: ReportFormat | None = None
) -> jinja2.Environment:
    """Templates of a format: a plugin's format looks in its own folder first, then ``--templates``, then the
    built-ins; a built-in format looks in ``--templates`` first. Another plugin's folder is never searched,
    so one plugin's ``report.md.j2`` cannot replace another format's."""
    builtin = [f.templates_dir for f in registry.formats.values() if f.plugin == BUILTIN_PLUGIN and f.templates_dir]
    own = [fmt.templates_dir] if fmt is not None and fmt.templates_dir else []
    user = [user_templates] if user_templates else []
    folders = (user + own if fmt is None or fmt.plugin == BUILTIN_PLUGIN else own + user) + builtin
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(f)) for f in dict.fromkeys(folders)])
    # the sandbox: a template (yours, a plugin's, or one passed with --templates) reads the report's data and
    # cannot reach Python internals (``cycler.__init__.__globals__.os`` and the like raise SecurityError)
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=lambda name: name is not None and ".html" in name,  # HTML is escaped; Markdown: see _finalize
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        date=lambda d: format_date(d) if isinstance(d, dt.date) else d,
        value=format_value,
        line_chart=_line_chart,
        bar_chart=_bar_chart,
        sparkline=lambda values: Markup(charts.sparkline(values)),
        md=lambda text: Markup(md_escape(text)),
        code=lambda text: Markup(md_code(text)),
    )
    return env


#: whether the render under way draws its charts as SVG (``render_template(..., static_charts=True)``): a
#: context variable, as macros imported without context (``{% import "macros.html.j2" as m %}``) cannot see
#: the render's own variables
_STATIC = contextvars.ContextVar("static_charts", default=False)


@contextlib.contextmanager
def static_charts() -> Iterator[None]:
    """Every page rendered inside the block draws its charts as SVG (a report sent as an attachment is
    previewed by mail clients that run no script)."""
    token = _STATIC.set(True)
    try:
        yield
    finally:
        _STATIC.reset(token)


def _line_chart(chart: Any) -> Markup:
    """A KPI's chart: drawn by the page's browser, or as SVG when the render passes ``static_charts``."""
    return Markup(charts.line_chart(chart, static=_STATIC.get()))


def _bar_chart(pair: Any) -> Markup:
    """A breakdown's bars (``(breakdown, kpi)``), drawn as ``_line_chart`` is."""
    return Markup(charts.bar_chart(pair[0], pair[1].shown, pair[1].name, static=_STATIC.get()))


_MD_SPECIAL = re.compile(r"([\\`*_|\[\]<>#!~]|&(?=#|[A-Za-z]+;))")  # & only where it starts an entity


def md_escape(value: Any) -> str:
    """Text shown literally in Markdown: its special characters backslash-escaped, line breaks folded, so
    spec text cannot add HTML, links or emphasis, or break a table row or list item."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s*[\r\n]+\s*", " ", str(value)))


def md_code(value: Any) -> str:
    """An inline code span that holds any text: fenced by more backticks than the text's longest run."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", str(value))
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


@jinja2.pass_context
def _finalize(context: Any, value: Any) -> Any:
    """Every ``{{ ... }}`` of a Markdown template is escaped unless marked safe (as autoescape does for HTML)."""
    name = context.name or ""
    if ".md" in name and isinstance(value, str) and not isinstance(value, Markup):
        return md_escape(value)
    return value


def render_template(env: jinja2.Environment, name: str, report: Report, **extra: Any) -> str:
    """The template rendered; a page with charts its browser draws gets the chart runtime before
    ``</body>`` (inline, or from ``extra["charts_src"]``), whoever wrote the template."""
    token = _STATIC.set(bool(extra.get("static_charts", _STATIC.get())))
    try:
        return charts.with_script(env.get_template(name).render(report=report, **extra), extra.get("charts_src"))
    except jinja2.TemplateNotFound as exc:
        raise KpiError(
            Diagnostic(
                f"report template `{exc.name}` not found",
                hint="templates are looked up in --templates, then plugins, then built-ins",
            )
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise KpiError(
            Diagnostic(f"template syntax error: {exc.message}", hint=f"{exc.filename}:{exc.lineno}")
        ) from None
    except jinja2.UndefinedError as exc:
        raise KpiError(Diagnostic(f"template error in `{name}`: {exc.message}")) from None
    except SecurityError as exc:
        raise KpiError(
            Diagnostic(
                f"template `{name}` tried something templates may not do: {exc}",
                hint="templates render inside Jinja's sandbox: they read the report's data and call no Python",
            )
        ) from None
    finally:
        _STATIC.reset(token)


def slug(text: str) -> str:
    """A name safe in a file name: ``Monday growth sync`` -> ``monday-growth-sync`` (``review`` when empty)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "review"


def review_report(
    catalog: Any,
    kpis: list[KpiSpec],
    as_of: dt.date,
    meeting: str | None = None,
    history_path: Path | None = None,
    notes: Mapping[str, list[str]] | None = None,
) -> tuple[Report, Any, Mapping[str, Any]]:
    """Evaluate ``kpis`` as of a day, judge their targets and SMART letters, and assemble the review's
    content (what ``kpi report`` writes and ``kpi send`` delivers); one evaluation shares every scan.
    Returns the report, the evaluated result and the target assessments (to record them)."""
    from . import __version__, content, events, todate
    from .lint import lint
    from .targets import assess, span_requests

    project = catalog.project
    ids = [k.id for k in kpis]
    spans = [(k, s) for k, s in span_requests(project, as_of) if k in ids] + events.event_spans(project, kpis, as_of)
    lookback = {k: catalog.bound[k].lookback for k in ids if k in catalog.bound}
    spans += todate.span_requests(kpis, as_of, project.calendar, lookback)
    result = catalog.evaluate(as_of, kpis=ids, spans=spans, moves=True)
    assessments = assess(result)
    smart = {k: v.as_json() for k, v in lint(project, result, ids).items()}
    report = content.build(
        catalog,
        result,
        assessments,
        kpis,
        meeting=meeting,
        smart=smart,
        history_path=history_path,
        notes=notes,
        engine_version=__version__,
    )
    return report, result, assessments


def write_report(
    report: Report, registry: Registry, fmt_name: str, output: Path, templates: Path | None = None
) -> list[Path]:
    """Render ``report`` in a registered format to ``output``; what a plugin's format does wrong is reported
    as that plugin's failure (exit 1), never as the engine's, and never as a silent empty file."""
    formats: Mapping[str, ReportFormat] = registry.formats
    if fmt_name not in formats:
        from .errors import did_you_mean

        raise KpiError(
            Diagnostic(f"unknown report format `{fmt_name}`", hint=did_you_mean(fmt_name, formats, "formats"))
        )
    fmt = formats[fmt_name]
    env = environment(registry, templates, fmt)
    if fmt.template is not None:
        text = render_template(env, fmt.template, report)
        atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
        return [output]
    try:
        if fmt.write is not None:
            written = fmt.write(report, env, output)
            if not isinstance(written, list) or not all(isinstance(p, Path) for p in written):
                raise PluginFormatError(f"write() returned {type(written).__name__}, not a list of paths")
            return written
        content = fmt.render(report)  # type: ignore[misc]
    except (KpiError, PluginFormatError):
        raise
    except Exception as exc:
        raise PluginFormatError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(content, str | bytes):
        raise PluginFormatError(f"render() returned {type(content).__name__}, not str or bytes")
    data = content.encode("utf-8") if isinstance(content, str) else content
    atomic_write(output, lambda p: p.write_bytes(data))
    return [output]


class PluginFormatError(Exception):
    """A report format plugin that failed or broke its contract (the CLI names the plugin)."""
