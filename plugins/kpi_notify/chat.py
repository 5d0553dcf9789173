"""Chat webhooks (Slack, Microsoft Teams, Google Chat) and a generic JSON webhook, posted over HTTPS.

Each chat gets the message in its own card format, cut to that service's limits; the generic webhook gets
the message's ``summary`` as JSON. A 429 or 5xx answer is retried with back-off (honouring Retry-After).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from kpi_engine import Channel, ChannelError, Message

_URL = {"type": "string", "pattern": "^(https?://|\\$\\{env:)", "description": "The webhook URL."}
RETRIES = 3


def post_json(url: str, payload: Any, headers: Mapping[str, str] | None = None, timeout: float = 30) -> None:
    """POST ``payload`` as JSON; raise ChannelError naming the host (never the URL: it holds the token)."""
    import urllib.error  # (on first use: a run that sends nothing does not load the HTTP stack)
    import urllib.request

    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    host = urlsplit(url).netloc.rsplit("@", 1)[-1] or "?"
    for attempt in range(RETRIES):
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("User-Agent", "kpi-engine")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
                return
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")[:200]
            if (exc.code == 429 or exc.code >= 500) and attempt + 1 < RETRIES:
                time.sleep(min(float(exc.headers.get("Retry-After") or 2**attempt), 30))
                continue
            raise ChannelError(f"webhook at {host} answered {exc.code} {exc.reason}: {body}") from None
        except (urllib.error.URLError, OSError) as exc:
            if attempt + 1 < RETRIES:
                time.sleep(2**attempt)
                continue
            reason = getattr(exc, "reason", exc)
            raise ChannelError(f"cannot reach the webhook at {host}: {reason}") from None


def _sections(message: Message) -> list[Mapping[str, Any]]:
    return list(message.summary.get("sections", []))


def _cut(items: list[str], limit: int) -> list[str]:
    """``items`` that fit in ``limit`` characters, and a last line saying how many were left out."""
    out: list[str] = []
    used = 0
    for i, item in enumerate(items):
        if used + len(item) + 1 > limit - 40:
            out.append(f"… and {len(items) - i} more")
            break
        out.append(item)
        used += len(item) + 1
    return out


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: Message) -> dict[str, Any]:
    """Block Kit: a header, then one section per part (3,000 characters each at most, 50 blocks)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
    ]
    if message.summary.get("lead"):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": message.summary["lead"]}]})
    for section in _sections(message):
        items = _cut([f"• {_slack_escape(i)}" for i in section["items"]], 2900)
        text = f"*{_slack_escape(section['title'])}*\n" + "\n".join(items)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    return {"text": message.subject, "blocks": blocks[:50]}


def teams_payload(message: Message) -> dict[str, Any]:
    """An Adaptive Card (1.4) in a message attachment, as Teams workflows' incoming webhooks expect."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": message.subject, "size": "Large", "weight": "Bolder", "wrap": True}
    ]
    if message.summary.get("lead"):
        body.append({"type": "TextBlock", "text": message.summary["lead"], "isSubtle": True, "wrap": True})
    for section in _sections(message):
        body.append({"type": "TextBlock", "text": section["title"], "weight": "Bolder", "wrap": True})
        items = _cut([f"- {i}" for i in section["items"]], 8000)
        body.append({"type": "TextBlock", "text": "\n".join(items), "wrap": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4"}
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": {**card, "body": body}}
    return {"type": "message", "attachments": [attachment]}


def google_chat_payload(message: Message) -> dict[str, Any]:
    """A text message (Chat's *bold* and bullet lines), within its 4,096 characters."""
    parts = [f"*{message.subject}*"]
    if message.summary.get("lead"):
        parts.append(message.summary["lead"])
    for section in _sections(message):
        parts.append(f"*{section['title']}*\n" + "\n".join(f"• {i}" for i in section["items"]))
    text = "\n\n".join(parts)
    if len(text) > 4096:
        text = text[:4000].rsplit("\n", 1)[0] + "\n… (cut: the full review is in the e-mail or report)"
    return {"text": text}


class _Chat(Channel):
    options_schema = {
        "properties": {
            "url": {**_URL, "secret": True},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (default 30)."},
        },
        "required": ["url"],
    }
    payload = staticmethod(slack_payload)

    def send(self, message: Message, options: Mapping[str, Any]) -> None:
        post_json(options["url"], self.payload(message), timeout=float(options.get("timeout", 30)))


class SlackChannel(_Chat):
    name = "slack"
    description = "A Slack incoming webhook (Block Kit message)."
    payload = staticmethod(slack_payload)


class TeamsChannel(_Chat):
    name = "teams"
    description = "A Microsoft Teams incoming webhook (Adaptive Card)."
    payload = staticmethod(teams_payload)


class GoogleChatChannel(_Chat):
    name = "google_chat"
    description = "A Google Chat space's incoming webhook (text message)."
    payload = staticmethod(google_chat_payload)


class WebhookChannel(Channel):
    name = "webhook"
    description = "Any HTTP endpoint: the message's summary as JSON (subject, text, sections and data)."
    options_schema = {
        "properties": {
            "url": _URL,
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "secret": True,
                "description": "Extra headers (Authorization...): each value ${env:NAME}.",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (default 30)."},
        },
        "required": ["url"],
    }

    def send(self, message: Message, options: Mapping[str, Any]) -> None:
        payload = {"subject": message.subject, "text": message.text, **message.summary}
        post_json(options["url"], payload, options.get("headers"), float(options.get("timeout", 30)))
