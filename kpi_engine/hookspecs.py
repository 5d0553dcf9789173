"""Every hook a kpi-engine plugin can implement. Built-in connectors are plugins too (see ``plugins/``).

A plugin is a module with functions decorated by ``kpi_engine.hookimpl`` and an entry point in the
``kpi_engine`` group of its ``pyproject.toml``::

    [project.entry-points.kpi_engine]
    my_crm = "kpi_my_crm"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("kpi_engine")
hookimpl = pluggy.HookimplMarker("kpi_engine")


@hookspec
def register_connectors(register: Callable[[Any], None]) -> None:
    """Register data connectors.

    Called once when the plugin registry is built, before any spec is validated (each connector's
    ``options_schema`` becomes part of the spec schema). Call ``register(connector)`` with an instance of a
    :class:`kpi_engine.connectors.Connector` subclass for each source type the plugin reads. Return nothing.
    """


@hookspec
def register_functions(register: Callable[[Any], None]) -> None:
    """Register metric functions usable in formulas like built-in aggregates.

    Called once when the plugin registry is built, before formulas are bound. Call ``register(function)``
    with a :class:`kpi_engine.MetricFunction` (name, a ``build`` returning one polars aggregate expression,
    arity, fill value for empty periods). Return nothing.
    """


@hookspec
def register_report_formats(register: Callable[[Any], None]) -> None:
    """Register report output formats (HTML, Markdown, a chat summary...).

    Called once when the plugin registry is built, by the report command. Call ``register(fmt)`` with a
    :class:`kpi_engine.ReportFormat` (name, file extension, template name or render callable, template
    folder). Return nothing.
    """


@hookspec
def register_channels(register: Callable[[Any], None]) -> None:
    """Register delivery channels (e-mail, chat webhooks...) that ``kpi send`` and alerts deliver through.

    Called once when the plugin registry is built, before any spec is validated (each channel's
    ``options_schema`` checks the spec's ``channels:`` entries of its type). Call ``register(channel)`` with
    an instance of a :class:`kpi_engine.Channel` subclass for each channel type. Return nothing.
    """
