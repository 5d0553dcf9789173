"""kpi-engine: declarative marketing KPIs over polars.

import kpi_engine
catalog = kpi_engine.load("kpi_specs/")
result = catalog.evaluate(as_of=datetime.date(2026, 6, 30))
result["ctr"]  # a polars DataFrame
"""

from __future__ import annotations

from ._version import __version__
from .hookspecs import hookimpl

#: The public API: the pipeline in a call, and everything a plugin needs (connectors, functions, formats,
#: errors, the spec objects a connector reads, and the time-reading helpers every connector shares).
#: Plugins import from here, never from internal modules; heavy modules load on first use (`kpi --help`).
_EXPORTS = {
    "load": "api",
    "evaluate": "api",
    "Catalog": "api",
    "Result": "api",
    "KpiError": "errors",
    "Diagnostic": "errors",
    "Location": "errors",
    "did_you_mean": "errors",
    "MetricFunction": "ir",
    "FunctionCall": "ir",
    "kind_of": "ir",
    "ReportFormat": "plugins",
    "PluginError": "plugins",
    "Channel": "channels",
    "ChannelError": "channels",
    "Message": "channels",
    "Attachment": "channels",
    "Connector": "connectors",
    "Database": "connectors",
    "Collated": "connectors",
    "expand_env": "connectors",
    "redact": "connectors",
    "ScanRequest": "connectors",
    "Env": "connectors",
    "source_files": "connectors",
    "source_path": "connectors",
    "check_file": "connectors",
    "data_error": "connectors",
    "SourceSpec": "model",
    "TimeOptions": "timeparse",
    "time_expr": "timeparse",
    "parse_text": "timeparse",
    "checked": "timeparse",
    "describe_guess": "timeparse",
    "explain_unread": "timeparse",
    "formats_reading": "timeparse",
    "ISO_RE": "timeparse",
    "ISO_DATE_RE": "timeparse",
    "CANDIDATE_FORMATS": "timeparse",
    "MIN_DATE": "spec_dates",
    "Report": "content",
    "render_template": "report",
    "atomic_write": "output",
    "cache_dir": "output",
    "line_chart": "charts",
    "MAX_DATE": "spec_dates",
}

__all__ = ["hookimpl", "__version__", *_EXPORTS]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """Heavy modules (polars) load on first use, so that `kpi --help` stays fast."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
