"""The plugin manager: entry points of the ``kpi_engine`` group, each plugin isolated from the others."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pluggy

from . import hookspecs
from .channels import Channel
from .connectors import Connector
from .ir import AGGREGATES, ARG_KINDS, MetricFunction

ENTRY_POINT_GROUP = "kpi_engine"


@dataclass(frozen=True)
class ReportFormat:
    """An output format of ``kpi report``. Give one of, from simplest to fullest:

    - ``template``: a Jinja2 template name, looked up in ``templates_dir`` first, then ``--templates``, then
      the built-in templates; the engine renders it with ``report`` (a ``kpi_engine.Report``) and writes it;
    - ``render(report) -> str | bytes``: the file's content; the engine writes it (atomically);
    - ``write(report, env, output) -> list[Path]``: writes the file (and any beside it) itself, e.g. with
      ``kpi_engine.atomic_write``; returns what it wrote. The built-in HTML, Markdown, PDF and e-mail do this.
    """

    name: str
    extension: str
    template: str | None = None
    render: Callable[[Any], str | bytes] | None = None
    templates_dir: Path | None = None
    description: str = ""
    plugin: str = ""
    write: Callable[[Any, Any, Path], list[Path]] | None = None


@dataclass(frozen=True)
class PluginError:
    """A connector plugin that raised on a source: the KPIs reading it are skipped, the others still run."""

    source: str
    connector: str
    plugin: str
    error: str
    function: str = ""  # set when a metric function failed, not the connector

    def message(self, kpis: Iterable[str] = ()) -> str:
        skipped = f"; skipped KPIs: {', '.join(sorted(kpis))}" if kpis else ""
        what = f"function `{self.function}`" if self.function else f"connector `{self.connector}`"
        return f"{what} (plugin `{self.plugin}`) failed on source `{self.source}`: {self.error}{skipped}"


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
    channels: dict[str, Channel] = field(default_factory=dict)
    plugins: dict[str, list[str]] = field(default_factory=dict)  # plugin name -> what it registered
    failures: list[PluginFailure] = field(default_factory=list)
    connector_plugin: dict[str, str] = field(default_factory=dict)
    #: (kind, name) -> the plugins that all registered it: none of them is used (see ``clash``)
    clashes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    clash_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    def connector_schemas(self) -> dict[str, dict[str, Any]]:
        """Each connector's option schema; a clashing name keeps one so that specs using it still validate
        and the clash is reported where the connector is used."""
        return {**self.clash_schemas, **{name: c.options_schema for name, c in self.connectors.items()}}

    def channel_schemas(self) -> dict[str, dict[str, Any]]:
        """Each channel type's option schema, checked with the spec's ``channels:``."""
        return {name: dict(c.options_schema) for name, c in self.channels.items()}

    def clash(self, kind: str, name: str) -> str | None:
        """Why ``name`` (a connector, function or format) cannot be used: two plugins registered it."""
        plugins = self.clashes.get((kind, name))
        if not plugins:
            return None
        return (
            f"{kind} `{name}` is registered by plugins {', '.join(f'`{p}`' for p in plugins)}, so neither is used: "
            "uninstall one of them (the engine never picks one silently)"
        )


def plugin_manager(
    extra: Iterable[object] = (), entry_points: bool = True
) -> tuple[pluggy.PluginManager, list[PluginFailure]]:
    """A pluggy manager with every installed plugin loaded; a plugin that fails to import is recorded, not fatal.

    Two installed packages that use the same entry-point name are both reported, and the second is not loaded.
    """
    pm = pluggy.PluginManager("kpi_engine")
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []
    seen: dict[str, str] = {}
    if entry_points:
        found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        twice = {name for name, n in Counter(ep.name for ep in found).items() if n > 1}
        # a package's name comes from parsing its metadata (an e-mail parser: slow at start-up), so it is read
        # only for a plugin name two packages install, to order them and to say which
        for ep in sorted(found, key=lambda ep: (ep.name, _dist(ep) if ep.name in twice else "")):
            dist = _dist(ep) if ep.name in twice else ""
            if ep.name in seen:
                if seen[ep.name] != dist or pm.get_plugin(ep.name) is None:
                    failures.append(
                        PluginFailure(
                            ep.name,
                            "import",
                            f"packages `{seen[ep.name]}` and `{dist}` both install a plugin named `{ep.name}`; "
                            f"only `{seen[ep.name]}`'s is loaded: uninstall one",
                        )
                    )
                continue
            seen[ep.name] = dist
            try:
                pm.register(ep.load(), name=ep.name)
            except (Exception, SystemExit) as exc:  # a broken third-party plugin must not take the engine down
                failures.append(PluginFailure(ep.name, "import", _describe(exc)))
    for i, plugin in enumerate(extra):
        if pm.is_registered(plugin):  # installed too (an entry point): registered once, under that name
            continue
        pm.register(plugin, name=getattr(plugin, "__name__", None) or f"plugin_{i}")
    try:
        pm.check_pending()  # a misspelt hook (register_connector) is reported, not silently ignored
    except pluggy.PluginValidationError as exc:
        failures.append(PluginFailure(pm.get_name(exc.plugin) or "?", "hooks", str(exc)))
    return pm, failures


def _dist(ep: Any) -> str:
    """The name of the package that installs an entry point."""
    return getattr(getattr(ep, "dist", None), "name", None) or "?"


def _describe(exc: BaseException) -> str:
    """What a failing plugin did; ``sys.exit()`` in a plugin is contained and reported like any error."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


