"""kpi-engine: declarative marketing KPIs over polars.

import kpi_engine
catalog = kpi_engine.load("kpi_specs/")
result = catalog.evaluate(as_of=datetime.date(2026, 6, 30))
result["ctr"]  # a polars DataFrame
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .hookspecs import hookimpl

try:
    __version__ = version("kpi-engine")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "hookimpl",
    "load",
    "evaluate",
    "KpiError",
    "MetricFunction",
    "ReportFormat",
    "Catalog",
    "Result",
    "__version__",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """Heavy modules (polars) load on first use, so that `kpi --help` stays fast."""
    if name in ("load", "evaluate", "Catalog", "Result"):
        from . import api

        return getattr(api, name)
    if name == "KpiError":
        from .errors import KpiError

        return KpiError
    if name == "MetricFunction":
        from .ir import MetricFunction

        return MetricFunction
    if name == "ReportFormat":
        from .plugins import ReportFormat

        return ReportFormat
    raise AttributeError(name)
