"""The built-in report writers: HTML, Markdown with SVG charts, PDF through headless Chromium, and e-mail.

They live beside their templates and reach the engine only through the public ``kpi_engine`` namespace,
like any plugin's writers would.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from kpi_engine import Diagnostic, KpiError, atomic_write, line_chart, render_template


def write_html(report: Any, env: Any, output: Path) -> list[Path]:
    """One self-contained page: the charts' specs and the Vega runtime inline, drawn by the browser."""
    text = render_template(env, "report.html.j2", report)
    atomic_write(output, lambda p: p.write_text(text, encoding="utf-8"))
    return [output]


def write_markdown(report: Any, env: Any, output: Path) -> list[Path]:
    """Markdown with tables; each chart is an SVG file in a folder beside it."""
    folder = output.with_name(output.stem + "_files")
    written = []
    chart_files = {}
    for k in report.kpis:
        path = folder / f"{k.id}.svg"
        svg = line_chart(k.chart, static=True)
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


def write_pdf(report: Any, env: Any, output: Path) -> list[Path]:
    """The HTML report printed to PDF by headless Chromium (optional: install Debian's `chromium`)."""
    browser = chromium()
    if browser is None:
        raise KpiError(
            Diagnostic(
                "PDF output needs Chromium, which is not installed",
                hint="install it (Debian: apt-get install chromium) or use --format html",
            )
        )
    html = render_template(env, "report.html.j2", report, static_charts=True)  # (Chromium prints before scripts end)
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


def write_email(report: Any, env: Any, output: Path) -> list[Path]:
    """An e-mail (.eml) with an HTML body that mail clients render and a plain-text part; sending is a plugin's job."""
    message = EmailMessage()
    message["Subject"] = report.title
    message.set_content(render_template(env, "email.txt.j2", report))
    message.add_alternative(render_template(env, "email.html.j2", report), subtype="html")
    data = bytes(message)
    atomic_write(output, lambda p: p.write_bytes(data))
    return [output]
