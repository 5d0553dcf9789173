"""The built-in report formats and their templates, registered through the same hook as any plugin's.

Override any template by name with ``kpi report --templates DIR`` (e.g. your own ``report.html.j2``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kpi_engine import ReportFormat, hookimpl

TEMPLATES = Path(__file__).parent / "templates"


def _lazy(name: str) -> Callable[..., Any]:
    """A writer that imports the renderer (jinja2, matplotlib) only when a report is written."""

    def write(*args: Any) -> Any:
        from . import writers

        return getattr(writers, name)(*args)

    return write


FORMATS = (
    (
        "html",
        "html",
        "write_html",
        "One self-contained HTML page: inline CSS and SVG charts, no external requests.",
    ),
    ("md", "md", "write_markdown", "Markdown with tables; charts as SVG files in a folder beside it."),
    ("pdf", "pdf", "write_pdf", "The HTML report printed by headless Chromium (needs chromium)."),
    (
        "email",
        "eml",
        "write_email",
        "An e-mail file: HTML body for mail clients and a plain-text part.",
    ),
)


@hookimpl
def register_report_formats(register) -> None:  # type: ignore[no-untyped-def]
    for name, extension, writer, description in FORMATS:
        register(ReportFormat(name, extension, templates_dir=TEMPLATES, description=description, write=_lazy(writer)))
