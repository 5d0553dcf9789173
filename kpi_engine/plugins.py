"""The plugin manager: entry points of the ``kpi_engine`` group, each plugin isolated from the others."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .connectors import Connector
from .ir import AGGREGATES, MetricFunction

ENTRY_POINT_GROUP = "kpi_engine"


@dataclass(frozen=True)
class ReportFormat:
    """An output format of ``kpi report``: a template (or a render callable) and the file extension."""

    name: str
    extension: str
    template: str | None = None
    render: Callable[..., str | bytes] | None = None
    templates_dir: Path | None = None
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    stage: str
    error: str


@dataclass
class Registry:
    """What the installed plugins provide, by name, plus the plugins that failed and why."""

    connectors: dict[str, Connector] = field(default_factory=dict)
    functions: dict[str, MetricFunction] = field(default_factory=dict)
    formats: dict[str, ReportFormat] = field(default_factory=dict)
    plugins: dict[str, list[str]] = field(default_factory=dict)  # plugin name -> what it registered
    failures: list[PluginFailure] = field(default_factory=list)
    connector_plugin: dict[str, str] = field(default_factory=dict)

    def connector_schemas(self) -> dict[str, dict[str, Any]]:
        return {name: c.options_schema for name, c in self.connectors.items()}


def plugin_manager(
    extra: Iterable[object] = (), entry_points: bool = True
) -> tuple[pluggy.PluginManager, list[PluginFailure]]:
    """A pluggy manager with every installed plugin loaded; a plugin that fails to import is recorded, not fatal."""
    pm = pluggy.PluginManager("kpi_engine")
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []
    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except (Exception, SystemExit) as exc:  # a broken third-party plugin must not take the engine down
                failures.append(PluginFailure(ep.name, "import", _describe(exc)))
    for i, plugin in enumerate(extra):
        pm.register(plugin, name=getattr(plugin, "__name__", None) or f"plugin_{i}")
    return pm, failures


def _describe(exc: BaseException) -> str:
    """What a failing plugin did; ``sys.exit()`` in a plugin is contained and reported like any error."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def build_registry(extra: Iterable[object] = (), entry_points: bool = True) -> Registry:
    """Call every plugin's registration hooks, one plugin at a time so that one failure stays local."""
    pm, failures = plugin_manager(extra, entry_points)
    reg = Registry(failures=failures)
    for name, plugin in pm.list_name_plugin():
        reg.plugins.setdefault(name, [])
        for hook, store, label in (
            ("register_connectors", reg.connectors, "connector"),
            ("register_functions", reg.functions, "function"),
            ("register_report_formats", reg.formats, "format"),
        ):
            impl = getattr(plugin, hook, None)
            if impl is None:
                continue
            found: list[Any] = []
            try:
                impl(register=found.append)
            except (Exception, SystemExit) as exc:
                reg.failures.append(PluginFailure(name, hook, _describe(exc)))
                continue
            for item in found:
                key = item.name
                if label == "function" and key in AGGREGATES:
                    reg.failures.append(PluginFailure(name, hook, f"function `{key}` shadows a built-in aggregate"))
                    continue
                store[key] = item  # type: ignore[index]
                reg.plugins[name].append(f"{label}:{key}")
                if label == "connector":
                    reg.connector_plugin[key] = name
    return reg


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, built once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = build_registry()
    return _DEFAULT