HOOKS = (
    ("register_connectors", "connector", "connectors", Connector),
    ("register_functions", "function", "functions", MetricFunction),
    ("register_report_formats", "format", "formats", ReportFormat),
    ("register_channels", "channel", "channels", Channel),
)


def build_registry(extra: Iterable[object] = (), entry_points: bool = True) -> Registry:
    """Call every plugin's registration hooks through the plugin manager, one plugin at a time so that one
    failure stays local and every registration is attributed to its plugin.

    A name two plugins register (a third-party ``csv`` beside the built-in one) is used by neither: the clash
    is reported by ``kpi plugins`` and wherever the name is used, instead of whichever loads last winning.
    """
    pm, failures = plugin_manager(extra, entry_points)
    reg = Registry(failures=failures)
    owner: dict[tuple[str, str], str] = {}
    for name, plugin in pm.list_name_plugin():
        reg.plugins.setdefault(name, [])
        others = [p for p in pm.get_plugins() if p is not plugin]
        for hook, kind, attr, cls in HOOKS:
            if not any(impl.plugin is plugin for impl in getattr(pm.hook, hook).get_hookimpls()):
                continue
            found: list[Any] = []
            try:
                pm.subset_hook_caller(hook, remove_plugins=others)(register=found.append)
            except (Exception, SystemExit) as exc:
                reg.failures.append(PluginFailure(name, hook, _describe(exc)))
                continue
            for item in found:
                problem = _invalid(item, kind, cls)
                if problem:
                    reg.failures.append(PluginFailure(name, hook, problem))
                    continue
                key = item.name
                if (kind, key) in owner:
                    reg.clashes.setdefault((kind, key), [owner[(kind, key)]]).append(name)
                    continue
                owner[(kind, key)] = name
                if kind in ("format", "function"):
                    item = dataclasses.replace(item, plugin=name)
                getattr(reg, attr)[key] = item
                reg.plugins[name].append(f"{kind}:{key}")
                if kind == "connector":
                    reg.connector_plugin[key] = name
    for (kind, key), plugins in reg.clashes.items():
        removed = getattr(reg, f"{kind}s").pop(key)
        if kind == "connector":
            reg.clash_schemas[key] = removed.options_schema
            reg.connector_plugin.pop(key, None)
        reg.failures.append(PluginFailure(plugins[-1], f"register_{kind}s", reg.clash(kind, key) or ""))
    return reg


def _invalid(item: Any, kind: str, cls: type) -> str | None:
    """Why a registered object cannot be used (checked at registration, so that a plugin's mistake is its own)."""
    if not isinstance(item, cls):
        return f"register() was given {type(item).__name__}, not a {cls.__name__}"
    name = getattr(item, "name", "")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        return f"{kind} name {name!r} must be lower-case snake_case"
    if kind == "function":
        return _invalid_function(item)
    if kind == "format" and sum(x is not None for x in (item.template, item.render, item.write)) != 1:
        return f"format `{name}` needs exactly one of template, render or write"
    if kind in ("connector", "channel"):
        try:
            jsonschema.Draft202012Validator.check_schema({"type": "object", **item.options_schema})
        except jsonschema.SchemaError as exc:
            return f"{kind} `{name}` has an invalid options_schema: {exc.message}"
    return None


def _invalid_function(fn: MetricFunction) -> str | None:
    """What is wrong with a metric function's declaration, if anything."""
    name = fn.name
    if name in AGGREGATES:
        return f"function `{name}` shadows a built-in aggregate"
    if not callable(fn.build) or not all(f is None or callable(f) for f in (fn.check, fn.finish)):
        return f"function `{name}`: build, check and finish must be callables"
    lo, hi = fn.min_args, fn.max_args
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 16):
        return f"function `{name}` takes min_args={lo!r} to max_args={hi!r} arguments: need 1 <= min <= max <= 16"
    bad = [k for k in fn.arg_kinds if k not in ARG_KINDS] if isinstance(fn.arg_kinds, tuple) else [fn.arg_kinds]
    if bad or not fn.arg_kinds:
        return f"function `{name}` has arg_kinds {fn.arg_kinds!r}: a tuple of {', '.join(ARG_KINDS)}"
    return None


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, built once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = build_registry()
    return _DEFAULT
