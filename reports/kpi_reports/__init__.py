"""The built-in report formats and their templates, registered through the same hook as any plugin's.

Override any template by name with ``kpi report --templates DIR`` (e.g. your own ``report.html.j2``).
"""

from __future__ import annotations

from pathlib import Path

from kpi_engine import ReportFormat, hookimpl

TEMPLATES = Path(__file__).parent / "templates"


@hookimpl
def register_report_formats(register) -> None:  # type: ignore[no-untyped-def]
    from kpi_engine import report

    register(
        ReportFormat(
            "html",
            "html",
            "report.html.j2",
            report.write_html,
            TEMPLATES,
            "One self-contained HTML page: inline CSS and SVG charts, no external requests.",
        )
    )
    register(
        ReportFormat(
            "md",
            "md",
            "report.md.j2",
            report.write_markdown,
            TEMPLATES,
            "Markdown with tables; charts as SVG files in a folder beside it.",
        )
    )
    register(
        ReportFormat(
            "pdf",
            "pdf",
            "report.html.j2",
            report.write_pdf,
            TEMPLATES,
            "The HTML report printed by headless Chromium (needs the chromium package).",
        )
    )
    register(
        ReportFormat(
            "email",
            "eml",
            "email.html.j2",
            report.write_email,
            TEMPLATES,
            "An e-mail file: HTML body for mail clients plus a plain-text part.",
        )
    )
