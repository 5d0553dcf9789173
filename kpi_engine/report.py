"""Rendering the review report: the Jinja environment (user templates, plugin templates, built-ins), its
filters, and the built-in formats (HTML, Markdown, PDF, e-mail). Every write is atomic."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from markupsafe import Markup

from . import charts
from .content import Report
from .errors import Diagnostic, KpiError
from .output import atomic_write
from .plugins import Registry, ReportFormat
from .units import format_date, format_value


def environment(registry: Registry, user_templates: Path | None = None) -> jinja2.Environment:
    """Templates are looked up in the user's folder, then each format plugin's folder, then the built-ins."""
    folders = [user_templates] if user_templates else []
    folders += [f.templates_dir for f in registry.formats.values() if f.templates_dir is not None]
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
        line_chart=lambda chart: Markup(charts.line_chart(chart)),
        bar_chart=lambda pair: Markup(charts.bar_chart(pair[0], pair[1].unit, pair[1].name)),
        sparkline=lambda values: Markup(charts.sparkline(values)),
        md=lambda text: Markup(md_escape(text)),
        code=lambda text: Markup(md_code(text)),
    )
    return env


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
    try:
        return env.get_template(name).render(report=report, **extra)
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


def write_html(report: Report, env: jinja2.Environment, output: Path) -> list[Path]:
    text = render_template(env, "report.html.j2", report)
    atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
    return [output]


def write_markdown(report: Report, env: jinja2.Environment, output: Path) -> list[Path]:
    """Markdown with tables; each chart is an SVG file in a folder beside it."""
    folder = output.with_name(output.stem + "_files")
    written = []
    chart_files = {}
    for k in report.kpis:
        path = folder / f"{k.id}.svg"
        svg = charts.line_chart(k.chart)
        atomic_write(
            path, lambda p, svg=svg: p.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + svg, encoding="utf-8")
        )
        chart_files[k.id] = f"{folder.name}/{path.name}"
        written.append(path)
    text = render_template(env, "report.md.j2", report, chart_files=chart_files)
    atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
    return [output, *written]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
)


def write_pdf(report: Report, env: jinja2.Environment, output: Path) -> list[Path]:
    """The HTML report printed to PDF by headless Chromium (optional: install Debian's `chromium`)."""
    browser = chromium()
    if browser is None:
        raise KpiError(
            Diagnostic(
                "PDF output needs Chromium, which is not installed",
                hint="install it (Debian: apt-get install chromium) or use --format html",
            )
        )
    html = render_template(env, "report.html.j2", report)
    with tempfile.TemporaryDirectory() as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html, encoding="utf-8")
        profile = Path(tmp) / "profile"
        run = subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={pdf}",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if run.returncode != 0 or not pdf.exists():
            raise KpiError(
                Diagnostic(
                    f"Chromium could not print the PDF (exit {run.returncode})",
                    hint=(run.stderr.strip().splitlines() or [""])[-1][:200],
                )
            )
        data = pdf.read_bytes()
    atomic_write(output, lambda p: p.write_bytes(data))
    return [output]


def write_email(report: Report, env: jinja2.Environment, output: Path) -> list[Path]:
    """An e-mail (.eml) with an HTML body that mail clients render and a plain-text part; sending is a plugin's job."""
    message = EmailMessage()
    message["Subject"] = report.title
    message.set_content(render_template(env, "email.txt.j2", report))
    message.add_alternative(render_template(env, "email.html.j2", report), subtype="html")
    data = bytes(message)
    atomic_write(output, lambda p: p.write_bytes(data))
    return [output]


def write_template(fmt: ReportFormat) -> Any:
    """A writer for a plugin format that is just a template (a chat summary, a CSV digest...)."""

    def write(report: Report, env: jinja2.Environment, output: Path) -> list[Path]:
        text = render_template(env, fmt.template or "", report)
        atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
        return [output]

    return write


def write_report(
    report: Report, registry: Registry, fmt_name: str, output: Path, templates: Path | None = None
) -> list[Path]:
    """Render ``report`` in a registered format to ``output`` (and files beside it, for Markdown)."""
    formats: Mapping[str, ReportFormat] = registry.formats
    if fmt_name not in formats:
        from .errors import did_you_mean

        raise KpiError(
            Diagnostic(f"unknown report format `{fmt_name}`", hint=did_you_mean(fmt_name, formats, "formats"))
        )
    fmt = formats[fmt_name]
    env = environment(registry, templates)
    writer = fmt.render or write_template(fmt)
    return writer(report, env, output)
