"""`kpi serve`: the review as a live local web app, for spec authors and shared-screen reviews."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from .common import _ALLOW_OUTSIDE, _PATH, _date, _handle_errors, main


@main.command("serve")
@_PATH
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind: only this machine by default (0.0.0.0 shows the page, and the data, to your network).",
)
@click.option("--as-of", callback=_date, help="Review date: data up to the end of this day (default: today).")
@_ALLOW_OUTSIDE
@_handle_errors
def serve_command(path: Path, port: int, host: str, as_of: dt.date | None, access: dict) -> None:
    """Serve the review at http://HOST:PORT/: a page per KPI with a dimension filter and a period range, and
    a JSON API (/api/kpis, /api/kpis/ID?from=&to=&dims=channel:search) that mirrors `kpi run --format json`.

    Pages reload themselves when a spec or data file changes; a spec error is shown in the page. Ctrl-C stops.
    """
    import socket

    import uvicorn

    from ..errors import KpiError
    from ..serve import Live, build_app

    try:  # a port in use is the user's to fix: say so, before the server starts
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise KpiError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint=f"pass another --port (e.g. --port {port + 1 if port < 65535 else 8001}), or stop what uses it",
        ) from None
    live = Live(path, as_of, access)
    click.echo(f"serving {path} at http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    uvicorn.run(build_app(live), host=host, port=port, log_level="warning")
