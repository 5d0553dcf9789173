"""The built-in delivery channels: e-mail over SMTP, Slack, Microsoft Teams and Google Chat incoming webhooks,
and a generic JSON webhook. Registered through the same hook as any plugin's channels."""

from __future__ import annotations

from kpi_engine import hookimpl

from .chat import GoogleChatChannel, SlackChannel, TeamsChannel, WebhookChannel
from .mail import EmailChannel


@hookimpl
def register_channels(register) -> None:  # type: ignore[no-untyped-def]
    for channel in (EmailChannel(), SlackChannel(), TeamsChannel(), GoogleChatChannel(), WebhookChannel()):
        register(channel)
