"""Delivery channels: what a channel plugin implements, the message it is given, and the secrets rule.

A channel (e-mail, Slack, a webhook...) is registered by a plugin through ``register_channels``. The spec
names configured channels under ``channels:``; secrets among their options (passwords, webhook URLs, auth
headers) are written as ``${env:NAME}`` references only, and expanded when a message is sent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Diagnostic, KpiError
from .model import ChannelSpec

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str  # "text/html"
    data: bytes


@dataclass(frozen=True)
class Message:
    """What a channel delivers: a subject, the text and HTML bodies, and ``summary``, the same content as
    data (``kind``, ``title``, ``period``, ``needs_attention``, ``kpis``...) for chat cards and webhooks."""

    subject: str
    text: str
    html: str | None
    summary: Mapping[str, Any]
    attachments: tuple[Attachment, ...] = ()


class ChannelError(Exception):
    """A delivery that failed (server refused, unreachable): the message says which and why, without secrets."""


class Channel:
    """A kind of channel. Subclass it, set ``name`` and ``options_schema`` (a JSON Schema fragment with
    ``properties`` and ``required``, validated with the spec; mark an option ``"secret": true`` and the spec
    must give it as ``${env:NAME}``), and implement ``send``."""

    name: str = ""
    description: str = ""
    options_schema: Mapping[str, Any] = {"properties": {}}

    def send(self, message: Message, options: Mapping[str, Any]) -> None:
        """Deliver ``message`` with the channel's ``options`` (environment references expanded); raise
        :class:`ChannelError` when the receiving server does not accept it."""
        raise NotImplementedError


def expand(spec: ChannelSpec) -> dict[str, Any]:
    """The channel's options with every ``${env:NAME}`` replaced; a variable that is not set is an error that
    names it (and never shows another's value)."""

    def one(value: Any, key: str) -> Any:
        if isinstance(value, str):
            return ENV_REF.sub(lambda m: _env(m.group(1), spec, key), value)
        if isinstance(value, Mapping):
            return {k: one(v, key) for k, v in value.items()}
        if isinstance(value, list):
            return [one(v, key) for v in value]
        return value

    return {k: one(v, k) for k, v in spec.options.items()}


def _env(name: str, spec: ChannelSpec, key: str) -> str:
    if name not in os.environ:
        raise KpiError(
            Diagnostic(
                f"channel `{spec.name}` reads the environment variable `{name}` (option `{key}`), which is not set",
                spec.loc(key),
                hint=f"set it before running: export {name}=... (in CI, from its secrets)",
            )
        )
    return os.environ[name]
